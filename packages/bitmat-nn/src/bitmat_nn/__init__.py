"""BitLinear and BitNet layers (attention, FFN, Mamba, MoE) and small BitNet language models."""

from .__about__ import __version__

__all__ = ["__version__"]
