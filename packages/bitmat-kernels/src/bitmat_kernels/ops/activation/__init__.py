"""silu_mul_quantize: a gated MLP's SiLU(gate) * up and the A8 quantization of the product in one kernel."""

from __future__ import annotations

import math

import torch

from ..._checks import FLOAT_DTYPES, check_same_device, check_tensor
from ...backend import use_triton
from ..quantize import QuantizedActivations, _check_eps
from .reference import silu_mul_quantize_reference


def _silu_mul_quantize_impl(
    gate: torch.Tensor, up: torch.Tensor, quant_eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if use_triton(gate):
        from .kernel import silu_mul_quantize_triton

        return silu_mul_quantize_triton(gate, up, quant_eps)
    return silu_mul_quantize_reference(gate, up, quant_eps)


_silu_mul_quantize_op = torch.library.custom_op("bitmat::silu_mul_quantize", mutates_args=())(_silu_mul_quantize_impl)


@_silu_mul_quantize_op.register_fake
def _(gate, up, quant_eps):
    rows = math.prod(gate.shape[:-1])
    return (
        gate.new_empty(gate.shape),
        gate.new_empty(gate.shape, dtype=torch.int8),
        gate.new_empty(*gate.shape[:-1], 1, dtype=torch.float32),
        gate.new_empty(rows, dtype=torch.int32),
    )


def _rows_view(t: torch.Tensor) -> torch.Tensor:
    """t itself if its rows are evenly strided with a unit last stride (e.g. half of a fused gate/up product),
    else a contiguous copy."""
    n = t.shape[-1]
    try:
        if t.stride(-1) == 1 and t.view(-1, n) is not None:
            return t
    except RuntimeError:
        pass
    return t.contiguous()


def silu_mul_quantize(
    gate: torch.Tensor, up: torch.Tensor, *, quant_eps: float = 1e-5
) -> tuple[torch.Tensor, QuantizedActivations]:
    """h = silu(gate) * up (the gated MLP of Llama, Mistral, Qwen2) and its per-token int8 quantization, in one
    pass (inference only).

    gate, up: same shape and dtype; they may be the two halves of one fused gate/up product (strided rows).
    Returns (h, q) with q = quantize_activations(h, eps=quant_eps) bit for bit, plus each token's sum of codes:
    hand q to `bitmat_linear(h, ..., quantized=q)`. h matches torch's `F.silu(gate) * up` to within the
    exponential's rounding (one unit in the last place, rarely).
    """
    fn = "silu_mul_quantize"
    check_tensor(fn, "gate", gate, dtypes=FLOAT_DTYPES, min_ndim=1)
    check_tensor(fn, "up", up, dtypes=(gate.dtype,))
    if up.shape != gate.shape:
        raise ValueError(f"{fn}: arguments 'gate' and 'up' must have the same shape, got {tuple(gate.shape)} "
                         f"and {tuple(up.shape)}")  # fmt: skip
    if gate.shape[-1] == 0:
        raise ValueError(f"{fn}: argument 'gate' must have at least one feature, got shape {tuple(gate.shape)}")
    check_same_device(fn, gate=gate, up=up)
    if torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
        raise RuntimeError(
            f"{fn}: inference only (no gradient): run it under torch.no_grad(), or use F.silu(gate) * up followed "
            "by quantize_activations to train"
        )
    quant_eps = _check_eps(fn, quant_eps, "quant_eps")
    if torch.compiler.is_compiling():
        h, hq, scale, row_sum = _silu_mul_quantize_op(gate.contiguous(), up.contiguous(), quant_eps)
    else:  # eager: no dispatcher (host time), and strided halves are read in place
        h, hq, scale, row_sum = _silu_mul_quantize_impl(_rows_view(gate), _rows_view(up), quant_eps)
    return h, QuantizedActivations(hq, scale, row_sum, quant_eps)


__all__ = ["silu_mul_quantize"]
