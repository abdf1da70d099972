"""Pure-torch quantizers (DESIGN §4). Weight quantizers run here on every device: they are
one-off, elementwise-and-reduce work that torch already does at memory speed."""

from __future__ import annotations

import torch

ACT_QMAX = 127.0


def ternarize_reference(w: torch.Tensor, per_channel: bool, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    wf = w.float()
    if per_channel:
        gamma = wf.abs().mean(dim=-1, keepdim=True)
    else:
        gamma = wf.abs().mean().reshape(1)
    ratio = (wf / (gamma + eps)).round()
    # clamp before the int8 cast (a cast first can wrap); NaN codes become 0 and the scale
    # carries the NaN, so a NaN weight poisons its output instead of becoming a number.
    codes = torch.nan_to_num(ratio, nan=0.0).clamp_(-1, 1).to(torch.int8)
    return codes, gamma


def binarize_reference(w: torch.Tensor, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    wf = w.float()
    if per_channel:
        alpha = wf.mean(dim=-1, keepdim=True)
        beta = wf.abs().mean(dim=-1, keepdim=True)
    else:
        alpha = wf.mean()
        beta = wf.abs().mean().reshape(1)
    codes = torch.where(wf - alpha > 0, 1, -1).to(torch.int8)
    return codes, beta


def quantize_activations_reference(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token absmax int8: s = 127 / max(absmax, eps); x_q = clamp(round(x * s), -128, 127).

    Returns (x_q, scale) with scale = max(absmax, eps) / 127, so x ~= x_q * scale. A token that
    holds NaN or inf gets scale NaN (and x_q 0), so every output it touches is NaN.
    """
    xf = x.float()
    absmax = xf.abs().amax(dim=-1, keepdim=True) if xf.shape[-1] else xf.new_zeros(*xf.shape[:-1], 1)
    clamped = absmax.clamp_min(eps)
    # tensor / tensor is correctly rounded; `127.0 / tensor` is computed as a reciprocal times
    # 127 and can differ in the last bit, which moves ties in the rounding below.
    qmax = torch.full_like(clamped, ACT_QMAX)
    s = qmax / clamped
    finite = torch.isfinite(absmax)
    xq = (xf * s).clamp_(-128.0, 127.0).round_()
    xq = torch.where(finite, xq, torch.zeros_like(xq)).to(torch.int8)
    scale = torch.where(finite, clamped / qmax, torch.full_like(clamped, float("nan")))
    return xq, scale


# Weight-only matmuls at decode sizes run on the int8 kernels: each token's activations become PLANES int8 digits
# of one 30-bit fixed-point integer (activation_planes_reference).
PLANES = 4
PLANE_BITS = 8


def plane_scale_exponent(absmax: torch.Tensor) -> torch.Tensor:
    """The float32 exponent field e of a token's max |x|, clamped to >= 30: the token's step is 2**(e - 156) (so
    max |x| < 2**30 steps) and its inverse 2**(156 - e), both normal floats for every finite absmax."""
    return ((absmax.view(torch.int32) >> 23) & 0xFF).clamp_min(30)


def activation_planes_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x [M, K] float -> (planes int8 [M * 4, K], step float32 [M], plane sums int32 [M * 4]).

    A token with max |x| < 2**E becomes q = round(x / 2**(E - 30)) (int32, |q| <= 2**30; ties away from zero),
    written as four balanced base-256 digits q = d0 + d1 2**8 + d2 2**16 + d3 2**24, d in [-128, 127]: row
    4 m + p holds d_p of token m. Activations within 2**23 of the token's max |x| (all a bfloat16 or float16 token
    holds, but for subnormal-range outliers) are exact; smaller ones are off by at most 2**-31 of max |x|. A token
    holding NaN or inf gets step NaN and digits 0."""
    xf = x.float()
    m, k = xf.shape
    absmax = xf.abs().amax(dim=-1) if k else xf.new_zeros(m)
    finite = torch.isfinite(absmax)
    e = torch.where(finite, plane_scale_exponent(absmax), 30)
    inv = ((283 - e) << 23).view(torch.float32)
    step = ((e - 29) << 23).view(torch.float32)
    v = xf * inv[:, None]
    q = v.to(torch.int32)  # toward zero, then to nearest (v - q is exact)
    r = v - q.float()
    q = q + (r >= 0.5).int() - (r <= -0.5).int()
    q = torch.where(finite[:, None], q, 0)
    digits = []
    for _ in range(PLANES):
        d = ((q + 128) & 0xFF) - 128
        digits.append(d)
        q = (q - d) >> PLANE_BITS
    planes = torch.stack(digits, dim=1).reshape(m * PLANES, k)
    step = torch.where(finite, step, torch.full_like(step, float("nan")))
    return planes.to(torch.int8), step, planes.sum(dim=-1, dtype=torch.int32)
