"""rms_norm_quantize: RMSNorm and the A8 quantization of its output in one kernel (inference)."""

from __future__ import annotations

import math

import torch

from ..._checks import FLOAT_DTYPES, check_same_device, check_tensor
from ...backend import use_triton
from ..quantize import QuantizedActivations, _check_eps
from .reference import rms_norm_quantize_reference


def _rms_norm_quantize_impl(
    x: torch.Tensor, weight: torch.Tensor | None, eps: float, quant_eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if use_triton(x):
        from .kernel import rms_norm_quantize_triton

        return rms_norm_quantize_triton(x, weight, eps, quant_eps)
    return rms_norm_quantize_reference(x, weight, eps, quant_eps)


_rms_norm_quantize_op = torch.library.custom_op("bitmat::rms_norm_quantize", mutates_args=())(_rms_norm_quantize_impl)


@_rms_norm_quantize_op.register_fake
def _(x, weight, eps, quant_eps):
    rows = math.prod(x.shape[:-1])
    return (
        torch.empty_like(x),
        torch.empty_like(x, dtype=torch.int8),
        x.new_empty(*x.shape[:-1], 1, dtype=torch.float32),
        x.new_empty(rows, dtype=torch.int32),
    )


def rms_norm_quantize(
    x: torch.Tensor, weight: torch.Tensor | None = None, *, eps: float = 1e-6, quant_eps: float = 1e-5
) -> tuple[torch.Tensor, QuantizedActivations]:
    """Llama-style RMSNorm and the per-token int8 quantization of its output, in one pass (inference only).

    y = weight * (x * rsqrt(mean(x^2) + eps)).to(x.dtype), normalised in float32 (Llama, Mistral, Qwen2,
    BitNet); weight: x's dtype, [K], or None. Returns (y, q) where q = quantize_activations(y, eps=quant_eps)
    bit for bit, with each token's sum of codes: hand q to `bitmat_linear(y, ..., quantized=q)` and the
    matmul skips its own quantization of y. y itself matches the unfused RMSNorm to within its reduction order
    (a float32 sum of squares in another order can move a value by one unit in the last place).
    """
    fn = "rms_norm_quantize"
    check_tensor(fn, "x", x, dtypes=FLOAT_DTYPES, min_ndim=1)
    if x.shape[-1] == 0:
        raise ValueError(f"{fn}: argument 'x' must have at least one feature, got shape {tuple(x.shape)}")
    if weight is not None:
        check_tensor(fn, "weight", weight, dtypes=(x.dtype,), ndim=1)
        if weight.shape[0] != x.shape[-1]:
            raise ValueError(
                f"{fn}: argument 'weight' must have shape [{x.shape[-1]}] for x of shape {tuple(x.shape)}, "
                f"got {tuple(weight.shape)}"
            )
    check_same_device(fn, x=x, weight=weight)
    if torch.is_grad_enabled() and (x.requires_grad or (weight is not None and weight.requires_grad)):
        raise RuntimeError(
            f"{fn}: inference only (no gradient): run it under torch.no_grad(), or use an RMSNorm followed by "
            "quantize_activations to train"
        )
    eps, quant_eps = _check_eps(fn, eps), _check_eps(fn, quant_eps, "quant_eps")
    # eager calls skip the custom-op dispatcher (host time); torch.compile sees the op
    run = _rms_norm_quantize_op if torch.compiler.is_compiling() else _rms_norm_quantize_impl
    y, yq, scale, row_sum = run(x.contiguous(), None if weight is None else weight.contiguous(), eps, quant_eps)
    return y, QuantizedActivations(yq, scale, row_sum, quant_eps)


__all__ = ["rms_norm_quantize"]
