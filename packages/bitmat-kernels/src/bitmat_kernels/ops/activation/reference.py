"""Pure-torch SiLU(gate) * up with per-token int8 quantization of the product: the CPU path and the test oracle."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..quantize.reference import quantize_activations_reference


def silu_mul_quantize_reference(
    gate: torch.Tensor, up: torch.Tensor, quant_eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(h, h_q, scale, row_sum): h = silu(gate) * up in the inputs' dtype (each op rounded, as transformers'
    Llama MLP computes it), (h_q, scale) = quantize_activations(h), and each token's int32 sum of codes."""
    h = F.silu(gate) * up
    hq, scale = quantize_activations_reference(h, quant_eps)
    row_sum = hq.reshape(-1, hq.shape[-1]).sum(dim=1, dtype=torch.int32)
    return h, hq, scale, row_sum
