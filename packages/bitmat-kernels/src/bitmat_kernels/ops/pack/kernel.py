"""Triton kernels for packing and unpacking (layout: bitmat_kernels.formats)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ...formats import BITS_PER_CODE, packed_width


@triton.jit
def _pack_kernel(
    codes_ptr,  # int8 [R, K], row-major
    out_ptr,  # uint8 [R, KP]
    R,  # rows
    K,  # codes per row
    KP,  # packed bytes per row
    BITS: tl.constexpr,  # 2 (ternary) or 1 (binary)
    BLOCK_R: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)
    row_ok = rows[:, None] < R
    byte = tl.zeros((BLOCK_R, BLOCK_J), dtype=tl.int32)
    for s in tl.static_range(8 // BITS):
        k = s * KP + cols
        c = tl.load(codes_ptr + rows[:, None] * K + k[None, :], mask=row_ok & (k[None, :] < K), other=0)
        c = c.to(tl.int32)
        if BITS == 2:
            stored = c + 1
        else:
            stored = (c > 0).to(tl.int32)
        byte = byte | (stored << (s * BITS))
    tl.store(out_ptr + rows[:, None] * KP + cols[None, :], byte.to(tl.uint8), mask=row_ok & (cols[None, :] < KP))


@triton.jit
def _unpack_kernel(
    packed_ptr,  # uint8 [R, KP]
    out_ptr,  # int8 [R, K] codes, or float [R, K] codes * scale (SCALED)
    scale_ptr,  # float32 [R] or [1] (SCALED only)
    R,
    K,
    KP,
    scale_stride,  # 1 per-row scale, 0 per-tensor
    BITS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_J: tl.constexpr,
    SCALED: tl.constexpr = False,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_J + tl.arange(0, BLOCK_J)
    row_ok = rows[:, None] < R
    p = tl.load(packed_ptr + rows[:, None] * KP + cols[None, :], mask=row_ok & (cols[None, :] < KP), other=0)
    p = p.to(tl.int32)
    if SCALED:
        scale = tl.load(scale_ptr + rows * scale_stride, mask=rows < R, other=0.0)[:, None]
    for s in tl.static_range(8 // BITS):
        stored = (p >> (s * BITS)) & ((1 << BITS) - 1)
        if BITS == 2:
            c = stored - 1
        else:
            c = stored * 2 - 1
        k = s * KP + cols
        # cols past KP belong to no byte of this row: without the mask they would land in the
        # next slice's columns and overwrite what another program unpacked there
        ok = row_ok & (cols[None, :] < KP) & (k[None, :] < K)
        if SCALED:
            tl.store(out_ptr + rows[:, None] * K + k[None, :], (c * scale).to(out_ptr.dtype.element_ty), mask=ok)
        else:
            tl.store(out_ptr + rows[:, None] * K + k[None, :], c.to(tl.int8), mask=ok)


_BLOCK_R, _BLOCK_J = 16, 64


def pack_triton(codes: torch.Tensor, fmt: str) -> torch.Tensor:
    k = codes.shape[-1]
    kp = packed_width(k, fmt)
    flat = codes.reshape(-1, k)
    out = torch.empty(*codes.shape[:-1], kp, dtype=torch.uint8, device=codes.device)
    r = flat.shape[0]
    if r and kp:
        grid = (triton.cdiv(r, _BLOCK_R), triton.cdiv(kp, _BLOCK_J))
        _pack_kernel[grid](flat, out, r, k, kp, BITS=BITS_PER_CODE[fmt], BLOCK_R=_BLOCK_R, BLOCK_J=_BLOCK_J)
    return out


def unpack_triton(
    packed: torch.Tensor,
    in_features: int,
    fmt: str,
    scale: torch.Tensor | None = None,
    dtype: torch.dtype = torch.int8,
) -> torch.Tensor:
    """Codes as int8, or with `scale` (float32, one per row or one in all) codes * scale as `dtype`,
    in one pass (the dense weight, for dequantize and the weight-only prefill path)."""
    kp = packed.shape[-1]
    flat = packed.reshape(-1, kp)
    out = torch.empty(*packed.shape[:-1], in_features, dtype=dtype, device=packed.device)
    r = flat.shape[0]
    if r and kp:
        grid = (triton.cdiv(r, _BLOCK_R), triton.cdiv(kp, _BLOCK_J))
        scaled = scale is not None
        scale_arg = scale.reshape(-1) if scaled else flat
        stride = 1 if scaled and scale_arg.numel() > 1 else 0
        _unpack_kernel[grid](
            flat,
            out,
            scale_arg,
            r,
            in_features,
            kp,
            stride,
            BITS=BITS_PER_CODE[fmt],
            BLOCK_R=_BLOCK_R,
            BLOCK_J=_BLOCK_J,
            SCALED=scaled,
        )
    return out
