"""BitLinear and BitNet layers (attention, FFN, Mamba, MoE) and small BitNet language models."""

from .__about__ import __version__
from .attention import BitAttention
from .cache import BitNetCache, KVCache, MambaCache
from .convert import replace_linear_with_bitlinear
from .ffn import BitFFN
from .fuse import (
    FusedBitLinear,
    fuse_gated_mlps,
    fuse_norms,
    fuse_projections,
    unfuse_gated_mlps,
    unfuse_norms,
    unfuse_projections,
)
from .linear import BitLinear
from .mamba import BitMamba, selective_scan
from .model import BitNetBlock, BitNetConfig, BitNetForCausalLM, BitNetOutput
from .moe import BitMoE
from .norm import RMSNorm
from .tuning import tune_kernels

__all__ = [
    "BitAttention",
    "BitFFN",
    "BitLinear",
    "BitMamba",
    "BitMoE",
    "BitNetBlock",
    "BitNetCache",
    "BitNetConfig",
    "BitNetForCausalLM",
    "BitNetOutput",
    "FusedBitLinear",
    "KVCache",
    "MambaCache",
    "RMSNorm",
    "__version__",
    "fuse_gated_mlps",
    "fuse_norms",
    "fuse_projections",
    "replace_linear_with_bitlinear",
    "selective_scan",
    "tune_kernels",
    "unfuse_gated_mlps",
    "unfuse_norms",
    "unfuse_projections",
]
