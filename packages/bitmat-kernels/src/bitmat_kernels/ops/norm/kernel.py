"""Triton RMSNorm + per-token int8 quantization of its output in one pass over each row."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..quantize.kernel import nan_aware_max, num_warps_for, quantize_block, quantize_row, round_to, track_absmax

MAX_ONE_BLOCK = 16384  # features a row held in registers at once (32 values a thread at most)


@triton.jit
def _normalize(v, r, w_ptr, offs, K, out_dtype: tl.constexpr, HAS_WEIGHT: tl.constexpr):
    """A block of a row (v, float32) times r, rounded to the output dtype, times the weight, rounded again:
    the roundings of torch's `weight * (x * r).to(dtype)`."""
    y = round_to(v * r, out_dtype)
    if HAS_WEIGHT:
        w = tl.load(w_ptr + offs, mask=offs < K, other=0.0)
        y = round_to(w.to(tl.float32) * y.to(tl.float32), out_dtype)
    return y


@triton.jit
def _rms_norm_quantize_kernel(
    x_ptr,  # float [M, K]
    w_ptr,  # x's dtype [K] (unused without HAS_WEIGHT)
    y_ptr,  # x's dtype [M, K]
    yq_ptr,  # int8 [M, K]
    scale_ptr,  # float32 [M]
    sum_ptr,  # int32 [M]
    K,
    inv_k,  # 1 / K in float32, as torch's mean multiplies by it
    eps,
    quant_eps,
    BLOCK_K: tl.constexpr,
    ONE_BLOCK: tl.constexpr,
    HAS_WEIGHT: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * K
    out_dtype: tl.constexpr = y_ptr.dtype.element_ty
    if ONE_BLOCK:
        offs = tl.arange(0, BLOCK_K)
        v = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
        r = tl.math.rsqrt(tl.sum(v * v, axis=0) * inv_k + eps)
        y = _normalize(v, r, w_ptr, offs, K, out_dtype, HAS_WEIGHT)
        tl.store(y_ptr + row * K + offs, y, mask=offs < K)
        q, scale = quantize_block(y.to(tl.float32), quant_eps)
        tl.store(yq_ptr + row * K + offs, q.to(tl.int8), mask=offs < K)
        total = tl.sum(q, axis=0)
    else:
        # three passes: the sum of squares; y and its absmax; the codes, from y read back (still in L2) after a
        # barrier that makes every thread's stores visible to the others
        acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs = k0 + tl.arange(0, BLOCK_K)
            v = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
            acc += v * v
        r = tl.math.rsqrt(tl.sum(acc, axis=0) * inv_k + eps)
        amax = tl.zeros((BLOCK_K,), dtype=tl.float32)
        nan_seen = tl.zeros((BLOCK_K,), dtype=tl.int32)
        for k0 in range(0, K, BLOCK_K):
            offs = k0 + tl.arange(0, BLOCK_K)
            v = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
            y = _normalize(v, r, w_ptr, offs, K, out_dtype, HAS_WEIGHT)
            tl.store(y_ptr + row * K + offs, y, mask=offs < K)
            amax, nan_seen = track_absmax(amax, nan_seen, y.to(tl.float32))
        tl.debug_barrier()
        absmax = nan_aware_max(amax, nan_seen)
        total, scale = quantize_row(y_ptr + row * K, yq_ptr + row * K, K, absmax, quant_eps, BLOCK_K)
    tl.store(sum_ptr + row, total)
    tl.store(scale_ptr + row, scale)


def rms_norm_quantize_triton(
    x: torch.Tensor, weight: torch.Tensor | None, eps: float, quant_eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, y_q, scale, row_sum) like rms_norm_quantize_reference; x contiguous."""
    k = x.shape[-1]
    flat = x.reshape(-1, k)
    m = flat.shape[0]
    y = torch.empty_like(flat)
    yq = torch.empty(flat.shape, dtype=torch.int8, device=x.device)
    scale = torch.empty(m, dtype=torch.float32, device=x.device)
    row_sum = torch.empty(m, dtype=torch.int32, device=x.device)
    if m:
        block = min(triton.next_power_of_2(max(k, 16)), MAX_ONE_BLOCK)
        _rms_norm_quantize_kernel[(m,)](
            flat, weight if weight is not None else flat, y, yq, scale, row_sum, k, 1.0 / k, eps, quant_eps,
            BLOCK_K=block, ONE_BLOCK=k <= block, HAS_WEIGHT=weight is not None, num_warps=num_warps_for(block),
        )  # fmt: skip
    return y.view(x.shape), yq.view(x.shape), scale.view(*x.shape[:-1], 1), row_sum
