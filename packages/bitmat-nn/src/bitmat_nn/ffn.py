"""BitFFN: the gated feed-forward block with BitLinear projections, SwiGLU or squared-ReLU
(BitNet b1.58 2B4T), with the optional subln (an RMSNorm before down_proj)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_input, check_positive_int
from .linear import BitLinear
from .norm import RMSNorm

ACTIVATIONS = ("swiglu", "relu2")


class BitFFN(nn.Module):
    """down_proj(act(gate_proj(x)) * up_proj(x)) with act = SiLU ("swiglu") or ReLU² ("relu2")."""

    def __init__(
        self,
        hidden_size: int,
        intermediate_size: int,
        *,
        activation: str = "swiglu",
        bias: bool = False,
        subln: bool = False,
        norm_eps: float = 1e-6,
        **bitlinear_kwargs,
    ) -> None:
        super().__init__()
        check_positive_int("BitFFN", "hidden_size", hidden_size)
        check_positive_int("BitFFN", "intermediate_size", intermediate_size)
        if activation not in ACTIVATIONS:
            raise ValueError(f"BitFFN: argument 'activation' must be one of {ACTIVATIONS}, got {activation!r}")
        self.hidden_size, self.intermediate_size, self.activation = hidden_size, intermediate_size, activation
        kw = dict(bitlinear_kwargs)
        self.gate_proj = BitLinear(hidden_size, intermediate_size, bias, **kw)
        self.up_proj = BitLinear(hidden_size, intermediate_size, bias, **kw)
        self.down_proj = BitLinear(intermediate_size, hidden_size, bias, **kw)
        factory = {k: kw[k] for k in ("device", "dtype") if k in kw}
        self.sub_norm = RMSNorm(intermediate_size, eps=norm_eps, **factory) if subln else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("BitFFN.forward", "x", x, last_dim=self.hidden_size)
        gate = self.gate_proj(x)
        gate = F.silu(gate) if self.activation == "swiglu" else F.relu(gate).square()
        h = gate * self.up_proj(x)
        if self.sub_norm is not None:
            h = self.sub_norm(h)
        return self.down_proj(h)

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, intermediate_size={self.intermediate_size}, activation={self.activation}"
