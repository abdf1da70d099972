"""Triton per-token activation quantization (matches quantize_activations_reference bit for bit)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# 1.5 * 2**23: adding and subtracting it rounds an fp32 of magnitude < 2**22 to the nearest
# integer, ties to even, exactly like torch.round, on the GPU and in the interpreter alike.
ROUND_MAGIC = tl.constexpr(12582912.0)


@triton.jit
def round_half_even(v):
    return (v + ROUND_MAGIC) - ROUND_MAGIC


@triton.jit
def nan_aware_max(amax, nan_seen):
    """max of a block of |x| (amax), NaN if nan_seen marks any NaN (tl.max alone would drop NaN)."""
    return tl.where(tl.max(nan_seen, axis=0) > 0, float("nan"), tl.max(amax, axis=0))


@triton.jit
def track_absmax(amax, nan_seen, v):
    """Per-lane running max |v| and NaN flags over a row's blocks (nan_aware_max reduces them)."""
    return tl.maximum(amax, tl.abs(v)), tl.maximum(nan_seen, (v != v).to(tl.int32))


@triton.jit
def block_absmax(v):
    """max |v| over a block held in registers; NaN if any element is NaN."""
    return nan_aware_max(tl.abs(v), (v != v).to(tl.int32))


@triton.jit
def start_after_writer(GDC: tl.constexpr):
    """Programmatic dependent launch of a kernel that reads activations: x may still be being written by the kernel
    before, so wait for it (all earlier kernels are then done, so the next kernel may read anything but this one's
    output), then let the next kernel start."""
    if GDC:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()


@triton.jit
def token_absmax(x_row_ptr, K, BLOCK_K: tl.constexpr):
    """max |x| over one row; NaN if any element is NaN."""
    amax = tl.zeros((BLOCK_K,), dtype=tl.float32)
    nan_seen = tl.zeros((BLOCK_K,), dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        offs = k0 + tl.arange(0, BLOCK_K)
        v = tl.load(x_row_ptr + offs, mask=offs < K, other=0.0).to(tl.float32)
        amax, nan_seen = track_absmax(amax, nan_seen, v)
    return nan_aware_max(amax, nan_seen)


@triton.jit
def token_scales(absmax, eps):
    """(finite, s, scale) for a token of max |x| = absmax: s = 127 / max(absmax, eps) multiplies x,
    scale = max(absmax, eps) / 127 is stored; a non-finite token gets s = 0 and scale NaN."""
    finite = absmax < float("inf")  # False for inf and NaN
    # explicit fp32: the interpreter would otherwise carry the Python float eps as fp64
    clamped = tl.maximum(absmax, eps).to(tl.float32)
    # correctly rounded division on every target, like torch's tensor / tensor
    s = tl.where(finite, tl.math.div_rn(127.0, clamped), 0.0).to(tl.float32)
    scale = tl.where(finite, tl.math.div_rn(clamped, 127.0), float("nan")).to(tl.float32)
    return finite, s, scale


@triton.jit
def quantize_value(v, s):
    # clamp before rounding (the bounds are integers, so it is the same) and so the product is
    # never fused with the rounding add into one FMA, which could round differently.
    q = tl.minimum(tl.maximum(v * s, -128.0), 127.0)
    return round_half_even(q)


@triton.jit
def quantize_block(v, eps):
    """A whole token's values (float32, held in registers) -> (codes as int32, scale): one absmax pass, no
    second read of memory."""
    finite, s, scale = token_scales(block_absmax(v), eps)
    return tl.where(finite, quantize_value(v, s), 0.0).to(tl.int32), scale


@triton.jit
def quantize_row(src_row, dst_row, N, absmax, eps, BLOCK: tl.constexpr):
    """The int8 codes of a token of max |x| = absmax, read from src_row block by block into dst_row; returns
    (sum of the codes, scale). A row this program just stored needs a tl.debug_barrier() before."""
    finite, s, scale = token_scales(absmax, eps)
    total = tl.zeros((BLOCK,), dtype=tl.int32)
    for n0 in range(0, N, BLOCK):
        offs = n0 + tl.arange(0, BLOCK)
        v = tl.load(src_row + offs, mask=offs < N, other=0.0).to(tl.float32)
        q = tl.where(finite, quantize_value(v, s), 0.0).to(tl.int32)
        total += q
        tl.store(dst_row + offs, q.to(tl.int8), mask=offs < N)
    return tl.sum(total, axis=0), scale


@triton.jit
def round_to(v, out_dtype: tl.constexpr):
    """float32 -> out_dtype, to nearest even. bfloat16 in integer arithmetic: the interpreter's conversion
    truncates, and the result must be the very value torch's `.to(torch.bfloat16)` gives (NaN stays NaN)."""
    if out_dtype == tl.bfloat16:
        bits = v.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True).to(tl.bfloat16)
    else:
        return v.to(out_dtype)


@triton.jit
def quantize_token(x_ptr, xq_ptr, scale_ptr, sum_ptr, row, K, eps, BLOCK_K: tl.constexpr, WRITE_SUM: tl.constexpr,
                   ONE_BLOCK: tl.constexpr):  # fmt: skip
    """One token (row, int64) of _quantize_activations_kernel."""
    x_row = x_ptr + row * K
    if ONE_BLOCK:
        # the whole row in registers: one read of x, no second trip to memory (a decode step's
        # latency, where this kernel sits between a norm and the GEMV)
        offs = tl.arange(0, BLOCK_K)
        v = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
        q, scale = quantize_block(v, eps)
        tl.store(xq_ptr + row * K + offs, q.to(tl.int8), mask=offs < K)
        total = tl.sum(q, axis=0)
    else:
        total, scale = quantize_row(x_row, xq_ptr + row * K, K, token_absmax(x_row, K, BLOCK_K), eps, BLOCK_K)
    if WRITE_SUM:
        tl.store(sum_ptr + row, total)
    tl.store(scale_ptr + row, scale)


@triton.jit
def _quantize_activations_kernel(
    x_ptr,  # float [M, K]
    xq_ptr,  # int8 [M, K]
    scale_ptr,  # float32 [M]
    sum_ptr,  # int32 [M]: sum of each token's codes (for the matmul's offset), if WRITE_SUM
    M,
    K,
    eps,
    BLOCK_K: tl.constexpr,
    WRITE_SUM: tl.constexpr,
    ONE_BLOCK: tl.constexpr = False,  # K <= BLOCK_K
    GDC: tl.constexpr = False,  # launched with programmatic dependent launch, and so is the kernel after it
    BEHIND: tl.constexpr = False,  # a later chunk of a chunked A8 GEMM: see below
):
    if not BEHIND:
        start_after_writer(GDC)
        quantize_token(x_ptr, xq_ptr, scale_ptr, sum_ptr, tl.program_id(0).to(tl.int64), K, eps, BLOCK_K, WRITE_SUM,
                       ONE_BLOCK)  # fmt: skip
    else:
        # Chunk c + 1's tokens while chunk c's GEMM runs (linear_triton, a8_chunks): that GEMM lets this kernel
        # launch once all its tiles are resident, and x was complete before it started, so there is nothing to wait
        # for. A small grid looping over the tokens takes the SMs the GEMM's last wave leaves idle (on long rows its
        # registers do not fit beside two GEMM tiles). The wait at the end makes this kernel finish after that GEMM,
        # so the chain of waits stays unbroken: the next GEMM waits for this kernel, and whatever follows the last
        # GEMM waits for all of them.
        if GDC:
            tl.extra.cuda.gdc_launch_dependents()
        for row in range(tl.program_id(0), M, tl.num_programs(0)):
            quantize_token(x_ptr, xq_ptr, scale_ptr, sum_ptr, tl.cast(row, tl.int64), K, eps, BLOCK_K, WRITE_SUM,
                           ONE_BLOCK)  # fmt: skip
        if GDC:
            tl.extra.cuda.gdc_wait()


def num_warps_for(block: int) -> int:
    """Warps of one row's program: 32 values a thread up to 16384 features, 64 above (measured faster than 32
    warps at 32768, NOTES.md v12)."""
    return 4 if block <= 2048 else 8 if block <= 8192 else 16


# Rows up to this many features are quantized from registers after one read of x; longer rows are read twice
# (absmax, then codes). 32768 rather than 16384: a Llama-70B down projection's rows (28672) in one read,
# H100 M = 4096: 193 -> 139 us (NOTES.md v12).
MAX_ONE_READ = 32768


def quantize_activations_triton(
    x: torch.Tensor, eps: float, with_sum: bool = False, pdl: bool = False, behind: int = 0
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_q, scale) like the reference; with_sum=True also returns each token's int32 sum of codes.
    pdl (Hopper and newer): launch with programmatic dependent launch, so this kernel is resident before the one
    that writes x has finished; the next kernel must be launched the same way and wait for this one's output.
    behind > 0: run as `behind` programs looping over the tokens, beside the GEMM launched just before, which must
    not read this call's output (_quantize_activations_kernel's BEHIND)."""
    k = x.shape[-1]
    flat = x.reshape(-1, k)
    m = flat.shape[0]
    xq = torch.empty(flat.shape, dtype=torch.int8, device=x.device)
    scale = torch.empty(m, dtype=torch.float32, device=x.device)
    sums = torch.empty(m if with_sum else 1, dtype=torch.int32, device=x.device)
    if m:
        block = min(triton.next_power_of_2(max(k, 16)), MAX_ONE_READ)
        warps = num_warps_for(block)
        _quantize_activations_kernel[(min(m, behind) if behind else m,)](
            flat, xq, scale, sums, m, k, eps, BLOCK_K=block, WRITE_SUM=with_sum, ONE_BLOCK=k <= block,
            GDC=pdl, BEHIND=behind > 0, num_warps=warps, **({"launch_pdl": True} if pdl else {}),
        )  # fmt: skip
    out = xq.view(x.shape), scale.view(*x.shape[:-1], 1)
    return (*out, sums) if with_sum else out


@triton.jit
def plane_steps(absmax):
    """(finite, 1 / step, step) of a token of max |x| = absmax for activation_planes (its reference says why)."""
    finite = absmax < float("inf")
    e = tl.maximum((absmax.to(tl.int32, bitcast=True) >> 23) & 0xFF, 30)
    e = tl.where(finite, e, 30)
    inv = ((283 - e) << 23).to(tl.float32, bitcast=True)
    step = tl.where(finite, ((e - 29) << 23).to(tl.float32, bitcast=True), float("nan"))
    return finite, inv, step


@triton.jit
def fixed_point(v, inv, finite):
    """round(v * inv) as int32, ties away from zero (|v * inv| < 2**30); 0 for a non-finite token."""
    f = v * inv
    q = f.to(tl.int32)
    r = f - q.to(tl.float32)
    q = q + (r >= 0.5).to(tl.int32) - (r <= -0.5).to(tl.int32)
    return tl.where(finite, q, 0)


@triton.jit
def plane_digit(q):
    """(the balanced base-256 digit of q in [-128, 127], what is left of q above it)"""
    d = ((q + 128) & 0xFF) - 128
    return d, (q - d) >> 8


@triton.jit
def plane_digits(q):
    """q = d0 + d1 256 + d2 256**2 + d3 256**3, every d in [-128, 127] (|q| <= 2**30)."""
    d0, q = plane_digit(q)
    d1, q = plane_digit(q)
    d2, q = plane_digit(q)
    d3, q = plane_digit(q)
    return d0, d1, d2, d3


@triton.jit
def _activation_planes_kernel(
    x_ptr,  # float [M, K]
    planes_ptr,  # int8 [M * 4, K]
    step_ptr,  # float32 [M]
    sum_ptr,  # int32 [M * 4]
    K,
    BLOCK_K: tl.constexpr,
    ONE_BLOCK: tl.constexpr,  # K <= BLOCK_K: one read of x
    ABS_BLOCK: tl.constexpr,  # otherwise the absmax pass's block (<= 16384 values a load)
    GDC: tl.constexpr = False,  # programmatic dependent launch, as in _quantize_activations_kernel
):
    start_after_writer(GDC)
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * K
    if ONE_BLOCK:
        offs = tl.arange(0, BLOCK_K)
        v = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
        absmax = block_absmax(v)
    else:
        absmax = token_absmax(x_row, K, ABS_BLOCK)
    finite, inv, step = plane_steps(absmax)
    s0 = 0
    s1 = 0
    s2 = 0
    s3 = 0
    out = planes_ptr + 4 * row * K
    for k0 in range(0, K, BLOCK_K):
        offs = k0 + tl.arange(0, BLOCK_K)
        if not ONE_BLOCK:
            v = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
        d0, d1, d2, d3 = plane_digits(fixed_point(v, inv, finite))
        tl.store(out + offs, d0.to(tl.int8), mask=offs < K)
        tl.store(out + K + offs, d1.to(tl.int8), mask=offs < K)
        tl.store(out + 2 * K + offs, d2.to(tl.int8), mask=offs < K)
        tl.store(out + 3 * K + offs, d3.to(tl.int8), mask=offs < K)
        s0 += tl.sum(d0, axis=0)
        s1 += tl.sum(d1, axis=0)
        s2 += tl.sum(d2, axis=0)
        s3 += tl.sum(d3, axis=0)
    tl.store(sum_ptr + 4 * row, s0)
    tl.store(sum_ptr + 4 * row + 1, s1)
    tl.store(sum_ptr + 4 * row + 2, s2)
    tl.store(sum_ptr + 4 * row + 3, s3)
    tl.store(step_ptr + row, step)


def activation_planes_triton(x: torch.Tensor, pdl: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """activation_planes_reference on the GPU (bit for bit): x [M, K] float -> (planes int8 [M * 4, K], step
    float32 [M], plane sums int32 [M * 4]). pdl as in quantize_activations_triton."""
    m, k = x.shape
    planes = torch.empty(m * 4, k, dtype=torch.int8, device=x.device)
    step = torch.empty(m, dtype=torch.float32, device=x.device)
    sums = torch.empty(m * 4, dtype=torch.int32, device=x.device)
    if m:
        # 16 values a thread: four digits of a 28672-value row held at once spilled (8192x28672 M=1: 118 against 33
        # us); longer rows take 16384-value loads for the absmax, then 8192-value blocks from L2 (NOTES.md v16)
        block = min(triton.next_power_of_2(max(k, 16)), 8192)
        _activation_planes_kernel[(m,)](
            x, planes, step, sums, k, BLOCK_K=block, ONE_BLOCK=k <= block,
            ABS_BLOCK=min(triton.next_power_of_2(k), 16384), GDC=pdl,
            num_warps=max(4, block // 512), **({"launch_pdl": True} if pdl else {}),
        )  # fmt: skip
    return planes, step, sums
