"""EXPERIMENT (NOTES.md v20): a Hopper (sm_90) weight-only GEMM in Gluon, bf16/fp16 activations, ternary codes.

Why: at 16-64 tokens the Triton weight-only GEMM runs at ~35-40% of the tensor cores' rate whatever its tile
(v20 sweep 1): each warpgroup decodes a stage into registers, issues its wgmmas, then waits for them to finish
(`wait_group 0` after every dot) before it decodes the next, so decode and MMA never overlap inside a warpgroup.
Here the wgmmas are asynchronous: while stage i's wgmmas run, the warpgroup decodes stage i + 1; it waits only
for stage i - 1's wgmmas (whose register operands are carried to that wait, so they stay live until then), and
that stage's buffers are refilled by TMA STAGES - 1 ahead.

Decode: a byte's slice s, code c in {0, 1, 2} (w + 1), is placed under bf16's exponent byte of 128 (0x43; fp16:
0x64 of 1024) and 129 (1025) is subtracted: w itself, exact, 6 instructions per 4 codes. So the accumulator is
the fp32 sum of w * x, as cuBLAS's, with no row-sum correction and no second launch.

Limits (callers check `supported`): K = 4 KP, KP a multiple of the stage's bytes, row strides 16-byte aligned (TMA).
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
except ImportError:
    _HAVE_GLUON = False


@dataclasses.dataclass(frozen=True)
class GluonWeightOnlyConfig:
    block_n: int  # weight rows a program (64 a warpgroup)
    block_m: int  # tokens a program (the wgmma's N: 8-256)
    block_kp: int  # packed bytes a stage (4 * block_kp activation columns)
    num_warps: int
    stages: int
    group_m: int = 8
    maxnreg: int | None = None


if _HAVE_GLUON:

    @gluon.jit
    def _codes_as_half(p, s: gl.constexpr, IS_BF16: gl.constexpr):
        """Slice s of packed bytes p -> w = code - 1 as bf16/fp16, exact (4 codes a register)."""
        if IS_BF16 and s == 0:
            return gl.inline_asm_elementwise(
                "{ .reg .b32 t, lo, hi, e, c; and.b32 t, $2, 0x03030303; "
                "mov.b32 e, 0x43434343; mov.b32 c, 0x43014301; prmt.b32 lo, t, e, 0x5150; prmt.b32 hi, t, e, 0x5352; "
                "sub.rn.bf16x2 $0, lo, c; sub.rn.bf16x2 $1, hi, c; }",
                "=r,=r,r", [p], gl.bfloat16, True, 4,
            )  # fmt: skip
        elif IS_BF16 and s == 1:
            return gl.inline_asm_elementwise(
                "{ .reg .b32 t, lo, hi, e, c; shr.b32 t, $2, 2; and.b32 t, t, 0x03030303; "
                "mov.b32 e, 0x43434343; mov.b32 c, 0x43014301; prmt.b32 lo, t, e, 0x5150; prmt.b32 hi, t, e, 0x5352; "
                "sub.rn.bf16x2 $0, lo, c; sub.rn.bf16x2 $1, hi, c; }",
                "=r,=r,r", [p], gl.bfloat16, True, 4,
            )  # fmt: skip
        elif IS_BF16 and s == 2:
            return gl.inline_asm_elementwise(
                "{ .reg .b32 t, lo, hi, e, c; shr.b32 t, $2, 4; and.b32 t, t, 0x03030303; "
                "mov.b32 e, 0x43434343; mov.b32 c, 0x43014301; prmt.b32 lo, t, e, 0x5150; prmt.b32 hi, t, e, 0x5352; "
                "sub.rn.bf16x2 $0, lo, c; sub.rn.bf16x2 $1, hi, c; }",
                "=r,=r,r", [p], gl.bfloat16, True, 4,
            )  # fmt: skip
        elif IS_BF16 and s == 3:
            return gl.inline_asm_elementwise(
                "{ .reg .b32 t, lo, hi, e, c; shr.b32 t, $2, 6; and.b32 t, t, 0x03030303; "
                "mov.b32 e, 0x43434343; mov.b32 c, 0x43014301; prmt.b32 lo, t, e, 0x5150; prmt.b32 hi, t, e, 0x5352; "
                "sub.rn.bf16x2 $0, lo, c; sub.rn.bf16x2 $1, hi, c; }",
                "=r,=r,r", [p], gl.bfloat16, True, 4,
            )  # fmt: skip
        elif (not IS_BF16) and s == 0:
            return gl.inline_asm_elementwise(
                "{ .reg .b32 t, lo, hi, e, c; and.b32 t, $2, 0x03030303; "
                "mov.b32 e, 0x64646464; mov.b32 c, 0x64016401; prmt.b32 lo, t, e, 0x5150; prmt.b32 hi, t, e, 0x5352; "
                "sub.rn.f16x2 $0, lo, c; sub.rn.f16x2 $1, hi, c; }",
                "=r,=r,r", [p], gl.float16, True, 4,
            )  # fmt: skip
        elif (not IS_BF16) and s == 1:
            return gl.inline_asm_elementwise(
                "{ .reg .b32 t, lo, hi, e, c; shr.b32 t, $2, 2; and.b32 t, t, 0x03030303; "
                "mov.b32 e, 0x64646464; mov.b32 c, 0x64016401; prmt.b32 lo, t, e, 0x5150; prmt.b32 hi, t, e, 0x5352; "
                "sub.rn.f16x2 $0, lo, c; sub.rn.f16x2 $1, hi, c; }",
                "=r,=r,r", [p], gl.float16, True, 4,
            )  # fmt: skip
        elif (not IS_BF16) and s == 2:
            return gl.inline_asm_elementwise(
                "{ .reg .b32 t, lo, hi, e, c; shr.b32 t, $2, 4; and.b32 t, t, 0x03030303; "
                "mov.b32 e, 0x64646464; mov.b32 c, 0x64016401; prmt.b32 lo, t, e, 0x5150; prmt.b32 hi, t, e, 0x5352; "
                "sub.rn.f16x2 $0, lo, c; sub.rn.f16x2 $1, hi, c; }",
                "=r,=r,r", [p], gl.float16, True, 4,
            )  # fmt: skip
        elif (not IS_BF16) and s == 3:
            return gl.inline_asm_elementwise(
                "{ .reg .b32 t, lo, hi, e, c; shr.b32 t, $2, 6; and.b32 t, t, 0x03030303; "
                "mov.b32 e, 0x64646464; mov.b32 c, 0x64016401; prmt.b32 lo, t, e, 0x5150; prmt.b32 hi, t, e, 0x5352; "
                "sub.rn.f16x2 $0, lo, c; sub.rn.f16x2 $1, hi, c; }",
                "=r,=r,r", [p], gl.float16, True, 4,
            )  # fmt: skip

    @gluon.jit
    def _load_stage(x_desc, w_desc, x_smem, w_smem, ready, it, off_m, off_n, KP, pred,
                    STAGES: gl.constexpr, BKP: gl.constexpr):  # fmt: skip
        stage = it % STAGES
        bar = ready.index(stage)
        mbarrier.expect(bar, w_desc.block_type.nbytes + 4 * x_desc.block_type.nbytes, pred=pred)
        tma.async_copy_global_to_shared(w_desc, [off_n, it * BKP], bar, w_smem.index(stage), pred=pred)
        for s in gl.static_range(4):
            # slice s of packed byte j meets activation column s * KP + j
            tma.async_copy_global_to_shared(
                x_desc, [off_m, s * KP + it * BKP], bar, x_smem.index(stage * 4 + s), pred=pred
            )

    @gluon.jit
    def _weight_only_sm90(
        x_desc,  # bf16/fp16 [M, K] activations, blocks [BLOCK_M, BKP]
        w_desc,  # uint8 [N, KP] packed weights, blocks [BLOCK_N, BKP]
        w_scale_ptr,  # float32 [N] or [1]
        bias_ptr,  # [N] or a dummy pointer
        y_desc,  # [M, N] output, blocks [BLOCK_M, BLOCK_N]
        M,
        N,
        KP,
        w_scale_stride,
        HAS_BIAS: gl.constexpr,
        IS_BF16: gl.constexpr,
        GROUP_M: gl.constexpr,
        STAGES: gl.constexpr,
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
            version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_M, 16]
        )
        a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=2)

        w_smem = gl.allocate_shared_memory(gl.uint8, [STAGES, BLOCK_N, BKP], w_desc.layout)
        x_smem = gl.allocate_shared_memory(x_desc.dtype, [STAGES * 4, BLOCK_M, BKP], x_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=1)

        n_iter = gl.maximum(gl.cdiv(KP, BKP), 1)  # >= 1, so no path skips the loop (see the wait below)
        for i in gl.static_range(STAGES - 1):
            _load_stage(x_desc, w_desc, x_smem, w_smem, ready, i, off_m, off_n, KP, i < n_iter, STAGES, BKP)

        acc = gl.zeros([BLOCK_N, BLOCK_M], gl.float32, layout=mma)
        # the previous stage's decoded operands: carried to the wait that retires its wgmmas
        q0 = gl.zeros([BLOCK_N, BKP], x_desc.dtype, layout=a_layout)
        q1 = q0
        q2 = q0
        q3 = q0
        for i in range(n_iter):
            stage = i % STAGES
            mbarrier.wait(ready.index(stage), (i // STAGES) & 1)
            p = w_smem.index(stage).load(a_layout)
            t0 = _codes_as_half(p, 0, IS_BF16)
            acc = warpgroup_mma(t0, x_smem.index(stage * 4 + 0).permute((1, 0)), acc, is_async=True)
            t1 = _codes_as_half(p, 1, IS_BF16)
            acc = warpgroup_mma(t1, x_smem.index(stage * 4 + 1).permute((1, 0)), acc, is_async=True)
            t2 = _codes_as_half(p, 2, IS_BF16)
            acc = warpgroup_mma(t2, x_smem.index(stage * 4 + 2).permute((1, 0)), acc, is_async=True)
            t3 = _codes_as_half(p, 3, IS_BF16)
            acc = warpgroup_mma(t3, x_smem.index(stage * 4 + 3).permute((1, 0)), acc, is_async=True)
            # stage i - 1's four wgmmas are done: its buffers take the loads STAGES - 1 ahead
            acc, q0, q1, q2, q3 = warpgroup_mma_wait(num_outstanding=4, deps=(acc, q0, q1, q2, q3))
            q0 = t0
            q1 = t1
            q2 = t2
            q3 = t3
            if num_warps > 4:
                gl.thread_barrier()  # every warpgroup has retired its reads of that stage
            nxt = i + STAGES - 1
            _load_stage(x_desc, w_desc, x_smem, w_smem, ready, nxt, off_m, off_n, KP, nxt < n_iter, STAGES, BKP)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        for i in gl.static_range(STAGES):
            mbarrier.invalidate(ready.index(i))

        rn = off_n + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, mma))
        y = acc * gl.load(w_scale_ptr + rn * w_scale_stride, mask=rn < N, other=0.0)[:, None]
        if HAS_BIAS:
            y = y + gl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(gl.float32)[:, None]
        # y^T -> shared memory -> one TMA store, which clips the tails
        y_smem = gl.allocate_shared_memory(y_desc.dtype, [BLOCK_M, BLOCK_N], y_desc.layout)
        y_smem.permute((1, 0)).store(y.to(y_desc.dtype))
        fence_async_shared()
        tma.async_copy_shared_to_global(y_desc, [off_m, off_n], y_smem)
        tma.store_wait(pendings=0)


def available() -> bool:
    return _HAVE_GLUON


_GL_DTYPES = {torch.bfloat16: "bfloat16", torch.float16: "float16"}


def supported(x2: torch.Tensor, packed: torch.Tensor, k: int, cfg: GluonWeightOnlyConfig) -> bool:
    n, kp = packed.shape
    return (
        _HAVE_GLUON
        and x2.dtype in _GL_DTYPES
        and k == 4 * kp
        and kp % cfg.block_kp == 0
        and k % 8 == 0
        and kp % 16 == 0
        and n % 8 == 0
        and x2.is_contiguous()
        and packed.is_contiguous()
    )


@functools.lru_cache(maxsize=64)
def _layouts(block_m: int, block_n: int, block_kp: int, dtype: torch.dtype):
    gdt = getattr(gl, _GL_DTYPES[dtype])
    x_layout = gl.NVMMASharedLayout.get_default_for([block_m, block_kp], gdt)
    w_layout = gl.NVMMASharedLayout.get_default_for([block_n, block_kp], gl.uint8)
    y_layout = gl.NVMMASharedLayout.get_default_for([block_m, block_n], gdt)
    return x_layout, w_layout, y_layout


def weight_only_sm90(
    cfg: GluonWeightOnlyConfig,
    x2: torch.Tensor,
    packed: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
) -> None:
    """y [M, N] = x2 [M, K] @ W^T * w_scale (+ bias), W the ternary codes of packed [N, KP]."""
    m = x2.shape[0]
    n, kp = packed.shape
    x_layout, w_layout, y_layout = _layouts(cfg.block_m, cfg.block_n, cfg.block_kp, x2.dtype)
    x_desc = TensorDescriptor.from_tensor(x2, [cfg.block_m, cfg.block_kp], x_layout)
    w_desc = TensorDescriptor.from_tensor(packed, [cfg.block_n, cfg.block_kp], w_layout)
    y_desc = TensorDescriptor.from_tensor(y, [cfg.block_m, cfg.block_n], y_layout)
    grid = (-(-m // cfg.block_m) * -(-n // cfg.block_n),)
    w_scale = w_scale.reshape(-1)
    _weight_only_sm90[grid](
        x_desc,
        w_desc,
        w_scale,
        bias if bias is not None else w_scale,
        y_desc,
        m,
        n,
        kp,
        1 if w_scale.numel() > 1 else 0,
        HAS_BIAS=bias is not None,
        IS_BF16=x2.dtype == torch.bfloat16,
        GROUP_M=cfg.group_m,
        STAGES=cfg.stages,
        num_warps=cfg.num_warps,
        **({"maxnreg": cfg.maxnreg} if cfg.maxnreg else {}),
    )
