"""Triton SiLU(gate) * up and the per-token int8 quantization of the product in one pass over each row."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..quantize.kernel import nan_aware_max, num_warps_for, quantize_block, quantize_row, round_to, track_absmax

# Rows longer than MAX_ONE_BLOCK go in chunks: h and its absmax, then the codes from h read back. H100, 2048 x
# 14336 (a Llama-3-8B prefill, halves of the fused gate/up product): the whole row in registers (16 warps, one
# program an SM) 145 us; chunks of 2048 read back 95 us, recomputed from gate and up 137; chunks of 1024 / 4096 /
# 8192 read back 101 / 121 / 170 us (all bit-identical; NOTES.md v11).
MAX_ONE_BLOCK = 2048


@triton.jit
def _silu_mul(g_row, u_row, offs, N, out_dtype: tl.constexpr):
    """One block of silu(gate) * up with torch's roundings: silu in float32 rounded to the dtype, then the
    product rounded again; as float32. Division correctly rounded, as in torch's kernel."""
    g = tl.load(g_row + offs, mask=offs < N, other=0.0).to(tl.float32)
    u = tl.load(u_row + offs, mask=offs < N, other=0.0).to(tl.float32)
    s = round_to(tl.math.div_rn(g, 1.0 + tl.exp(-g)), out_dtype).to(tl.float32)
    return round_to(s * u, out_dtype)


@triton.jit
def _silu_mul_quantize_kernel(
    g_ptr,  # float [M, N], row stride g_stride
    u_ptr,  # float [M, N], row stride u_stride
    h_ptr,  # [M, N] contiguous
    hq_ptr,  # int8 [M, N]
    scale_ptr,  # float32 [M]
    sum_ptr,  # int32 [M]
    N,
    g_stride,
    u_stride,
    quant_eps,
    BLOCK_N: tl.constexpr,
    ONE_BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    g_row, u_row = g_ptr + row * g_stride, u_ptr + row * u_stride
    out_dtype: tl.constexpr = h_ptr.dtype.element_ty
    if ONE_BLOCK:
        offs = tl.arange(0, BLOCK_N)
        h = _silu_mul(g_row, u_row, offs, N, out_dtype)
        tl.store(h_ptr + row * N + offs, h, mask=offs < N)
        q, scale = quantize_block(h.to(tl.float32), quant_eps)
        tl.store(hq_ptr + row * N + offs, q.to(tl.int8), mask=offs < N)
        total = tl.sum(q, axis=0)
    else:
        # two passes: h and its absmax; then the codes, from h read back (still in L2) after a barrier that makes
        # every thread's stores visible to the others
        amax = tl.zeros((BLOCK_N,), dtype=tl.float32)
        nan_seen = tl.zeros((BLOCK_N,), dtype=tl.int32)
        for n0 in range(0, N, BLOCK_N):
            offs = n0 + tl.arange(0, BLOCK_N)
            h = _silu_mul(g_row, u_row, offs, N, out_dtype)
            tl.store(h_ptr + row * N + offs, h, mask=offs < N)
            amax, nan_seen = track_absmax(amax, nan_seen, h.to(tl.float32))
        tl.debug_barrier()
        absmax = nan_aware_max(amax, nan_seen)
        total, scale = quantize_row(h_ptr + row * N, hq_ptr + row * N, N, absmax, quant_eps, BLOCK_N)
    tl.store(sum_ptr + row, total)
    tl.store(scale_ptr + row, scale)


def silu_mul_quantize_triton(
    gate: torch.Tensor, up: torch.Tensor, quant_eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(h, h_q, scale, row_sum) like silu_mul_quantize_reference; gate and up may be row-strided views (the two
    halves of a fused gate/up product) with a unit last stride."""
    n = gate.shape[-1]
    g2, u2 = gate.reshape(-1, n), up.reshape(-1, n)
    m = g2.shape[0]
    h = torch.empty(m, n, dtype=gate.dtype, device=gate.device)
    hq = torch.empty(m, n, dtype=torch.int8, device=gate.device)
    scale = torch.empty(m, dtype=torch.float32, device=gate.device)
    row_sum = torch.empty(m, dtype=torch.int32, device=gate.device)
    if m:
        block = min(triton.next_power_of_2(max(n, 16)), MAX_ONE_BLOCK)
        _silu_mul_quantize_kernel[(m,)](
            g2, u2, h, hq, scale, row_sum, n, g2.stride(0), u2.stride(0), quant_eps,
            BLOCK_N=block, ONE_BLOCK=n <= block, num_warps=num_warps_for(block),
        )  # fmt: skip
    shape = gate.shape
    return h.view(shape), hq.view(shape), scale.view(*shape[:-1], 1), row_sum
