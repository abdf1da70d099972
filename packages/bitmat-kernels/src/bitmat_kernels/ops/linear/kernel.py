"""Triton ternary/binary matmul kernels and their launchers.

Weights arrive packed (bitmat_kernels.formats): byte j of a row holds columns s * KP + j for each
slice s, so a [BLOCK_KP, BLOCK_N] tile of bytes unpacks, slice by slice, into int8 tiles that
meet contiguous [BLOCK_M, BLOCK_KP] tiles of activations in one tl.dot each.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ...backend import interpreter_enabled
from ...formats import BITS_PER_CODE
from ..quantize.kernel import quantize_activations_triton


@triton.jit
def unpack_slice(p, s: tl.constexpr, BITS: tl.constexpr):
    """Codes of slice s from int32 bytes p: ternary stored + 1, binary bit -> +-1."""
    stored = (p >> (s * BITS)) & ((1 << BITS) - 1)
    if BITS == 2:
        return stored - 1
    else:
        return stored * 2 - 1


@triton.jit
def _bitmat_gemm_kernel(
    x_ptr,  # [M, K]: int8 codes (A8) or float activations (weight-only)
    x_scale_ptr,  # float32 [M] per-token scale (A8 only)
    w_ptr,  # uint8 [N, KP] packed weights
    w_scale_ptr,  # float32 [N] or [1]
    bias_ptr,  # [N] or a dummy pointer
    y_ptr,  # [M, N] output, x's original dtype
    M,
    N,
    K,
    KP,  # packed bytes per weight row
    w_scale_stride,  # 1 per-channel, 0 per-tensor
    HAS_BIAS: tl.constexpr,
    BITS: tl.constexpr,  # 2 ternary, 1 binary
    A8: tl.constexpr,  # int8 activations through int8 tl.dot, int32 accumulator
    IEEE_FP32: tl.constexpr,  # fp32 activations: full-precision dot, not tf32
    UPCAST_BF16: tl.constexpr,  # the Triton interpreter's bf16 tl.dot is wrong: use fp32 there
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_KP: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    rj = tl.arange(0, BLOCK_KP)
    if A8:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for j0 in range(0, KP, BLOCK_KP):
        j = j0 + rj
        p = tl.load(w_ptr + rn[None, :] * KP + j[:, None], mask=(j[:, None] < KP) & (rn[None, :] < N), other=0)
        p = p.to(tl.int32)
        for s in tl.static_range(8 // BITS):
            k = s * KP + j
            x_mask = (rm[:, None] < M) & (j[None, :] < KP) & (k[None, :] < K)
            xs = tl.load(x_ptr + rm[:, None] * K + k[None, :], mask=x_mask, other=0)
            if UPCAST_BF16:
                xs = xs.to(tl.float32)
            w = unpack_slice(p, s, BITS)
            if A8:
                acc = tl.dot(xs, w.to(tl.int8), acc, out_dtype=tl.int32)
            elif IEEE_FP32 or UPCAST_BF16:
                acc = tl.dot(xs, w.to(xs.dtype), acc, input_precision="ieee")
            else:
                acc = tl.dot(xs, w.to(xs.dtype), acc)
    y = acc.to(tl.float32)
    if A8:
        y = y * tl.load(x_scale_ptr + rm, mask=rm < M, other=0.0)[:, None]
    y = y * tl.load(w_scale_ptr + rn * w_scale_stride, mask=rn < N, other=0.0)[None, :]
    if HAS_BIAS:
        y = y + tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
    tl.store(
        y_ptr + rm[:, None] * N + rn[None, :], y.to(y_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N)
    )


def _gemm_blocks(m: int) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_KP, num_warps, num_stages)."""
    if interpreter_enabled():
        return 16, 32, 32, 4, 1
    if m <= 16:
        return 16, 64, 64, 4, 3
    if m <= 64:
        return 64, 64, 64, 4, 3
    return 128, 128, 32, 8, 3


def linear_triton(
    x: torch.Tensor,
    packed: torch.Tensor,
    scale: torch.Tensor,
    in_features: int,
    fmt: str,
    activation_bits: int | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
) -> torch.Tensor:
    k = in_features
    n, kp = packed.shape
    x2 = x.reshape(-1, k)
    m = x2.shape[0]
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if m == 0:
        return y.reshape(*x.shape[:-1], n)
    a8 = activation_bits == 8
    if a8:
        xq, x_scale = quantize_activations_triton(x2, eps)
    else:
        xq, x_scale = x2, scale  # x_scale unused
    w_scale = scale.reshape(-1)
    bm, bn, bkp, warps, stages = _gemm_blocks(m)
    grid = (triton.cdiv(m, bm), triton.cdiv(n, bn))
    _bitmat_gemm_kernel[grid](
        xq,
        x_scale,
        packed,
        w_scale,
        bias if bias is not None else w_scale,
        y,
        m,
        n,
        k,
        kp,
        1 if w_scale.numel() > 1 else 0,
        HAS_BIAS=bias is not None,
        BITS=BITS_PER_CODE[fmt],
        A8=a8,
        IEEE_FP32=x.dtype == torch.float32,
        UPCAST_BF16=not a8 and x.dtype == torch.bfloat16 and interpreter_enabled(),
        BLOCK_M=bm,
        BLOCK_N=bn,
        BLOCK_KP=bkp,
        num_warps=warps,
        num_stages=stages,
    )
    return y.reshape(*x.shape[:-1], n)
