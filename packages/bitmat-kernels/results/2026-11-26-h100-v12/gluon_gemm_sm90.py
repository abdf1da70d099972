"""EXPERIMENT, not part of the package (NOTES.md v12): a Hopper (sm_90) prefill GEMM for A8 ternary weights in Gluon.

Why a second GEMM: Triton's own pipeliner waits for every wgmma whose left operand comes from registers
before it issues the next (`warp_group_dot_wait {pendings = 0}` after each of the four slice dots), so
the tensor cores idle while each warpgroup unpacks and waits; the plain Triton kernel stays near
1150 int8 TOP/s (NOTES.md v12). Here every stage of packed weights and activation slices arrives by
TMA into a ring of shared-memory buffers, each warpgroup unpacks its weight rows into registers and
issues the four slice wgmmas asynchronously, and it waits only for the *previous* stage's wgmmas
(whose register operands are kept alive until then) before that stage is refilled.

Same math and epilogue as `_bitmat_gemm_kernel` (y^T = W x^T on stored codes, int32 accumulation,
then (acc - row_sum) * x_scale * w_scale + bias), so results are bit-identical to it.

Gluon is experimental and changes between Triton releases: everything here is looked up lazily and
`available()` says whether this Triton can build it; callers fall back to the Triton kernel.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

try:  # Gluon's Hopper API as of Triton 3.5-3.6
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (
        fence_async_shared,
        mbarrier,
        tma,
        warpgroup_mma,
        warpgroup_mma_wait,
    )
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    _HAVE_GLUON = hasattr(tma, "async_copy_global_to_shared")
except ImportError:  # older Triton, or a newer one whose Gluon moved
    _HAVE_GLUON = False


@dataclasses.dataclass(frozen=True)
class HopperGemmConfig:
    block_n: int  # weight rows a program (64 per warpgroup)
    block_m: int  # tokens a program (the wgmma's N)
    block_kp: int  # packed bytes of K a stage (4 * block_kp activations)
    num_warps: int
    stages: int
    group_m: int = 8
    warp_specialized: bool = False
    maxnreg: int | None = None


if _HAVE_GLUON:

    @gluon.jit
    def _stored_slice(p, s: gl.constexpr):
        """Stored codes (0..2) of slice s of packed bytes p, 4 bytes a register (as stored_slice)."""
        if s == 0:
            return gl.inline_asm_elementwise("and.b32 $0, $1, 0x03030303;", "=r,r", [p], gl.int8, True, 4)
        elif s == 1:
            return gl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 2; and.b32 $0, t, 0x03030303;}", "=r,r", [p], gl.int8, True, 4
            )
        elif s == 2:
            return gl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 4; and.b32 $0, t, 0x03030303;}", "=r,r", [p], gl.int8, True, 4
            )
        else:
            return gl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 6; and.b32 $0, t, 0x03030303;}", "=r,r", [p], gl.int8, True, 4
            )

    @gluon.jit
    def _load_stage(x_desc, w_desc, x_smem, w_smem, ready, it, off_m, off_n, KP, pred,
                    STAGES: gl.constexpr, BKP: gl.constexpr):  # fmt: skip
        stage = it % STAGES
        bar = ready.index(stage)
        mbarrier.expect(bar, w_desc.block_type.nbytes + 4 * x_desc.block_type.nbytes, pred=pred)
        tma.async_copy_global_to_shared(w_desc, [off_n, it * BKP], bar, w_smem.index(stage), pred=pred)
        for s in gl.static_range(4):
            # slice s of the packed bytes meets activation columns s * KP + j
            tma.async_copy_global_to_shared(
                x_desc, [off_m, s * KP + it * BKP], bar, x_smem.index(stage * 4 + s), pred=pred
            )

    @gluon.jit
    def _epilogue(acc, off_m, off_n, x_scale_ptr, row_sum_ptr, w_scale_ptr, bias_ptr, y_desc, M, N, w_scale_stride,
                  HAS_BIAS: gl.constexpr, mma: gl.constexpr):  # fmt: skip
        """(acc - row_sum) * x_scale * w_scale + bias in the order of finish_output (bit-identical results),
        then y^T -> shared memory -> one TMA store, which clips the tails. A register layout conversion here
        instead made ptxas serialize every wgmma of the main loop (C7515)."""
        BLOCK_N: gl.constexpr = acc.shape[0]
        BLOCK_M: gl.constexpr = acc.shape[1]
        rn = off_n + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, mma))
        rm = off_m + gl.arange(0, BLOCK_M, layout=gl.SliceLayout(0, mma))
        row_sum = gl.load(row_sum_ptr + rm, mask=rm < M, other=0)
        x_scale = gl.load(x_scale_ptr + rm, mask=rm < M, other=0.0)
        y = acc.to(gl.float32) - row_sum.to(gl.float32)[None, :]
        y = y * x_scale[None, :]
        y = y * gl.load(w_scale_ptr + rn * w_scale_stride, mask=rn < N, other=0.0)[:, None]
        if HAS_BIAS:
            y = y + gl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(gl.float32)[:, None]
        y_smem = gl.allocate_shared_memory(y_desc.dtype, [BLOCK_M, BLOCK_N], y_desc.layout)
        y_smem.permute((1, 0)).store(y.to(y_desc.dtype))
        fence_async_shared()
        tma.async_copy_shared_to_global(y_desc, [off_m, off_n], y_smem)
        tma.store_wait(pendings=0)

    @gluon.jit
    def _gemm_a8_ternary_sm90(
        x_desc,  # int8 [M, K] activation codes, blocks [BLOCK_M, BKP]
        w_desc,  # uint8 [N, KP] packed weights, blocks [BLOCK_N, BKP]
        x_scale_ptr,  # float32 [M]
        row_sum_ptr,  # int32 [M]
        w_scale_ptr,  # float32 [N] or [1]
        bias_ptr,  # [N] or a dummy pointer
        y_desc,  # [M, N] output, blocks [BLOCK_M, BLOCK_N]
        M,
        N,
        KP,
        w_scale_stride,
        HAS_BIAS: gl.constexpr,
        GROUP_M: gl.constexpr,
        STAGES: gl.constexpr,
        INSTR_N: gl.constexpr,
        num_warps: gl.constexpr,
    ):
        BLOCK_M: gl.constexpr = x_desc.block_type.shape[0]
        BKP: gl.constexpr = x_desc.block_type.shape[1]
        BLOCK_N: gl.constexpr = w_desc.block_type.shape[0]

        pid = gl.program_id(0)
        num_m = gl.cdiv(M, BLOCK_M)
        num_n = gl.cdiv(N, BLOCK_N)
        group = GROUP_M * num_n
        first_m = (pid // group) * GROUP_M
        group_m = gl.minimum(num_m - first_m, GROUP_M)
        pid_m = first_m + (pid % group) % group_m
        pid_n = (pid % group) // group_m
        off_m = pid_m * BLOCK_M
        off_n = pid_n * BLOCK_N

        mma: gl.constexpr = gl.NVMMADistributedLayout(
            version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, INSTR_N, 32]
        )
        a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=4)

        w_smem = gl.allocate_shared_memory(gl.uint8, [STAGES, BLOCK_N, BKP], w_desc.layout)
        x_smem = gl.allocate_shared_memory(gl.int8, [STAGES * 4, BLOCK_M, BKP], x_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=1)

        n_iter = gl.cdiv(KP, BKP)
        for i in gl.static_range(STAGES - 1):
            _load_stage(x_desc, w_desc, x_smem, w_smem, ready, i, off_m, off_n, KP, i < n_iter, STAGES, BKP)

        acc = gl.zeros([BLOCK_N, BLOCK_M], gl.int32, layout=mma)
        for i in range(n_iter):
            stage = i % STAGES
            mbarrier.wait(ready.index(stage), (i // STAGES) & 1)
            p = w_smem.index(stage).load(a_layout)
            t0 = _stored_slice(p, 0)
            acc = warpgroup_mma(t0, x_smem.index(stage * 4 + 0).permute((1, 0)), acc, is_async=True)
            t1 = _stored_slice(p, 1)
            acc = warpgroup_mma(t1, x_smem.index(stage * 4 + 1).permute((1, 0)), acc, is_async=True)
            t2 = _stored_slice(p, 2)
            acc = warpgroup_mma(t2, x_smem.index(stage * 4 + 2).permute((1, 0)), acc, is_async=True)
            t3 = _stored_slice(p, 3)
            acc = warpgroup_mma(t3, x_smem.index(stage * 4 + 3).permute((1, 0)), acc, is_async=True)
            # the previous stage's four wgmmas are done: its buffers take the loads STAGES - 1 ahead
            acc = warpgroup_mma_wait(num_outstanding=4, deps=(acc,))
            if num_warps > 4:
                gl.thread_barrier()  # every warpgroup has retired its reads of that stage
            nxt = i + STAGES - 1
            _load_stage(x_desc, w_desc, x_smem, w_smem, ready, nxt, off_m, off_n, KP, nxt < n_iter, STAGES, BKP)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        for i in gl.static_range(STAGES):
            mbarrier.invalidate(ready.index(i))

        _epilogue(acc, off_m, off_n, x_scale_ptr, row_sum_ptr, w_scale_ptr, bias_ptr, y_desc, M, N, w_scale_stride,
                  HAS_BIAS, mma)  # fmt: skip

    @gluon.jit
    def _ws_loader(x_desc, w_desc, x_smem, w_smem, ready, empty, off_m, off_n, n_iter,
                   STAGES: gl.constexpr, BKP: gl.constexpr):  # fmt: skip
        """Producer warp: TMA loads of packed weights and the 4 activation slices into the ring."""
        for i in range(n_iter):
            stage = i % STAGES
            mbarrier.wait(empty.index(stage), ((i // STAGES) & 1) ^ 1)
            bar = ready.index(stage)
            mbarrier.expect(bar, w_desc.block_type.nbytes + x_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(w_desc, [off_n, i * BKP], bar, w_smem.index(stage))
            tma.async_copy_global_to_shared(x_desc, [0, off_m, i * BKP], bar, x_smem.index(stage).reshape(x_desc.block_type.shape))

    @gluon.jit
    def _ws_mma(x_smem, w_smem, ready, empty, n_iter, off_m, off_n, x_scale_ptr, row_sum_ptr, w_scale_ptr, bias_ptr,
                y_desc, M, N, w_scale_stride, HAS_BIAS: gl.constexpr, BLOCK_N: gl.constexpr, BLOCK_M: gl.constexpr,
                STAGES: gl.constexpr, INSTR_N: gl.constexpr, num_warps: gl.constexpr):  # fmt: skip
        """Consumer warpgroup: unpack each stage's weights into registers, 4 async slice wgmmas, release
        the previous stage once its wgmmas retired; then the epilogue."""
        mma: gl.constexpr = gl.NVMMADistributedLayout(
            version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, INSTR_N, 32]
        )
        a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=4)
        acc = gl.zeros([BLOCK_N, BLOCK_M], gl.int32, layout=mma)
        for i in range(n_iter):
            stage = i % STAGES
            mbarrier.wait(ready.index(stage), (i // STAGES) & 1)
            p = w_smem.index(stage).load(a_layout)
            for s in gl.static_range(4):
                xs = x_smem.index(stage).slice(s * BLOCK_M, BLOCK_M).permute((1, 0))
                acc = warpgroup_mma(_stored_slice(p, s), xs, acc, is_async=True)
            acc = warpgroup_mma_wait(num_outstanding=4, deps=(acc,))
            fence_async_shared()
            mbarrier.arrive(empty.index((i + STAGES - 1) % STAGES), count=1, pred=i > 0)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        _epilogue(acc, off_m, off_n, x_scale_ptr, row_sum_ptr, w_scale_ptr, bias_ptr, y_desc, M, N, w_scale_stride,
                  HAS_BIAS, mma)  # fmt: skip

    @gluon.jit
    def _gemm_a8_ternary_sm90_ws(
        x_desc,  # int8 codes viewed as [4, M, KP] (slice, token, byte), blocks [4, BLOCK_M, BKP]
        w_desc,  # uint8 [N, KP] packed weights, blocks [BLOCK_N, BKP]
        x_scale_ptr,
        row_sum_ptr,
        w_scale_ptr,
        bias_ptr,
        y_desc,  # [M, N] output, blocks [BLOCK_M, BLOCK_N]
        M,
        N,
        KP,
        w_scale_stride,
        HAS_BIAS: gl.constexpr,
        GROUP_M: gl.constexpr,
        STAGES: gl.constexpr,
        INSTR_N: gl.constexpr,
        num_warps: gl.constexpr,
    ):
        BLOCK_M: gl.constexpr = x_desc.block_type.shape[1]
        BKP: gl.constexpr = x_desc.block_type.shape[2]
        BLOCK_N: gl.constexpr = w_desc.block_type.shape[0]
        pid = gl.program_id(0)
        num_m = gl.cdiv(M, BLOCK_M)
        num_n = gl.cdiv(N, BLOCK_N)
        group = GROUP_M * num_n
        first_m = (pid // group) * GROUP_M
        group_m = gl.minimum(num_m - first_m, GROUP_M)
        pid_m = first_m + (pid % group) % group_m
        pid_n = (pid % group) // group_m
        off_m = pid_m * BLOCK_M
        off_n = pid_n * BLOCK_N

        w_smem = gl.allocate_shared_memory(gl.uint8, [STAGES, BLOCK_N, BKP], w_desc.layout)
        x_smem = gl.allocate_shared_memory(gl.int8, [STAGES, 4 * BLOCK_M, BKP], x_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=1)
            mbarrier.init(empty.index(i), count=1)
        n_iter = gl.cdiv(KP, BKP)
        gl.warp_specialize(
            [
                (
                    _ws_mma,
                    (x_smem, w_smem, ready, empty, n_iter, off_m, off_n, x_scale_ptr, row_sum_ptr, w_scale_ptr,
                     bias_ptr, y_desc, M, N, w_scale_stride, HAS_BIAS, BLOCK_N, BLOCK_M, STAGES, INSTR_N, num_warps),
                ),  # fmt: skip
                (_ws_loader, (x_desc, w_desc, x_smem, w_smem, ready, empty, off_m, off_n, n_iter, STAGES, BKP)),
            ],
            [1],
            [40],
        )


def available() -> bool:
    """Whether this Triton has the Gluon Hopper API this kernel is written against."""
    return _HAVE_GLUON


_GL_DTYPES = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}


@functools.lru_cache(maxsize=64)
def _layouts(block_m: int, block_n: int, block_kp: int, y_dtype: torch.dtype):
    x_layout = gl.NVMMASharedLayout.get_default_for([block_m, block_kp], gl.int8)
    w_layout = gl.NVMMASharedLayout.get_default_for([block_n, block_kp], gl.uint8)
    y_layout = gl.NVMMASharedLayout.get_default_for([block_m, block_n], getattr(gl, _GL_DTYPES[y_dtype]))
    return x_layout, w_layout, y_layout


def gemm_a8_ternary_sm90(
    cfg: HopperGemmConfig,
    xq: torch.Tensor,
    x_scale: torch.Tensor,
    row_sum: torch.Tensor,
    packed: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    w_scale_stride: int,
) -> None:
    """y = ternary GEMM of int8 codes xq [M, K] (scales x_scale, sums row_sum) with packed [N, KP]."""
    m = xq.shape[0]
    n, kp = packed.shape
    x_layout, w_layout, y_layout = _layouts(cfg.block_m, cfg.block_n, cfg.block_kp, y.dtype)
    if cfg.warp_specialized:
        k = xq.shape[1]
        kp3 = k // 4
        # one TMA box for the 4 slices: activation column s * KP + j is [s, token, j] of this view
        x_desc = TensorDescriptor(xq, [4, m, kp3], [kp3, k, 1], [4, cfg.block_m, cfg.block_kp], x_layout)
    else:
        x_desc = TensorDescriptor.from_tensor(xq, [cfg.block_m, cfg.block_kp], x_layout)
    w_desc = TensorDescriptor.from_tensor(packed, [cfg.block_n, cfg.block_kp], w_layout)
    y_desc = TensorDescriptor.from_tensor(y, [cfg.block_m, cfg.block_n], y_layout)
    grid = (triton_cdiv(m, cfg.block_m) * triton_cdiv(n, cfg.block_n),)
    kernel = _gemm_a8_ternary_sm90_ws if cfg.warp_specialized else _gemm_a8_ternary_sm90
    extra = {"maxnreg": cfg.maxnreg} if cfg.maxnreg else {}
    kernel[grid](
        x_desc,
        w_desc,
        x_scale,
        row_sum,
        w_scale,
        bias if bias is not None else w_scale,
        y_desc,
        m,
        n,
        kp,
        w_scale_stride,
        HAS_BIAS=bias is not None,
        GROUP_M=cfg.group_m,
        STAGES=cfg.stages,
        INSTR_N=min(cfg.block_m, 128),
        num_warps=cfg.num_warps,
        **extra,
    )


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)
