"""The original BitMat names, so code written for the original BitMat README runs unchanged.

    from bitmat import convert_hf_model, Mistral158ForCausalLM, BitLinear

Everything here is re-exported from bitmat_hf, bitmat_nn and bitmat_kernels.
"""

from bitmat_hf import (
    Auto158ModelForCausalLM,
    BitMatConfig,
    Gemma158Config,
    Gemma158ForCausalLM,
    Llama158Config,
    Llama158ForCausalLM,
    Mistral158Config,
    Mistral158ForCausalLM,
    convert_hf_model,
)
from bitmat_hf import __version__ as __version__
from bitmat_kernels import pack_ternary, unpack_ternary
from bitmat_nn import BitLinear

__all__ = [
    "Auto158ModelForCausalLM",
    "BitLinear",
    "BitMatConfig",
    "Gemma158Config",
    "Gemma158ForCausalLM",
    "Llama158Config",
    "Llama158ForCausalLM",
    "Mistral158Config",
    "Mistral158ForCausalLM",
    "convert_hf_model",
    "pack_ternary",
    "unpack_ternary",
]
