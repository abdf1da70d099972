"""Triton ternary/binary matmul kernels and their launchers.

Weights arrive packed (bitmat_kernels.formats): byte j of a row holds column s * KP + j of each
slice s. Every kernel works on *stored* codes t (ternary t = code + 1 in {0, 1, 2}; binary t = bit)
so that unpacking is one shift and one mask, and fixes the offset once per output:

    sum_k x_k * code_k = a * sum_k x_k * t_k - sum_k x_k,   a = 1 (ternary) or 2 (binary)

Two families, picked by M (tokens):
* decode (M <= DECODE_MAX_M): memory-bound GEMV. A8 reads 4 packed bytes as one int32 word, turns
  each slice into 4 stored codes in one register (shift + mask) and multiplies them against 4 int8
  activations with one dp4a. Weight-only (its own kernel) places codes under the mantissa of 1.0, two
  codes a shift on four packed bytes a register (no int->float conversion), and uses FMAs.
* prefill (larger M): tensor-core GEMM computing y^T = W x^T. A [BLOCK_N, BLOCK_KP] tile of bytes
  unpacks (inline PTX on 4 bytes a register) into int8 tiles of stored codes that meet contiguous
  [BLOCK_KP, BLOCK_M] tiles of activations in one tl.dot each: int8 x int8 -> int32 for A8,
  bf16/fp16 for weight-only. Weight-only tiles mostly decode code pairs instead (code_pairs_as_halves:
  two slices a shift from a row's bytes read two at a time, into two accumulators).

Under the Triton interpreter (CPU tests) inline PTX cannot run, so the same kernels take a plain
shift-and-mask path and an emulated dp4a, selected by the USE_PTX constexpr.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

import torch
import triton
import triton.language as tl
import triton.runtime.errors as _runtime_errors
from triton.compiler.errors import CompilationError
from triton.runtime.errors import OutOfResources

from ...backend import interpreter_enabled
from ...formats import BITS_PER_CODE, CODES_PER_BYTE
from ..pack.kernel import unpack_triton
from ..quantize.kernel import (
    activation_planes_triton,
    quantize_activations_triton,
    quantize_value,
    token_absmax,
    token_scales,
)
from . import hopper
from .configs import (
    DECODE_MAX_M,
    SAFE_GEMM,
    GemmConfig,
    _is_sm90,
    _sm_count,
    decode_config,
    gemm_config,
    hopper_tile,
    hopper_weight_only_config,
    use_dequant,
    weight_only_planes,
)

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------
# unpacking helpers


@triton.jit
def stored_slice(p, s: tl.constexpr, BITS: tl.constexpr, USE_PTX: tl.constexpr):
    """Stored codes of slice s from a uint8 tile p, as an int8 tile of p's shape."""
    if not USE_PTX:
        return ((p.to(tl.int32) >> (s * BITS)) & ((1 << BITS) - 1)).to(tl.int8)
    # 4 bytes a register: shift the whole word, mask each byte (shift < 8, so no byte bleeds
    # into its neighbour's kept bits).
    if BITS == 2:
        if s == 0:
            return tl.inline_asm_elementwise("and.b32 $0, $1, 0x03030303;", "=r,r", [p], tl.int8, True, 4)
        elif s == 1:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 2; and.b32 $0, t, 0x03030303;}", "=r,r", [p], tl.int8, True, 4
            )
        elif s == 2:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 4; and.b32 $0, t, 0x03030303;}", "=r,r", [p], tl.int8, True, 4
            )
        else:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 6; and.b32 $0, t, 0x03030303;}", "=r,r", [p], tl.int8, True, 4
            )
    else:
        if s == 0:
            return tl.inline_asm_elementwise("and.b32 $0, $1, 0x01010101;", "=r,r", [p], tl.int8, True, 4)
        elif s == 1:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 1; and.b32 $0, t, 0x01010101;}", "=r,r", [p], tl.int8, True, 4
            )
        elif s == 2:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 2; and.b32 $0, t, 0x01010101;}", "=r,r", [p], tl.int8, True, 4
            )
        elif s == 3:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 3; and.b32 $0, t, 0x01010101;}", "=r,r", [p], tl.int8, True, 4
            )
        elif s == 4:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 4; and.b32 $0, t, 0x01010101;}", "=r,r", [p], tl.int8, True, 4
            )
        elif s == 5:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 5; and.b32 $0, t, 0x01010101;}", "=r,r", [p], tl.int8, True, 4
            )
        elif s == 6:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 6; and.b32 $0, t, 0x01010101;}", "=r,r", [p], tl.int8, True, 4
            )
        else:
            return tl.inline_asm_elementwise(
                "{.reg .b32 t; shr.b32 t, $1, 7; and.b32 $0, t, 0x01010101;}", "=r,r", [p], tl.int8, True, 4
            )


@triton.jit
def dp4a(a, b, c, USE_PTX: tl.constexpr):
    """c + sum of the 4 products of a's signed bytes with b's unsigned bytes (int32 words)."""
    if USE_PTX:
        return tl.inline_asm_elementwise("dp4a.s32.u32 $0, $1, $2, $3;", "=r,r,r,r", [a, b, c], tl.int32, True, 1)
    else:
        acc = c
        for i in tl.static_range(4):
            acc += ((a << (24 - 8 * i)) >> 24) * ((b >> (8 * i)) & 0xFF)
        return acc


@triton.jit
def stored_to_half(t, IS_BF16: tl.constexpr):
    """int8 stored codes (0..2) -> bf16/fp16 of the same value, 4 codes a register: each byte is
    placed under the exponent byte of 2**7 (bf16, 0x43) or 2**10 (fp16, 0x64), whose last mantissa
    bit is worth 1, and the power of two is subtracted: 2 permutes and 2 subtractions per 4 codes."""
    # PTX takes no immediate operands for packed 16-bit arithmetic: constants go through registers
    if IS_BF16:
        return tl.inline_asm_elementwise(
            "{ .reg .b32 lo, hi, e, c; mov.b32 e, 0x43434343; mov.b32 c, 0x43004300; "
            "prmt.b32 lo, $2, e, 0x5150; prmt.b32 hi, $2, e, 0x5352; "
            "sub.rn.bf16x2 $0, lo, c; sub.rn.bf16x2 $1, hi, c; }",
            "=r,=r,r",
            [t],
            tl.bfloat16,
            True,
            4,
        )
    else:
        return tl.inline_asm_elementwise(
            "{ .reg .b32 lo, hi, e, c; mov.b32 e, 0x64646464; mov.b32 c, 0x64006400; "
            "prmt.b32 lo, $2, e, 0x5150; prmt.b32 hi, $2, e, 0x5352; "
            "sub.rn.f16x2 $0, lo, c; sub.rn.f16x2 $1, hi, c; }",
            "=r,=r,r",
            [t],
            tl.float16,
            True,
            4,
        )


def _code_pair_as_floats_asm(bits: int, s: int) -> str:
    """PTX for code_pair_as_floats: one shift brings byte b's codes of slices s + 1 and s (bits 8b + (s + 1) * bits
    and 8b + s * bits) to bits 21 and 21 - bits; each is masked and OR-ed into 1.0."""
    lines = ["{ .reg .b32 t;"]
    for b in range(4):
        shift = 21 - 8 * b - (s + 1) * bits
        lines.append(f"shl.b32 t, $8, {shift};" if shift >= 0 else f"shr.u32 t, $8, {-shift};")
        for out, low in ((b, 21), (4 + b, 21 - bits)):
            mask = ((1 << bits) - 1) << low
            lines.append(f"lop3.b32 ${out}, t, {mask}, 0x3f800000, 0xea;")  # (t & mask) | 1.0
    return " ".join(lines) + " }"


_CP2_0: tl.constexpr = tl.constexpr(_code_pair_as_floats_asm(2, 0))
_CP2_2: tl.constexpr = tl.constexpr(_code_pair_as_floats_asm(2, 2))
_CP1_0: tl.constexpr = tl.constexpr(_code_pair_as_floats_asm(1, 0))
_CP1_2: tl.constexpr = tl.constexpr(_code_pair_as_floats_asm(1, 2))
_CP1_4: tl.constexpr = tl.constexpr(_code_pair_as_floats_asm(1, 4))
_CP1_6: tl.constexpr = tl.constexpr(_code_pair_as_floats_asm(1, 6))


@triton.jit
def code_pair_as_floats(p, s: tl.constexpr, BITS: tl.constexpr, USE_PTX: tl.constexpr):
    """Stored codes of slices s + 1 and s (s even) of a uint8 tile p as two float32 tiles, 1 + t/4 and
    1 + t/(4 * 2**BITS): each code placed in the top mantissa bits of 1.0. With PTX, one shift serves both codes
    of a byte and four bytes share a register: 1.5 instructions a code."""
    if not USE_PTX:
        t = p.to(tl.int32) >> (s * BITS)
        hi = ((t >> BITS) & ((1 << BITS) - 1)) << 21
        lo = (t & ((1 << BITS) - 1)) << (21 - BITS)
        return (hi | 0x3F800000).to(tl.float32, bitcast=True), (lo | 0x3F800000).to(tl.float32, bitcast=True)
    if BITS == 2:
        if s == 0:
            asm: tl.constexpr = _CP2_0
        else:
            asm: tl.constexpr = _CP2_2
    else:
        if s == 0:
            asm: tl.constexpr = _CP1_0
        elif s == 2:
            asm: tl.constexpr = _CP1_2
        elif s == 4:
            asm: tl.constexpr = _CP1_4
        else:
            asm: tl.constexpr = _CP1_6
    return tl.inline_asm_elementwise(asm, "=r,=r,=r,=r,=r,=r,=r,=r,r", [p], (tl.float32, tl.float32), True, 4)


def _code_pairs_as_halves_asm(bits: int, s: int, bf16: bool) -> str:
    """PTX for code_pairs_as_halves: a row's two packed bytes (one 16-bit register) are spread to bytes 0 and 2 of a
    word; one shift brings both bytes' codes of slice s + 1 to the top mantissa bits of a 16-bit float (bf16: bit 7 -
    bits, fp16: 10 - bits) and those of slice s `bits` lower; each pair is masked and OR-ed into two 1.0s."""
    top = (7 if bf16 else 10) - bits
    one = 0x3F803F80 if bf16 else 0x3C003C00
    shift = top - (s + 1) * bits
    code = (1 << bits) - 1
    lines = [
        "{ .reg .b32 t, u;",
        "cvt.u32.u16 t, $2;",
        "prmt.b32 t, t, 0, 0x4140;",  # bytes [b0, 0, b1, 0]
        f"shl.b32 u, t, {shift};" if shift >= 0 else f"shr.u32 u, t, {-shift};",
    ]
    for out, low in (("$0", top), ("$1", top - bits)):
        lines.append(f"lop3.b32 {out}, u, {(code << low) | (code << (low + 16))}, {one}, 0xea;")  # (u & mask) | 1.0
    return " ".join(lines) + " }"


# code_pairs_as_halves's PTX, indexed by (0 for bf16, 6 for fp16) + (0 ternary, 2 binary) + s // 2
_PAIRS_ASM: tl.constexpr = tl.constexpr(
    tuple(
        _code_pairs_as_halves_asm(bits, s, bf16)
        for bf16 in (True, False)
        for bits in (2, 1)
        for s in range(0, 8 // bits, 2)
    )
)
_SPLIT: tl.constexpr = tl.constexpr("mov.b32 {$0, $1}, $2;")


@triton.jit
def code_pairs_as_halves(
    h, s: tl.constexpr, BITS: tl.constexpr, IS_BF16: tl.constexpr, USE_PTX: tl.constexpr, BLOCK_N: tl.constexpr
):
    """Stored codes of slices s + 1 and s (s even) of a [BLOCK_N, H] int16 tile of packed byte pairs as two
    [BLOCK_N, 2H] 16-bit float tiles (bf16 or fp16; fp32 under the interpreter), 1 + t/2**BITS and 1 + t/4**BITS:
    each code in the top mantissa bits of 1.0, the lower slice BITS lower (one shift serves both). Byte 2i of a row
    is column 2i. With PTX: 7 SASS instructions for 8 codes (ptxas shares the spread between the two calls on the
    same bytes), each result register already the two 16-bit floats of consecutive columns that a tensor-core
    fragment holds (NOTES.md v14)."""
    H: tl.constexpr = h.shape[1]
    if USE_PTX:
        asm: tl.constexpr = _PAIRS_ASM[(0 if IS_BF16 else 6) + (2 - BITS) * 2 + s // 2]
        hi, lo = tl.inline_asm_elementwise(asm, "=r,=r,h", [h], (tl.int32, tl.int32), True, 1)
        # each word's two halves as two 16-bit tiles (free in SASS: the join below rebuilds the same registers)
        if IS_BF16:
            hi0, hi1 = tl.inline_asm_elementwise(_SPLIT, "=h,=h,r", [hi], (tl.bfloat16, tl.bfloat16), True, 1)
            lo0, lo1 = tl.inline_asm_elementwise(_SPLIT, "=h,=h,r", [lo], (tl.bfloat16, tl.bfloat16), True, 1)
        else:
            hi0, hi1 = tl.inline_asm_elementwise(_SPLIT, "=h,=h,r", [hi], (tl.float16, tl.float16), True, 1)
            lo0, lo1 = tl.inline_asm_elementwise(_SPLIT, "=h,=h,r", [lo], (tl.float16, tl.float16), True, 1)
    else:
        v = h.to(tl.int32) & 0xFFFF
        even = v & 0xFF
        odd = v >> 8
        code: tl.constexpr = (1 << BITS) - 1
        hi0 = 1.0 + ((even >> ((s + 1) * BITS)) & code).to(tl.float32) / (1 << BITS)
        hi1 = 1.0 + ((odd >> ((s + 1) * BITS)) & code).to(tl.float32) / (1 << BITS)
        lo0 = 1.0 + ((even >> (s * BITS)) & code).to(tl.float32) / (1 << (2 * BITS))
        lo1 = 1.0 + ((odd >> (s * BITS)) & code).to(tl.float32) / (1 << (2 * BITS))
    return tl.reshape(tl.join(hi0, hi1), (BLOCK_N, 2 * H)), tl.reshape(tl.join(lo0, lo1), (BLOCK_N, 2 * H))


@triton.jit
def scale_output(y, x_scale, rn, N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS: tl.constexpr):
    y = y * x_scale
    y = y * tl.load(w_scale_ptr + rn * w_scale_stride, mask=rn < N, other=0.0)
    if HAS_BIAS:
        y = y + tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)
    return y


@triton.jit
def finish_output(
    acc, row_sum, x_scale, rn, N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS: tl.constexpr, BITS: tl.constexpr
):
    """acc: sum x*t per output; row_sum: sum x per token -> y = (a*acc - row_sum) * scales + bias."""
    if BITS == 2:
        y = acc.to(tl.float32) - row_sum.to(tl.float32)
    else:
        y = 2.0 * acc.to(tl.float32) - row_sum.to(tl.float32)
    return scale_output(y, x_scale, rn, N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS)


@triton.jit
def plane_value(acc, row_sum, plane, BITS: tl.constexpr):
    """A plane row's exact integer dot (a*acc - row_sum, int32) weighted by its digit's place 2**(8 plane), int64
    (activation_planes: summed over a token's four planes, it is sum_k code_k q_k exactly)."""
    if BITS == 2:
        v = acc - row_sum
    else:
        v = 2 * acc - row_sum
    return v.to(tl.int64) << (8 * plane)


# ------------------------------------------------------------------------------------------------
# prefill: tensor-core GEMM


@triton.jit
def split_dot_fp32(t, xs, acc):
    """codes @ fp32 x at fp32 precision through bf16 tensor cores: x = hi + mid + lo exactly
    (each a bf16), codes are exact in bf16, products exact, sums in fp32. (Triton's own "ieee"
    fp32 dot fails to compile in some versions.)"""
    hi = xs.to(tl.bfloat16)
    r = xs - hi.to(tl.float32)
    mid = r.to(tl.bfloat16)
    lo = (r - mid.to(tl.float32)).to(tl.bfloat16)
    tb = t.to(tl.bfloat16)
    acc = tl.dot(tb, hi, acc)
    acc = tl.dot(tb, mid, acc)
    return tl.dot(tb, lo, acc)


@triton.jit
def _bitmat_gemm_kernel(
    x_ptr,  # [M, K]: int8 (A8) or float activations (weight-only)
    x_scale_ptr,  # float32 [M] per-token scale (A8 only)
    row_sum_ptr,  # [M] sum of each token's activations: int32 codes (A8) or float32 (weight-only)
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
    FP32_X: tl.constexpr,  # fp32 activations (weight-only): keep fp32 precision
    USE_PTX: tl.constexpr,  # False under the interpreter (which also computes dots in fp32 there)
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_KP: tl.constexpr,
    GROUP_M: tl.constexpr,  # programs sharing a weight column block run close in time (L2 reuse)
    SPLIT_K: tl.constexpr = 1,  # >1: each program sums a 1/SPLIT_K share of K into ws_ptr, unscaled
    FAST_CVT: tl.constexpr = False,  # weight-only bf16/fp16: codes -> 16-bit floats with PTX byte permutes
    HALF_IS_BF16: tl.constexpr = True,  # which 16-bit float FAST_CVT makes
    ws_ptr=None,  # [SPLIT_K, M, N] int32/float32 partial sums (SPLIT_K > 1)
    GDC: tl.constexpr = False,  # launched with programmatic dependent launch: wait for the quantizer's output
    WARP_SPEC: tl.constexpr = False,  # Triton's automatic warp specialization of the K loop (an experiment)
    CODE_PAIRS: tl.constexpr = False,  # weight-only bf16/fp16: w_ptr is int16 [N, KP / 2], code_pairs_as_halves decodes
    PLANES: tl.constexpr = False,  # A8 on activation_planes: x rows 4 m + p, x_scale_ptr the M // 4 tokens' steps
    LAUNCH_NEXT: tl.constexpr = False,  # with GDC: let the next kernel (the next chunk's quantizer) start now
):
    if GDC:
        tl.extra.cuda.gdc_wait()
        if LAUNCH_NEXT:
            tl.extra.cuda.gdc_launch_dependents()
    pid = tl.program_id(0)
    pid_k = tl.program_id(1)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_n
    first_m = (pid // group) * GROUP_M
    group_m = min(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % group_m
    pid_n = (pid % group) // group_m

    rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    rj = tl.arange(0, BLOCK_KP)
    # Weights are the left operand (y^T = W x^T): Hopper's wgmma takes its left operand from
    # registers, where the codes are unpacked, and the activations from shared memory; and a small
    # M becomes the instruction's narrow side (the "swap AB" layout for small batches).
    if A8:
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.int32)
    else:
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    # this program's share of the packed bytes along K (all of them without split-K)
    if SPLIT_K == 1:
        j_start = 0
        j_end = KP
    else:
        k_chunk = tl.cdiv(tl.cdiv(KP, SPLIT_K), BLOCK_KP) * BLOCK_KP
        j_start = pid_k * k_chunk
        j_end = tl.minimum(KP, j_start + k_chunk)
    if CODE_PAIRS:
        # Slices s + 1 and s decoded together as 1 + t/2**BITS and 1 + t/4**BITS (code_pairs_as_halves) into two
        # accumulators; their offsets are in row_sum (weight_only_row_offsets): y = 2**BITS acc + 4**BITS acc_lo - ...
        acc_lo = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        ri = tl.arange(0, BLOCK_KP // 2)
        KH = KP // 2
        for j0 in tl.range(j_start, j_end, BLOCK_KP, warp_specialize=WARP_SPEC):
            i = j0 // 2 + ri
            h_mask = (rn[:, None] < N) & (i[None, :] < j_end // 2)
            h = tl.load(w_ptr + rn[:, None] * KH + i[None, :], mask=h_mask, other=0)
            j = j0 + rj
            for s in tl.static_range(0, 8 // BITS, 2):
                k_lo = s * KP + j
                k_hi = k_lo + KP
                m_ok = (rm[None, :] < M) & (j[:, None] < j_end)
                x_lo = tl.load(x_ptr + rm[None, :] * K + k_lo[:, None], mask=m_ok & (k_lo[:, None] < K), other=0)
                x_hi = tl.load(x_ptr + rm[None, :] * K + k_hi[:, None], mask=m_ok & (k_hi[:, None] < K), other=0)
                f_hi, f_lo = code_pairs_as_halves(h, s, BITS, HALF_IS_BF16, USE_PTX, BLOCK_N)
                if USE_PTX:
                    acc = tl.dot(f_hi, x_hi, acc)
                    acc_lo = tl.dot(f_lo, x_lo, acc_lo)
                else:  # interpreter: fp32 dots (see below)
                    acc = tl.dot(f_hi, x_hi.to(tl.float32), acc, input_precision="ieee")
                    acc_lo = tl.dot(f_lo, x_lo.to(tl.float32), acc_lo, input_precision="ieee")
        acc = acc * (1 << BITS) + acc_lo * (1 << (2 * BITS))
    else:
        for j0 in tl.range(j_start, j_end, BLOCK_KP, warp_specialize=WARP_SPEC):
            j = j0 + rj
            p = tl.load(w_ptr + rn[:, None] * KP + j[None, :], mask=(rn[:, None] < N) & (j[None, :] < j_end), other=0)
            for s in tl.static_range(8 // BITS):
                k = s * KP + j
                x_mask = (rm[None, :] < M) & (j[:, None] < j_end) & (k[:, None] < K)
                xs = tl.load(x_ptr + rm[None, :] * K + k[:, None], mask=x_mask, other=0)  # [BLOCK_KP, BLOCK_M]
                t = stored_slice(p, s, BITS, USE_PTX)  # [BLOCK_N, BLOCK_KP]
                if A8:
                    acc = tl.dot(t, xs, acc, out_dtype=tl.int32)
                elif not USE_PTX:
                    # interpreter: its bf16 dot is wrong, so every float dot runs in fp32 there
                    acc = tl.dot(t.to(tl.float32), xs.to(tl.float32), acc, input_precision="ieee")
                elif FP32_X:
                    acc = split_dot_fp32(t, xs, acc)
                elif FAST_CVT:
                    acc = tl.dot(stored_to_half(t, HALF_IS_BF16), xs, acc)
                else:
                    acc = tl.dot(t.to(xs.dtype), xs, acc)
    out_mask = (rm[None, :] < M) & (rn[:, None] < N)
    if SPLIT_K > 1:
        tl.store(ws_ptr + (pid_k * M + rm[None, :]) * N + rn[:, None], acc, mask=out_mask)
        return
    row_sum = tl.load(row_sum_ptr + rm, mask=rm < M, other=0)[None, :]
    if PLANES:
        # a token's four plane columns are adjacent: sum them exactly in int64, round once to fp32
        v = plane_value(acc, row_sum, rm[None, :] % 4, BITS)
        dot = tl.sum(tl.reshape(v, (BLOCK_N, BLOCK_M // 4, 4)), axis=2)
        tok = pid_m * (BLOCK_M // 4) + tl.arange(0, BLOCK_M // 4)
        n_tok = M // 4
        step = tl.load(x_scale_ptr + tok, mask=tok < n_tok, other=0.0)[None, :]
        y = scale_output(dot.to(tl.float32), step, rn[:, None], N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS)
        tok_mask = (tok[None, :] < n_tok) & (rn[:, None] < N)
        tl.store(y_ptr + tok[None, :] * N + rn[:, None], y.to(y_ptr.dtype.element_ty), mask=tok_mask)
        return
    if A8:
        x_scale = tl.load(x_scale_ptr + rm, mask=rm < M, other=0.0)[None, :]
    else:
        x_scale = 1.0
    y = finish_output(acc, row_sum, x_scale, rn[:, None], N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS, BITS)
    tl.store(y_ptr + rm[None, :] * N + rn[:, None], y.to(y_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _split_k_finish_kernel(
    ws_ptr,  # [SPLIT_K, M, N] partial sums
    x_scale_ptr,
    row_sum_ptr,
    w_scale_ptr,
    bias_ptr,
    y_ptr,
    M,
    N,
    w_scale_stride,
    HAS_BIAS: tl.constexpr,
    BITS: tl.constexpr,
    A8: tl.constexpr,
    SPLIT_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PLANES: tl.constexpr = False,  # one program a token: its four plane rows (M counts plane rows)
):
    """Sums the split-K partials in a fixed order (deterministic) and applies the epilogue."""
    m = tl.program_id(0).to(tl.int64)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    if PLANES:
        dot = tl.zeros((BLOCK_N,), dtype=tl.int64)
        for p in tl.static_range(4):
            r = 4 * m + p
            part = tl.load(ws_ptr + r * N + rn, mask=rn < N, other=0)
            for s in tl.static_range(1, SPLIT_K):
                part += tl.load(ws_ptr + (s * M + r) * N + rn, mask=rn < N, other=0)
            dot += plane_value(part, tl.load(row_sum_ptr + r), p, BITS)
        y = scale_output(
            dot.to(tl.float32), tl.load(x_scale_ptr + m), rn, N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS
        )
        tl.store(y_ptr + m * N + rn, y.to(y_ptr.dtype.element_ty), mask=rn < N)
        return
    acc = tl.load(ws_ptr + m * N + rn, mask=rn < N, other=0)
    for s in tl.static_range(1, SPLIT_K):
        acc += tl.load(ws_ptr + (s * M + m) * N + rn, mask=rn < N, other=0)
    row_sum = tl.load(row_sum_ptr + m)
    if A8:
        x_scale = tl.load(x_scale_ptr + m)
    else:
        x_scale = 1.0
    y = finish_output(acc, row_sum, x_scale, rn, N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS, BITS)
    tl.store(y_ptr + m * N + rn, y.to(y_ptr.dtype.element_ty), mask=rn < N)


@triton.jit
def _weight_only_row_offsets_kernel(x_ptr, out_ptr, K, KP, HI: tl.constexpr, LO: tl.constexpr, BLOCK: tl.constexpr):
    """Per token: HI * (sum of x over the odd slices' columns) + LO * (over the even ones), in a fixed order: the
    offsets the code-pair GEMM subtracts (weight_only_row_offsets)."""
    m = tl.program_id(0).to(tl.int64)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK):
        k = k0 + tl.arange(0, BLOCK)
        v = tl.load(x_ptr + m * K + k, mask=k < K, other=0.0).to(tl.float32)
        acc += v * tl.where((k // KP) % 2 == 1, HI, LO)
    tl.store(out_ptr + m, tl.sum(acc, axis=0))


def weight_only_row_offsets(x2: torch.Tensor, kp: int, bits: int) -> torch.Tensor:
    """float32 [M]: what the code-pair GEMM's epilogue (finish_output) subtracts from 2**bits acc + 4**bits acc_lo.

    Slice s + 1 (odd) holds 1 + t/2**bits, slice s 1 + t/4**bits, so sum_k x t = 2**bits (acc - X_odd) + 4**bits
    (acc_lo - X_even); the code is a t - 1 (a = 1 ternary, 2 binary), so y = a (2**bits acc + 4**bits acc_lo) - R with
    R = (a 2**bits + 1) X_odd + (a 4**bits + 1) X_even."""
    a = 1 if bits == 2 else 2
    m, k = x2.shape
    out = torch.empty(m, dtype=torch.float32, device=x2.device)
    _weight_only_row_offsets_kernel[(m,)](
        x2, out, k, kp, HI=float(a * 2**bits + 1), LO=float(a * 4**bits + 1), BLOCK=1024, num_warps=4
    )
    return out


# ------------------------------------------------------------------------------------------------
# decode: GEMV, one program per BLOCK_N output rows and all tokens (M <= DECODE_MAX_M) at once, so
# every packed byte is read once


@triton.jit
def _bitmat_gemv_kernel(
    x_ptr,  # A8: int8 [M, K] read as int32 words [M, K // 4]; weight-only: float [M, K]
    x_scale_ptr,  # float32 [M] (A8)
    w_ptr,  # A8: packed weights read as int32 words [N, KP // 4]; weight-only: uint8 [N, KP]
    w_scale_ptr,
    bias_ptr,
    y_ptr,  # [M, N]
    M,
    N,
    K,
    KP,
    w_scale_stride,
    HAS_BIAS: tl.constexpr,
    BITS: tl.constexpr,
    A8: tl.constexpr,
    USE_PTX: tl.constexpr,
    BLOCK_M: tl.constexpr,  # next power of two >= M
    BLOCK_N: tl.constexpr,
    BLOCK_W: tl.constexpr,  # A8: int32 words of packed weight per row per step; weight-only: bytes
    FUSED_QUANT: tl.constexpr = False,  # A8: x_ptr holds float activations, quantized here per program
    eps=1e-5,
    GDC: tl.constexpr = False,  # launched with programmatic dependent launch: wait for the quantizer's output
):
    pid_n = tl.program_id(0)
    rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    rm = tl.arange(0, BLOCK_M)
    rw = tl.arange(0, BLOCK_W)
    n_ok = rn[:, None] < N
    m_ok = rm[:, None] < M
    if BLOCK_M == 1 and A8 and not FUSED_QUANT:
        # One token: plain 2-D tiles (measured 25% faster than the 3-D form with a unit dimension). Weight-only
        # one-token calls run _bitmat_gemv_weight_only_kernel.
        KW1 = KP // 4
        KXW1 = K // 4
        acc1 = tl.zeros((BLOCK_N, BLOCK_W), dtype=tl.int32)
        xsum1 = tl.zeros((BLOCK_W,), dtype=tl.int32)
        ones1 = tl.full((BLOCK_W,), 0x01010101, tl.int32)
        for w0 in range(0, KW1, BLOCK_W):
            wi = w0 + rw
            words = tl.load(w_ptr + rn[:, None] * KW1 + wi[None, :], mask=n_ok & (wi[None, :] < KW1), other=0)
            if GDC:
                # the weights above do not depend on the kernel before; the activations do (a no-op once
                # the quantizer has finished). Then a next kernel launched with PDL may start and wait.
                tl.extra.cuda.gdc_wait()
                tl.extra.cuda.gdc_launch_dependents()
            for s in tl.static_range(8 // BITS):
                xi = s * KW1 + wi
                xw = tl.load(x_ptr + xi, mask=(wi < KW1) & (xi < KXW1), other=0)
                t = (words >> (s * BITS)) & (0x03030303 if BITS == 2 else 0x01010101)
                acc1 = dp4a(xw[None, :], t, acc1, USE_PTX)
                xsum1 = dp4a(xw, ones1, xsum1, USE_PTX)
        row_sum1 = tl.sum(xsum1, axis=0)
        total1 = tl.sum(acc1, axis=1)
        x_scale1 = tl.load(x_scale_ptr)
        y1 = finish_output(total1, row_sum1, x_scale1, rn, N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS, BITS)
        tl.store(y_ptr + rn, y1.to(y_ptr.dtype.element_ty), mask=rn < N)
        return
    if A8:
        KW = KP // 4  # packed int32 words per row (launcher guarantees KP % 4 == 0)
        KXW = K // 4  # activation words per token
        ones = tl.full((BLOCK_M, BLOCK_W), 0x01010101, tl.int32)
        acc = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_W), dtype=tl.int32)
        if FUSED_QUANT:
            xsum = tl.zeros((BLOCK_M, 4 * BLOCK_W), dtype=tl.int32)
            # each program finds every token's absmax itself: x is small and sits in L2
            absmax = tl.zeros((BLOCK_M,), dtype=tl.float32)
            for mm in tl.static_range(BLOCK_M):
                if mm < M:
                    absmax = tl.where(rm == mm, token_absmax(x_ptr + mm * K, K, 4 * BLOCK_W), absmax)
            finite, s_tok, scale_tok = token_scales(absmax, eps)
            finite = finite[:, None]
            s_tok = s_tok[:, None]
            scale_tok = scale_tok[:, None]
        else:
            xsum = tl.zeros((BLOCK_M, BLOCK_W), dtype=tl.int32)
        for w0 in range(0, KW, BLOCK_W):
            wi = w0 + rw
            words = tl.load(w_ptr + rn[:, None] * KW + wi[None, :], mask=n_ok & (wi[None, :] < KW), other=0)
            for s in tl.static_range(8 // BITS):
                # binary rows may end in a padding word that has no activation word
                xi = s * KW + wi
                if FUSED_QUANT:
                    # quantize this block of activations here and pack 4 codes a word (their
                    # bytes do not overlap, so a sum of shifted bytes is their bitwise OR)
                    within = w0 * 4 + tl.arange(0, 4 * BLOCK_W)
                    col = s * KP + within
                    v = tl.load(
                        x_ptr + rm[:, None] * K + col[None, :],
                        mask=m_ok & (within[None, :] < KP) & (col[None, :] < K),
                        other=0.0,
                    )
                    q = tl.where(finite, quantize_value(v.to(tl.float32), s_tok), 0.0).to(tl.int32)
                    qb = tl.reshape(q & 0xFF, (BLOCK_M, BLOCK_W, 4))
                    xw = tl.sum(qb << (8 * tl.arange(0, 4))[None, None, :], axis=2)
                    xsum += q.to(tl.int32)
                else:
                    xw = tl.load(
                        x_ptr + rm[:, None] * KXW + xi[None, :],
                        mask=m_ok & (wi[None, :] < KW) & (xi[None, :] < KXW),
                        other=0,
                    )
                    xsum = dp4a(xw, ones, xsum, USE_PTX)
                t = (words >> (s * BITS)) & (0x03030303 if BITS == 2 else 0x01010101)
                acc = dp4a(xw[:, None, :], t[None, :, :], acc, USE_PTX)
        total = tl.sum(acc, axis=2)
        row_sum = tl.sum(xsum, axis=1)[:, None]
        if FUSED_QUANT:
            x_scale = scale_tok
        else:
            x_scale = tl.load(x_scale_ptr + rm, mask=rm < M, other=0.0)[:, None]
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_W), dtype=tl.float32)
        xsum = tl.zeros((BLOCK_M, BLOCK_W), dtype=tl.float32)
        for j0 in range(0, KP, BLOCK_W):
            j = j0 + rw
            p = tl.load(w_ptr + rn[:, None] * KP + j[None, :], mask=n_ok & (j[None, :] < KP), other=0)
            p = p.to(tl.int32)
            for s in tl.static_range(8 // BITS):
                k = s * KP + j
                xv = tl.load(
                    x_ptr + rm[:, None] * K + k[None, :], mask=m_ok & (j[None, :] < KP) & (k[None, :] < K), other=0.0
                ).to(tl.float32)
                # stored code -> float without an int->float conversion: the bits of 2**23 + t
                # are 0x4B000000 | t.
                t = (((p >> (s * BITS)) & ((1 << BITS) - 1)) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
                acc += t[None, :, :] * xv[:, None, :]
                xsum += xv
        total = tl.sum(acc, axis=2)
        row_sum = tl.sum(xsum, axis=1)[:, None]
        x_scale = 1.0
    y = finish_output(total, row_sum, x_scale, rn[None, :], N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS, BITS)
    tl.store(y_ptr + rm[:, None] * N + rn[None, :], y.to(y_ptr.dtype.element_ty), mask=m_ok & (rn[None, :] < N))


@triton.jit
def _bitmat_gemv_weight_only_kernel(
    x_ptr,  # float [K]: one token
    w_ptr,  # uint8 [N, KP]
    w_scale_ptr,
    bias_ptr,
    y_ptr,  # [N]
    N,
    K,
    KP,
    w_scale_stride,
    HAS_BIAS: tl.constexpr,
    BITS: tl.constexpr,
    USE_PTX: tl.constexpr,
    BLOCK_N: tl.constexpr,  # output rows a tile
    BLOCK_W: tl.constexpr,  # packed bytes a row a step
    VEC: tl.constexpr,  # packed bytes a thread reads a row a step: one 16-byte load of activations
    STAGES: tl.constexpr,  # steps of weights and activations loaded ahead (cp.async)
):
    """Weight-only, one token: y = (x . codes) * scale + bias on CUDA cores, for bf16/fp16/fp32 x.

    A stored code t becomes the float 1 + t/4 by placing it in the top mantissa bits of 1.0 (no int->float
    conversion), so sum x t = 4 (sum x (1 + t/4) - sum x). Two slices share a shift: the lower one lands 2**BITS
    times lower, 1 + t/(4 * 2**BITS), and meets its activations times 2**BITS (exact). With four packed bytes a
    register that is 2.5 instructions a weight with the FMA (NOTES.md v13).

    Each thread reads VEC bytes of a row, VEC activations being one 16-byte load: weights and activations share a
    layout, so the activations reach every row in registers (a shared-memory layout conversion cost barriers in
    every step; a persistent grid walking tiles in one flat loop measured 20-25% slower, NOTES.md v13)."""
    pid = tl.program_id(0)
    rn = (pid * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    rw = tl.arange(0, BLOCK_W)
    acc = tl.zeros((BLOCK_N, BLOCK_W), dtype=tl.float32)
    xsum_hi = tl.zeros((1, BLOCK_W), dtype=tl.float32)
    xsum_lo = tl.zeros((1, BLOCK_W), dtype=tl.float32)
    for j0 in tl.range(0, KP, BLOCK_W, num_stages=STAGES):
        j = tl.max_contiguous(tl.multiple_of(j0 + rw, VEC), VEC)
        p = tl.load(w_ptr + rn[:, None] * KP + j[None, :], mask=(rn[:, None] < N) & (j[None, :] < KP), other=0)
        for s in tl.static_range(0, 8 // BITS, 2):
            k_lo = s * KP + j
            k_hi = k_lo + KP
            x_lo = tl.load(x_ptr + k_lo[None, :], mask=(j[None, :] < KP) & (k_lo[None, :] < K), other=0.0)
            x_hi = tl.load(x_ptr + k_hi[None, :], mask=(j[None, :] < KP) & (k_hi[None, :] < K), other=0.0)
            x_lo = x_lo.to(tl.float32)
            x_hi = x_hi.to(tl.float32)
            f_hi, f_lo = code_pair_as_floats(p, s, BITS, USE_PTX)
            acc += f_hi * x_hi  # two statements: each one FMA
            acc += f_lo * (x_lo * (1 << BITS))
            xsum_hi += x_hi
            xsum_lo += x_lo
    sum_hi = tl.sum(tl.sum(xsum_hi, axis=1), axis=0)
    sum_lo = tl.sum(tl.sum(xsum_lo, axis=1), axis=0)
    x_t = 4.0 * (tl.sum(acc, axis=1) - (sum_hi + (1 << BITS) * sum_lo))  # sum x t
    y = finish_output(x_t, sum_hi + sum_lo, 1.0, rn, N, w_scale_ptr, w_scale_stride, bias_ptr, HAS_BIAS, BITS)
    tl.store(y_ptr + rn, y.to(y_ptr.dtype.element_ty), mask=rn < N)


# ------------------------------------------------------------------------------------------------
# launchers


_GEMM_FALLBACK: dict[tuple, GemmConfig] = {}
# what a config this GPU or Triton version cannot build raises (PTXASError exists from Triton 3.4 on)
_CONFIG_ERRORS = tuple(
    e for e in (OutOfResources, CompilationError, getattr(_runtime_errors, "PTXASError", None)) if e is not None
)


def _code_pairs_ok(cfg: GemmConfig, packed: torch.Tensor, x_dtype: torch.dtype) -> bool:
    # weight-only; the code-pair decode reads a row's bytes two at a time (int16)
    return (
        cfg.code_pairs
        and x_dtype in (torch.bfloat16, torch.float16)
        and packed.shape[1] % 2 == 0
        and packed.storage_offset() % 2 == 0
    )


def _launch_gemm(
    cfg: GemmConfig, args: tuple, x_dtype: torch.dtype, common: dict, pdl: bool = False, launch_next: bool = False
) -> None:
    if not common["A8"]:
        # weight-only: the row sums (and the weights' view) depend on the decode
        x2, packed, kp = args[0], args[3], args[10]
        pairs = _code_pairs_ok(cfg, packed, x_dtype)
        if pairs:
            row_sum, packed = weight_only_row_offsets(x2, kp, common["BITS"]), packed.view(torch.int16)
        else:
            row_sum = x2.sum(dim=1, dtype=torch.float32)
        args = (*args[:2], row_sum, packed, *args[4:])
        common = dict(common, CODE_PAIRS=pairs)
    x_scale, row_sum, w_scale, bias, y, m, n = args[1], args[2], args[4], args[5], args[6], args[7], args[8]
    grid = (triton.cdiv(m, cfg.block_m) * triton.cdiv(n, cfg.block_n), cfg.split_k)
    fast_cvt = bool(cfg.fast_cvt and common["USE_PTX"] and not common["A8"] and x_dtype != torch.float32)
    ws = None
    if cfg.split_k > 1:
        ws = torch.empty(cfg.split_k, m, n, dtype=torch.int32 if common["A8"] else torch.float32, device=y.device)
    _bitmat_gemm_kernel[grid](
        *args,
        FP32_X=x_dtype == torch.float32,
        HALF_IS_BF16=x_dtype == torch.bfloat16,
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        BLOCK_KP=cfg.block_kp,
        GROUP_M=cfg.group_m,
        SPLIT_K=cfg.split_k,
        FAST_CVT=fast_cvt,
        ws_ptr=ws,
        GDC=pdl,
        **({"LAUNCH_NEXT": True} if launch_next else {}),
        **({"WARP_SPEC": True} if cfg.warp_specialize else {}),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
        **({"maxnreg": cfg.max_registers} if cfg.max_registers else {}),
        **({"launch_pdl": True} if pdl else {}),
        **common,
    )
    if cfg.split_k > 1:
        planes = common.get("PLANES", False)
        _split_k_finish_kernel[(m // 4 if planes else m, triton.cdiv(n, 256))](
            ws,
            x_scale,
            row_sum,
            w_scale,
            bias,
            y,
            m,
            n,
            args[11],
            HAS_BIAS=common["HAS_BIAS"],
            BITS=common["BITS"],
            A8=common["A8"],
            SPLIT_K=cfg.split_k,
            BLOCK_N=256,
            PLANES=planes,
        )


@functools.lru_cache(maxsize=16)
def pdl_enabled(device: torch.device) -> bool:
    """Programmatic dependent launch for the A8 quantizer and the one-token GEMV or the GEMM after it (Hopper and
    newer; off with BITMAT_KERNELS_PDL=0). Each kernel becomes resident before the kernel it waits for has
    finished: the quantizer before the norm that writes its input, the GEMV while the quantizer runs, loading its
    first weight tile. H100, NOTES.md v9: 0.6-1.7 us a one-token call, 2.59 -> 2.47 ms a Llama-3-8B decode step."""
    if os.environ.get("BITMAT_KERNELS_PDL", "1") == "0" or device.type != "cuda":
        return False
    # gdc_wait / launch_pdl arrived in Triton 3.4
    return torch.cuda.get_device_capability(device)[0] >= 9 and hasattr(tl.extra.cuda, "gdc_wait")


LINEAR_PATHS = ("auto", "decode", "gemm", "dequant", "planes", "hopper")


def _decode_ok(m: int, k: int, packed: torch.Tensor, a8: bool) -> bool:
    # A8 reads weights and activations as int32 words: every slice must start on a word.
    kp = packed.shape[1]
    return 0 < m <= DECODE_MAX_M and (not a8 or (kp % 4 == 0 and k % 4 == 0 and packed.storage_offset() % 4 == 0))


def auto_path(
    m: int,
    n: int,
    k: int,
    fmt: str,
    a8: bool,
    packed: torch.Tensor,
    x_bytes: int = 2,
    dequant: bool = True,
    gluon: bool = True,
) -> str:
    """The path linear_triton(path="auto") takes for M tokens (one of LINEAR_PATHS but "auto"); dequant=False: the
    kernel it would take if it did not dequantize; gluon=False: the path without the Gluon sm_90 GEMM."""
    if gluon and not a8 and hopper.available() and hopper_weight_only_config(m, n, k, fmt, packed.device, x_bytes):
        return "hopper"
    if dequant and not a8 and use_dequant(packed.device, fmt, m, n, k, x_bytes):
        return "dequant"
    if not a8 and weight_only_planes(m, n, k, fmt):
        return "planes"
    return "decode" if _decode_ok(m, k, packed, a8) else "gemm"


def _linear_hopper(x2, packed, w_scale, bias, y, k, fmt, forced: bool) -> bool:
    """Weight-only on the Gluon sm_90 GEMM (hopper.py) with the rules' tile (forced: hopper_tile's, wherever the
    kernel can run, else ValueError); False where it cannot take these tensors."""
    m, n = y.shape
    cfg = hopper_weight_only_config(m, n, k, fmt, x2.device, x2.element_size())
    if forced:
        cfg = cfg or hopper_tile(m, n, k, fmt)
        if x2.device.type != "cuda" or interpreter_enabled() or not _is_sm90(x2.device):
            raise ValueError(f"hopper path needs an sm_90 GPU (H100/H200), got {x2.device}")
    if cfg is None or not hopper.supported(cfg, x2, packed, k, y, bias, fmt):
        if forced:
            per_byte = CODES_PER_BYTE[fmt]
            raise ValueError(
                f"hopper path needs this Triton's Gluon Hopper API, bf16/fp16 activations, K = {per_byte} * packed "
                f"bytes a row (a multiple of {per_byte * cfg.block_kp}), rows a multiple of 8 and contiguous 16-byte "
                "aligned tensors"
            )
        return False
    hopper.weight_only_sm90(cfg, x2, packed, w_scale, bias, y)
    return True


def _linear_planes(x2, packed, w_scale, bias_arg, y, k, fmt, common, w_scale_stride, pdl) -> None:
    """Weight-only through the int8 GEMM: each token becomes four int8 planes of one 30-bit fixed-point integer
    (quantize.activation_planes), the A8 GEMM multiplies all planes against the codes, and its epilogue adds a
    token's planes exactly in int64 before one rounding to fp32. At decode sizes the work is the weight read, which
    this does not change, but int8 tensor cores take codes in fewer instructions than the float kernels, and the
    int8 activation tiles of 4 planes weigh what bf16 tiles of 2 tokens do (NOTES.md v16)."""
    m = x2.shape[0]
    n, kp = packed.shape
    xq, step, row_sum = activation_planes_triton(x2, pdl=pdl)
    common = dict(common, A8=True, PLANES=True)
    cfg = gemm_config(4 * m, n, k, fmt, True, x2.device)
    args = (xq, step, row_sum, packed, w_scale, bias_arg, y, 4 * m, n, k, kp, w_scale_stride)
    _launch_gemm(cfg, args, torch.int8, common, pdl)


def linear_triton(
    x: torch.Tensor,
    packed: torch.Tensor,
    scale: torch.Tensor,
    in_features: int,
    fmt: str,
    activation_bits: int | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    path: str = "auto",
    quantized=None,
) -> torch.Tensor:
    """`path` (LINEAR_PATHS) exists for tests and benchmarks; users leave it alone.
    `quantized`: x's QuantizedActivations (A8), checked by bitmat_linear; used instead of quantizing x here.

    "dequant" (weight-only only): write codes * scale as a dense x.dtype weight in one pass and call
    cuBLAS. At large M the product is compute-bound, and cuBLAS's bf16 GEMM beats our Triton GEMM fed
    from registers by more than the extra pass costs (NOTES.md). The scale is rounded to x's dtype
    there: a relative error of at most 2^-9 (bf16), the same as rounding the output."""
    if path not in LINEAR_PATHS:
        raise ValueError(f"linear_triton: argument 'path' must be one of {LINEAR_PATHS}, got {path!r}")
    k = in_features
    n, kp = packed.shape
    x2 = x.reshape(-1, k)
    m = x2.shape[0]
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if m == 0:
        return y.reshape(*x.shape[:-1], n)
    a8 = activation_bits == 8
    bits = BITS_PER_CODE[fmt]
    interp = interpreter_enabled()
    w_scale = scale.reshape(-1)
    common = dict(HAS_BIAS=bias is not None, BITS=bits, A8=a8, USE_PTX=not interp)
    bias_arg = bias if bias is not None else w_scale
    w_scale_stride = 1 if w_scale.numel() > 1 else 0
    pdl_ok = not interp and pdl_enabled(x.device)
    pdl = a8 and pdl_ok
    forced = path != "auto"
    if path == "auto":
        path = auto_path(m, n, k, fmt, a8, packed, x.element_size())
    if path == "hopper":
        if a8:
            raise ValueError("hopper path is for weight-only (activation_bits=None) only")
        if _linear_hopper(x2, packed, w_scale, bias, y, k, fmt, forced):
            return y.reshape(*x.shape[:-1], n)
        path = auto_path(m, n, k, fmt, a8, packed, x.element_size(), gluon=False)  # tensors TMA cannot take
    if path == "dequant":
        if a8:
            raise ValueError("dequant path is for weight-only (activation_bits=None) only")
        w = unpack_triton(packed, k, fmt, scale=w_scale, dtype=x.dtype)
        return torch.nn.functional.linear(x, w, bias).reshape(*x.shape[:-1], n)
    if path == "planes":
        if a8:
            raise ValueError(f"{path} path is for weight-only (activation_bits=None) only")
        _linear_planes(x2, packed, w_scale, bias_arg, y, k, fmt, common, w_scale_stride, pdl_ok)
        return y.reshape(*x.shape[:-1], n)
    if path == "decode":
        if not _decode_ok(m, k, packed, a8):
            raise ValueError(f"decode path needs 0 < M <= {DECODE_MAX_M} (and K % 16 == 0 for A8), got M={m}, K={k}")
        cfg = decode_config(m, n, k, fmt, a8, x.device, x_bytes=x.element_size())
        fused = a8 and cfg.fused_quant
        pdl = pdl and not fused and m == 1
        if a8 and not fused:
            if quantized is not None:
                xq, x_scale = quantized.values.reshape(m, k), quantized.scale
            else:
                xq, x_scale = quantize_activations_triton(x2, eps, pdl=pdl)
            x_arg = xq.view(torch.int32)
        else:
            x_arg, x_scale = x2, w_scale  # x_scale unused
        if not a8 and m == 1:
            _bitmat_gemv_weight_only_kernel[(triton.cdiv(n, cfg.block_n),)](
                x2,
                packed,
                w_scale,
                bias_arg,
                y,
                n,
                k,
                kp,
                w_scale_stride,
                HAS_BIAS=bias is not None,
                BITS=bits,
                USE_PTX=not interp,
                BLOCK_N=cfg.block_n,
                BLOCK_W=cfg.block_w,
                VEC=16 // x.element_size(),
                STAGES=cfg.num_stages,
                num_warps=cfg.num_warps,
                **({"maxnreg": cfg.max_registers} if cfg.max_registers else {}),
            )
            return y.reshape(*x.shape[:-1], n)
        _bitmat_gemv_kernel[(triton.cdiv(n, cfg.block_n),)](
            x_arg,
            x_scale,
            packed.view(torch.int32) if a8 else packed,
            w_scale,
            bias_arg,
            y,
            m,
            n,
            k,
            kp,
            w_scale_stride,
            BLOCK_M=triton.next_power_of_2(m),
            BLOCK_N=cfg.block_n,
            BLOCK_W=cfg.block_w,
            FUSED_QUANT=fused,
            eps=eps,
            GDC=pdl,
            **({"launch_pdl": True} if pdl else {}),
            num_warps=cfg.num_warps,
            num_stages=cfg.num_stages,
            **common,
        )
    else:
        cfg = gemm_config(m, n, k, fmt, a8, x.device, x_bytes=x.element_size())
        key = (cfg, bits, a8, x.dtype, bias is not None, x.device.index)
        cfg = _GEMM_FALLBACK.get(key, cfg)
        chunks = a8_chunks(m, n, k, fmt, cfg, pdl) if a8 and quantized is None else 1
        if chunks > 1:
            _chunked_a8_gemm(x2, chunks, eps, cfg, key, (packed, w_scale, bias_arg), y, k, w_scale_stride, common, pdl)
            return y.reshape(*x.shape[:-1], n)
        if a8 and quantized is not None:
            xq, x_scale, row_sum = quantized.values.reshape(m, k), quantized.scale, quantized.row_sum
        elif a8:
            xq, x_scale, row_sum = quantize_activations_triton(x2, eps, with_sum=True, pdl=pdl)
        else:
            xq, x_scale, row_sum = x2, w_scale, None  # weight-only: _launch_gemm computes what its decode needs
        args = (xq, x_scale, row_sum, packed, w_scale, bias_arg, y, m, n, k, kp, w_scale_stride)
        _launch_gemm_or_fall_back(cfg, key, args, x.dtype, common, pdl)
    return y.reshape(*x.shape[:-1], n)


def _launch_gemm_or_fall_back(cfg, key, args, x_dtype, common, pdl, launch_next=False) -> None:
    try:
        _launch_gemm(cfg, args, x_dtype, common, pdl, launch_next)
    except _CONFIG_ERRORS as err:
        # A config this GPU or Triton version cannot run (too much shared memory, or PTX it
        # rejects): fall back to plain conversions and a small tile, say so once, remember.
        safe = dataclasses.replace(SAFE_GEMM, split_k=cfg.split_k)
        logger.warning("bitmat_linear: GEMM config %s failed (%s); using %s", cfg, type(err).__name__, safe)
        _GEMM_FALLBACK[key] = safe
        _launch_gemm(safe, args, x_dtype, common, pdl, launch_next)


def _chunked_a8_gemm(x2, chunks, eps, cfg, key, weights, y, k, w_scale_stride, common, pdl) -> None:
    """A8 GEMM over `chunks` slices of the tokens, each chunk's quantizer running beside the GEMM of the chunk
    before (a8_chunks): quantize 0, GEMM 0, quantize 1, GEMM 1, ..., all launched with PDL. Only the first
    quantizer runs alone. Every GEMM but the last lets the next kernel launch once its tiles are
    resident; the last does not, so a kernel after this op cannot take SM slots while it runs."""
    m = x2.shape[0]
    n, kp = weights[0].shape
    step = triton.cdiv(triton.cdiv(m, chunks), cfg.block_m) * cfg.block_m
    sms = _sm_count(x2.device) if x2.is_cuda else 2
    behind = A8_BEHIND_PER_SM * sms
    for i, r0 in enumerate(range(0, m, step)):
        r1 = min(m, r0 + step)
        xq, x_scale, row_sum = quantize_activations_triton(
            x2[r0:r1], eps, with_sum=True, pdl=pdl, behind=behind if i else 0
        )
        args = (xq, x_scale, row_sum, *weights, y[r0:r1], r1 - r0, n, k, kp, w_scale_stride)
        _launch_gemm_or_fall_back(cfg, key, args, x2.dtype, common, pdl, launch_next=pdl and r1 < m)


# Tokens a chunk of a chunked A8 GEMM (a8_chunks); quantizer programs a SM beside the GEMM before.
A8_CHUNK_TOKENS = 512
A8_BEHIND_PER_SM = 2


def a8_chunks(m: int, n: int, k: int, fmt: str, cfg: GemmConfig, pdl: bool) -> int:
    """How many chunks an A8 GEMM of M tokens quantizes and multiplies in (1: one quantizer, then one GEMM).

    Chunks run all but the first quantizer beside the GEMM (_chunked_a8_gemm), which pays where that pass is a
    large share: long rows (K >= 2.5 N), where reading bf16 x and writing int8 is ~8% of the call. Each chunk is a
    GEMM of its own, so its tiles must fill the GPU: 512 tokens on layers of >= 8192 rows make about two programs
    a SM of 128 x 128. H100, 8192x28672 (NOTES.md v19): bitmat-bench M = 4096 1570 -> 1479 us (chunking off in the
    processes before and after); one-process sweep M = 2048 852 -> 798, 4096 1755 -> 1640. No gain measured beyond
    4096 tokens (another tile there) or on shorter rows (4096x4096, 28672x4096), and chunks of 256 tokens, too few
    programs to fill the GPU, tripled the time. Ternary only: binary A8 (its own tiles) read 2% slower."""
    if not pdl or fmt != "ternary" or cfg.split_k > 1 or not (k >= 2.5 * n and n >= 8192 and 2048 <= m <= 4096):
        return 1
    return m // A8_CHUNK_TOKENS
