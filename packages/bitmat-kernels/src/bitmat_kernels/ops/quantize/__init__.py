"""ternarize / binarize (weights) and quantize_activations (per-token int8)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..._checks import FLOAT_DTYPES, check_tensor
from ...backend import use_triton
from .reference import binarize_reference, quantize_activations_reference, ternarize_reference


def _check_eps(fn: str, eps: float, name: str = "eps") -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"{fn}: argument '{name}' must be a positive finite float, got {eps!r}")
    return float(eps)


class QuantizedActivations(NamedTuple):
    """Activations already quantized per token (by `rms_norm_quantize`), for `bitmat_linear(..., quantized=)`:
    values int8 [..., K] and scale float32 [..., 1] as quantize_activations returns them with eps `eps`, and
    row_sum int32 [tokens], each token's sum of codes."""

    values: torch.Tensor
    scale: torch.Tensor
    row_sum: torch.Tensor
    eps: float


def _check_weight(fn: str, w: torch.Tensor, per_channel: bool) -> None:
    check_tensor(fn, "w", w, dtypes=(*FLOAT_DTYPES, torch.float64), nonempty=True)
    if per_channel and w.dim() != 2:
        raise ValueError(f"{fn}: per_channel=True needs a 2-D weight [out, in], got shape {tuple(w.shape)}")


def ternarize(w: torch.Tensor, *, per_channel: bool = False, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """BitNet b1.58 absmean ternarization.

    gamma = mean|w| (over the tensor, or over each row with per_channel=True);
    codes = clamp(round(w / (gamma + eps)), -1, 1) as int8; returns (codes, gamma) with gamma
    float32 of shape [1] (or [N, 1]), so w ~= codes * gamma.
    """
    _check_weight("ternarize", w, per_channel)
    return ternarize_reference(w, per_channel, _check_eps("ternarize", eps))


def binarize(w: torch.Tensor, *, per_channel: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """BitNet (1-bit) binarization: codes = +1 where w - mean(w) > 0 else -1 (int8);
    beta = mean|w| float32 [1] (or [N, 1]); w ~= codes * beta."""
    _check_weight("binarize", w, per_channel)
    return binarize_reference(w, per_channel)


@torch.library.custom_op("bitmat::quantize_activations", mutates_args=())
def _quantize_activations_op(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    if use_triton(x):
        from .kernel import quantize_activations_triton

        return quantize_activations_triton(x, eps)
    return quantize_activations_reference(x, eps)


@_quantize_activations_op.register_fake
def _(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(x, dtype=torch.int8), x.new_empty(*x.shape[:-1], 1, dtype=torch.float32)


def quantize_activations(x: torch.Tensor, *, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token absmax int8 quantization over the last dimension.

    Returns (x_q int8 of x's shape, scale float32 [..., 1]) with x ~= x_q * scale,
    x_q = clamp(round(x * 127 / max(absmax, eps)), -128, 127). A token holding NaN or inf gets a
    NaN scale, so it can never turn into plausible numbers downstream.
    """
    check_tensor("quantize_activations", "x", x, dtypes=FLOAT_DTYPES, min_ndim=1)
    if x.shape[-1] == 0:
        raise ValueError(
            f"quantize_activations: argument 'x' must have at least one feature, got shape {tuple(x.shape)}"
        )
    return _quantize_activations_op(x.contiguous(), _check_eps("quantize_activations", eps))


__all__ = ["QuantizedActivations", "binarize", "quantize_activations", "ternarize"]
