"""Pure-torch ternary/binary linear: the CPU path and the test oracle."""

from __future__ import annotations

import torch

from ..pack.reference import unpack_reference
from ..quantize.reference import quantize_activations_reference

# int8 x {-1,0,1} sums stay exact in fp32 while K * 128 < 2**24.
_FP32_EXACT_K = (1 << 24) // 128


def linear_reference(
    x: torch.Tensor,
    packed: torch.Tensor,
    scale: torch.Tensor,
    in_features: int,
    fmt: str,
    activation_bits: int | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    accumulate_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """y = (Q(x) @ codes^T) * (x_scale * w_scale) + bias, in x's dtype.

    activation_bits=8: Q is per-token absmax int8 and the integer sums are exact;
    activation_bits=None: x is used as is. `accumulate_dtype=torch.float64` makes this the oracle.
    """
    k = in_features
    codes = unpack_reference(packed, k, fmt)
    x2 = x.reshape(-1, k)
    w_scale = scale.reshape(1, -1).to(accumulate_dtype)
    if activation_bits == 8:
        xq, x_scale = quantize_activations_reference(x2, eps)
        exact = torch.float32 if (k < _FP32_EXACT_K and accumulate_dtype == torch.float32) else torch.float64
        acc = (xq.to(exact) @ codes.to(exact).T).to(accumulate_dtype)
        y = acc * x_scale.to(accumulate_dtype) * w_scale
    else:
        y = (x2.to(accumulate_dtype) @ codes.to(accumulate_dtype).T) * w_scale
    if bias is not None:
        y = y + bias.to(accumulate_dtype)
    return y.to(x.dtype).reshape(*x.shape[:-1], codes.shape[0])


def dequantize_reference(
    packed: torch.Tensor, scale: torch.Tensor, in_features: int, fmt: str, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """codes * scale as a dense [N, K] weight."""
    codes = unpack_reference(packed, in_features, fmt)
    return (codes.float() * scale.reshape(-1, 1).float()).to(dtype)
