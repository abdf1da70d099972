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
