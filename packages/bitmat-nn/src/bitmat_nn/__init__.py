"""BitLinear and BitNet layers (attention, FFN, Mamba, MoE) and small BitNet language models."""

from .__about__ import __version__
from .convert import replace_linear_with_bitlinear
from .linear import BitLinear
from .norm import RMSNorm

__all__ = [
    "BitLinear",
    "RMSNorm",
    "__version__",
    "replace_linear_with_bitlinear",
]
