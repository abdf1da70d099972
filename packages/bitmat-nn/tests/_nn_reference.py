"""Independent float64 references for the tests (written from DESIGN §4, not from the code under test)."""

from __future__ import annotations

import torch


def ref_ternary(w: torch.Tensor, per_channel: bool = False, eps: float = 1e-5) -> torch.Tensor:
    """codes * gamma with gamma = mean|W|, codes = clamp(round(W / (gamma + eps)), -1, 1)."""
    w = w.double()
    gamma = w.abs().mean(-1, keepdim=True) if per_channel else w.abs().mean()
    return (w / (gamma + eps)).round().clamp(-1, 1) * gamma


def ref_binary(w: torch.Tensor, per_channel: bool = False) -> torch.Tensor:
    """sign(W - mean W) (0 -> -1) * mean|W|."""
    w = w.double()
    if per_channel:
        alpha, beta = w.mean(-1, keepdim=True), w.abs().mean(-1, keepdim=True)
    else:
        alpha, beta = w.mean(), w.abs().mean()
    return torch.where(w - alpha > 0, 1.0, -1.0).double() * beta


def ref_weight(w: torch.Tensor, weight_bits: float, per_channel: bool = False, eps: float = 1e-5) -> torch.Tensor:
    return ref_ternary(w, per_channel, eps) if weight_bits == 1.58 else ref_binary(w, per_channel)


def ref_activations(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-token absmax int8, dequantized: round(x * s).clamp(-128, 127) / s, s = 127 / max(absmax, eps)."""
    x = x.double()
    s = 127.0 / x.abs().amax(-1, keepdim=True).clamp_min(eps)
    return (x * s).round().clamp(-128, 127) / s


def ref_bitlinear(x, w, bias, *, weight_bits=1.58, activation_bits=8, per_channel=False, eps=1e-5):
    xq = ref_activations(x, eps) if activation_bits == 8 else x.double()
    y = xq @ ref_weight(w, weight_bits, per_channel, eps).T
    return y if bias is None else y + bias.double()


def ref_causal_attention(q, k, v, mask=None):
    """Plain softmax attention in float64: q [B,H,T,D], k/v [B,H,S,D], mask bool [B,1|H,T,S] (True = attend)."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1) @ v
