"""RMSNorm, computed in float32 whatever the input dtype (as in Llama and BitNet b1.58)."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_input, check_positive_int


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last dimension.

    The normalisation runs in float32 and the result is cast back to x's dtype before the
    (full-precision, learnable) weight multiplies it.
    """

    def __init__(
        self, hidden_size: int, eps: float = 1e-6, *, elementwise_affine: bool = True, device=None, dtype=None
    ):
        super().__init__()
        self.hidden_size = check_positive_int("RMSNorm", "hidden_size", hidden_size)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"RMSNorm: argument 'eps' must be a positive float, got {eps!r}")
        self.eps = float(eps)
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("RMSNorm", "x", x, last_dim=self.hidden_size)
        xf = x.float()
        y = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
        return y if self.weight is None else y * self.weight.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}, elementwise_affine={self.weight is not None}"
