"""Pure-torch RMSNorm with per-token int8 quantization of its output: the CPU path and the test oracle."""

from __future__ import annotations

import torch

from ..quantize.reference import quantize_activations_reference


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Llama's RMSNorm: normalised in float32, rounded to x's dtype, then times the weight (of x's dtype)."""
    xf = x.float()
    y = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return y if weight is None else weight * y


def rms_norm_quantize_reference(
    x: torch.Tensor, weight: torch.Tensor | None, eps: float, quant_eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, y_q, scale, row_sum): y = RMSNorm(x), (y_q, scale) = quantize_activations(y), and each token's int32
    sum of codes (flattened to [tokens])."""
    y = rms_norm_reference(x, weight, eps)
    yq, scale = quantize_activations_reference(y, quant_eps)
    row_sum = yq.reshape(-1, yq.shape[-1]).sum(dim=1, dtype=torch.int32)
    return y, yq, scale, row_sum
