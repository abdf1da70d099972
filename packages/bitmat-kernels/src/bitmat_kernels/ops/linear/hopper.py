"""The weight-only GEMM for Hopper (sm_90) in Gluon: ternary or binary codes, bf16/fp16 activations, from 8 tokens.

Why a second weight-only GEMM: Triton's pipeliner waits for every wgmma whose left operand comes from registers
before it issues the next (`wait_group 0` after each dot), so each warpgroup decodes a stage, multiplies, and
waits, and the tensor cores idle while it decodes; tile sweeps left the Triton kernel at ~35-40% of their rate at
64 tokens whatever the tile (NOTES.md v20). Here every stage's packed weights (one TMA copy) and its activation
slices (one 3D TMA copy: x [M, S KP] seen as [S, M, KP], S = 4 ternary codes a byte, 8 binary) arrive in a ring of
shared-memory buffers, STAGES ahead.
The wgmmas are asynchronous: the warpgroup decodes slice s + 1 while slice s multiplies, then retires slice s.

The decoded slices are the wgmmas' register operands, which the hardware reads while the wgmma runs: no write may
reach them before the wait that retires it. warpgroup_mma_wait's deps name a tensor's 16-bit halves, not the 32-bit
registers the wgmma reads, so ptxas may reuse those (v20's kernel carried stage i's operands across the loop's back
edge and ptxas wrote the next stage's decode into them: a latent race that v21's faster decode turned into wrong
outputs). So every wgmma retires inside its stage, and `_hold` reads its operand registers after the wait; the
CPU tests check the SASS for any write to an in-flight operand.

Decode: two consecutive packed bytes are spread to the low bytes of a word's halves (one PRMT for all slices).
Ternary: slice s's codes c in {0, 1, 2} (w + 1) are masked into the mantissa of 128 (bf16; 1024 fp16), giving 128 +
4**s c (bf16 slice 3: 128 + 64 c), and one FMA gives w = v / step - (128 / step + 1), exact: 1 LOP3 and 1 FMA a
register of two weights. Binary: bit s is shifted to bit 15 of each half and becomes the sign of 1.0 (set: +1,
clear: -1): 1 SHL and 1 LOP3. The accumulator is the fp32 sum of w * x, as cuBLAS's, with no row-sum correction and
no second launch; outputs are deterministic (fixed K order).

Gluon is experimental and moves between Triton releases: the imports are guarded, `available()` says whether this
Triton has the API used here, and callers check `supported()` first (kernel.linear_triton, configs'
hopper_weight_only_config). No GPU work at import.
"""

from __future__ import annotations

import functools

import torch

from ...formats import CODES_PER_BYTE
from .configs import HopperWeightOnlyConfig

try:  # Gluon's Hopper API as of Triton 3.5-3.9
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

    # Triton 3.7+ names the TMA copies async_load / async_store (the old names raise there), and the barrier
    _tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
    _tma_store = getattr(tma, "async_store", None) or tma.async_copy_shared_to_global
    _thread_barrier = getattr(gl, "thread_barrier", None) or gl.barrier  # renamed in Triton 3.7+
    _HAVE_GLUON = hasattr(gl, "NVMMADistributedLayout")
except ImportError:  # older Triton, or a newer one whose Gluon moved
    _HAVE_GLUON = False


if _HAVE_GLUON:
    # Per slice s: (mask of slice s's two bits in each 16-bit half, 1 / step, -(base / step + 1)) as 32-bit
    # immediates of bf16x2 / f16x2 pairs; step = 4**s (bf16's slice 3: its high bit is the exponent's low bit, so
    # 0, 1, 2 become 128, 192, 256, step 64 again)
    _DECODE_BF16 = (
        ("0x00030003", "0x3F803F80", "0xC301C301"),
        ("0x000C000C", "0x3E803E80", "0xC204C204"),
        ("0x00300030", "0x3D803D80", "0xC110C110"),
        ("0x00C000C0", "0x3C803C80", "0xC040C040"),
    )
    _DECODE_F16 = (
        ("0x00030003", "0x3C003C00", "0xE401E401"),
        ("0x000C000C", "0x34003400", "0xDC04DC04"),
        ("0x00300030", "0x2C002C00", "0xD410D410"),
        ("0x00C000C0", "0x24002400", "0xCC40CC40"),
    )

    @gluon.constexpr_function
    def _decode_asm(s, slices, is_bf16):
        # spread bytes j, j + 1 to the low bytes of a word's halves (ptxas shares this across a byte's slices)
        spread = "{ .reg .b32 w, t, a, b; cvt.u32.u16 w, $1; prmt.b32 t, w, 0, 0x4140; "
        if slices == 8:
            # binary: bit s becomes the sign of 1.0 (set: +1, clear: -1), shifted to bit 15 of each half
            one = "0x3F803F80" if is_bf16 else "0x3C003C00"
            return spread + f"shl.b32 t, t, {15 - s}; lop3.b32 $0, t, 0x80008000, {one}, 0xAE; }}"
        # ternary: slice s's codes into the mantissa of base (128 bf16, 1024 fp16), then w = v / step - (base /
        # step + 1)
        mask, scale, bias = (_DECODE_BF16 if is_bf16 else _DECODE_F16)[s]
        exp, fma = ("0x43004300", "fma.rn.bf16x2") if is_bf16 else ("0x64006400", "fma.rn.f16x2")
        return (
            spread + f"lop3.b32 t, t, {mask}, {exp}, 0xEA; mov.b32 a, {scale}; mov.b32 b, {bias}; {fma} $0, t, a, b; }}"
        )

    @gluon.jit
    def _decode_slice(p, s: gl.constexpr, SLICES: gl.constexpr, IS_BF16: gl.constexpr):
        """Slice s of packed bytes p -> its weights as bf16/fp16, exact: ternary w = code - 1 (4 slices a byte),
        binary w = 2 bit - 1 (8). Two bytes a call (the two consecutive K columns a 32-bit wgmma operand register
        holds): 1 PRMT per 2 bytes, then 2 instructions a register (LOP3 + FMA; binary SHL + LOP3)."""
        asm: gl.constexpr = _decode_asm(s, SLICES, IS_BF16)
        return gl.inline_asm_elementwise(asm, "=r,h", [p], gl.bfloat16 if IS_BF16 else gl.float16, True, 2)

    @gluon.jit
    def _hold(t):
        """Keeps the 32-bit registers of a wgmma's register operand t live to this point (an empty asm that reads
        them). warpgroup_mma_wait's deps name t's 16-bit halves, which ptxas may keep elsewhere: it then reused the
        operand's own registers for the next stage's decode while the wgmmas still read them (outputs off at random
        in v21's first runs)."""
        return gl.inline_asm_elementwise("// hold $1", "=r,r", [t], t.dtype, False, 2)

    @gluon.jit
    def _load_stage(x_desc, w_desc, x_smem, w_smem, ready, it, off_m, off_n, pred,
                    STAGES: gl.constexpr, BKP: gl.constexpr):  # fmt: skip
        # one copy of packed weights, one of the activation slices (x_desc views x [M, S KP] as [S, M, KP]:
        # slice s of packed byte j meets activation column s * KP + j); each copy costs a CTA barrier here
        stage = it % STAGES
        bar = ready.index(stage)
        mbarrier.expect(bar, w_desc.block_type.nbytes + x_desc.block_type.nbytes, pred=pred)
        _tma_load(w_desc, [off_n, it * BKP], bar, w_smem.index(stage), pred=pred)
        _tma_load(x_desc, [0, off_m, it * BKP], bar, x_smem.index(stage), pred=pred)

    @gluon.jit
    def _weight_only_sm90_kernel(
        x_desc,  # bf16/fp16 [M, K] activations as [SLICES, M, KP], blocks [SLICES, BLOCK_M, BKP]
        w_desc,  # uint8 [N, KP] packed codes, blocks [BLOCK_N, BKP]
        w_scale_ptr,  # float32 [N] or [1]
        bias_ptr,  # [N] or a dummy pointer
        y_desc,  # [M, N] output, blocks [BLOCK_M, BLOCK_N]
        M,
        N,
        KP,
        w_scale_stride,  # 1 per-channel, 0 per-tensor
        HAS_BIAS: gl.constexpr,
        IS_BF16: gl.constexpr,
        GROUP_M: gl.constexpr,
        STAGES: gl.constexpr,
        num_warps: gl.constexpr,
    ):
        SLICES: gl.constexpr = x_desc.block_type.shape[0]  # codes a packed byte: 4 ternary, 8 binary
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

        # y^T = W x^T: the decoded weights are the wgmma's register operand, the tokens its N
        mma: gl.constexpr = gl.NVMMADistributedLayout(
            version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_M, 16]
        )
        a_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma, k_width=2)

        w_smem = gl.allocate_shared_memory(gl.uint8, [STAGES, BLOCK_N, BKP], w_desc.layout)
        x_smem = gl.allocate_shared_memory(x_desc.dtype, [STAGES, SLICES, BLOCK_M, BKP], x_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(STAGES):
            mbarrier.init(ready.index(i), count=1)

        # At least one step, so that no path reaches the last wait with the accumulator set outside the loop:
        # ptxas then serializes every wgmma (C7515). Callers guarantee KP >= BKP.
        n_iter = gl.maximum(gl.cdiv(KP, BKP), 1)
        for i in gl.static_range(STAGES):
            _load_stage(x_desc, w_desc, x_smem, w_smem, ready, i, off_m, off_n, i < n_iter, STAGES, BKP)

        acc = gl.zeros([BLOCK_N, BLOCK_M], gl.float32, layout=mma)
        for i in range(n_iter):
            stage = i % STAGES
            mbarrier.wait(ready.index(stage), (i // STAGES) & 1)
            p = w_smem.index(stage).load(a_layout)
            xs = x_smem.index(stage).reshape([SLICES * BLOCK_M, BKP])  # the slices' tiles, one under the other
            # slice s + 1 is decoded while slice s multiplies; each wait retires the slice before, whose operand
            # registers are then released (_hold). No register operand is in flight across the loop's back edge.
            t_prev = _decode_slice(p, 0, SLICES, IS_BF16)
            acc = warpgroup_mma(t_prev, xs.slice(0, BLOCK_M).permute((1, 0)), acc, is_async=True)
            for s in gl.static_range(1, SLICES):
                t = _decode_slice(p, s, SLICES, IS_BF16)
                acc = warpgroup_mma(t, xs.slice(s * BLOCK_M, BLOCK_M).permute((1, 0)), acc, is_async=True)
                acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
                _hold(t_prev)
                t_prev = t
            acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
            _hold(t_prev)
            if num_warps > 4:
                _thread_barrier()  # every warpgroup has retired its reads of this stage
            # this stage's buffers take the loads STAGES ahead
            nxt = i + STAGES
            _load_stage(x_desc, w_desc, x_smem, w_smem, ready, nxt, off_m, off_n, nxt < n_iter, STAGES, BKP)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        for i in gl.static_range(STAGES):
            mbarrier.invalidate(ready.index(i))

        rn = off_n + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(1, mma))
        y = acc * gl.load(w_scale_ptr + rn * w_scale_stride, mask=rn < N, other=0.0)[:, None]
        if HAS_BIAS:
            y = y + gl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(gl.float32)[:, None]
        # y^T through shared memory and one TMA store, which clips the tails (a register layout conversion here
        # made ptxas serialize the main loop's wgmmas in the A8 experiment of NOTES.md v12)
        y_smem = gl.allocate_shared_memory(y_desc.dtype, [BLOCK_M, BLOCK_N], y_desc.layout)
        y_smem.permute((1, 0)).store(y.to(y_desc.dtype))
        fence_async_shared()
        _tma_store(y_desc, [off_m, off_n], y_smem)
        tma.store_wait(pendings=0)


def available() -> bool:
    """Whether this Triton has the Gluon Hopper API the kernel is written against."""
    return _HAVE_GLUON


_GL_DTYPES = {torch.bfloat16: "bfloat16", torch.float16: "float16"}


def supported(
    cfg: HopperWeightOnlyConfig,
    x2: torch.Tensor,
    packed: torch.Tensor,
    k: int,
    y: torch.Tensor,
    bias=None,
    fmt: str = "ternary",
) -> bool:
    """Whether the kernel takes these tensors: TMA wants 16-byte aligned bases and row strides, whole stages
    along K (no slice's activation columns may run into the next slice's, nor padding codes: binary's are -1),
    and contiguous rows."""
    n, kp = packed.shape
    tensors = [x2, packed, y] + ([bias] if bias is not None else [])
    return (
        _HAVE_GLUON
        and x2.dtype in _GL_DTYPES
        and y.dtype == x2.dtype
        and k == CODES_PER_BYTE[fmt] * kp
        and kp % cfg.block_kp == 0
        and kp % 16 == 0
        and n % 8 == 0
        and all(t.is_contiguous() and t.data_ptr() % 16 == 0 for t in tensors)
    )


@functools.lru_cache(maxsize=64)
def _layouts(slices: int, block_m: int, block_n: int, block_kp: int, dtype: torch.dtype):
    gdt = getattr(gl, _GL_DTYPES[dtype])
    x_layout = gl.NVMMASharedLayout.get_default_for([slices, block_m, block_kp], gdt)
    w_layout = gl.NVMMASharedLayout.get_default_for([block_n, block_kp], gl.uint8)
    y_layout = gl.NVMMASharedLayout.get_default_for([block_m, block_n], gdt)
    return x_layout, w_layout, y_layout


def descriptors(cfg: HopperWeightOnlyConfig, x2: torch.Tensor, packed: torch.Tensor, y: torch.Tensor):
    """The kernel's TMA descriptors: activations, packed weights, output."""
    m, kp = x2.shape[0], packed.shape[1]
    slices = x2.shape[1] // kp  # codes a packed byte: 4 ternary, 8 binary
    x_layout, w_layout, y_layout = _layouts(slices, cfg.block_m, cfg.block_n, cfg.block_kp, x2.dtype)
    # a stage's activation slices in one copy: x [M, slices * KP] seen as [slices, M, KP]
    x_slices = x2.view(m, slices, kp).permute(1, 0, 2)
    x_desc = TensorDescriptor.from_tensor(x_slices, [slices, cfg.block_m, cfg.block_kp], x_layout)
    w_desc = TensorDescriptor.from_tensor(packed, [cfg.block_n, cfg.block_kp], w_layout)
    y_desc = TensorDescriptor.from_tensor(y, [cfg.block_m, cfg.block_n], y_layout)
    return x_desc, w_desc, y_desc


def weight_only_sm90(
    cfg: HopperWeightOnlyConfig,
    x2: torch.Tensor,
    packed: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
) -> None:
    """y [M, N] = x2 [M, K] @ (codes * w_scale)^T (+ bias), codes the ternary or binary weights packed in
    [N, K / 4] or [N, K / 8] (K tells which). The caller has checked `supported`."""
    m = x2.shape[0]
    n, kp = packed.shape
    x_desc, w_desc, y_desc = descriptors(cfg, x2, packed, y)
    w_scale = w_scale.reshape(-1)
    grid = (-(-m // cfg.block_m) * -(-n // cfg.block_n),)
    _weight_only_sm90_kernel[grid](
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
        STAGES=cfg.num_stages,
        num_warps=cfg.num_warps,
    )
