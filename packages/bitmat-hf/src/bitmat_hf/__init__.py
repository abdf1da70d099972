"""bitmat-hf: 1.58-bit (ternary) and 1-bit LLMs in HuggingFace transformers.

Convert a model (`convert_hf_model`), fine-tune it quantization-aware, save it packed, load it
(`Mistral158ForCausalLM.from_pretrained`, `Auto158ModelForCausalLM`, or plain
`AutoModelForCausalLM` through the registered "bitmat" quantization method) and generate. Checkpoints in
transformers' own "bitnet" format (microsoft/bitnet-b1.58-2B-4T) load with `load_bitnet_checkpoint` and are
written with `export_bitnet`.
Importing this package registers the 158 configs/models with the transformers Auto classes and
the "bitmat" quantizer; it does no GPU work.
"""

from .__about__ import __version__
from .auto import Auto158ModelForCausalLM
from .auto import register as _register_auto
from .bitnet import BitNetFormatError, export_bitnet, load_bitnet_checkpoint, read_bitnet_layout
from .checkpoint import BitMatCheckpointError, inspect_checkpoint
from .config import BitMatConfig, BitMatConfigError, Gemma158Config, Llama158Config, Mistral158Config
from .convert import BitMatConversionError, convert_hf_model, pack_and_drop_latent, prepare_for_training
from .generation import GraphGreedyDecoder, prepare_for_fast_generation
from .lora import merge_lora
from .modeling import (
    BitMatArchitectureError,
    Gemma158ForCausalLM,
    Llama158ForCausalLM,
    Mistral158ForCausalLM,
    save_pretrained,
)
from .quantizer import BitMatHfQuantizer
from .quantizer import register as _register_quantizer

_register_quantizer()
_register_auto()

__all__ = [
    "Auto158ModelForCausalLM",
    "BitMatArchitectureError",
    "BitMatCheckpointError",
    "BitMatConfig",
    "BitMatConfigError",
    "BitMatConversionError",
    "BitMatHfQuantizer",
    "BitNetFormatError",
    "Gemma158Config",
    "Gemma158ForCausalLM",
    "GraphGreedyDecoder",
    "Llama158Config",
    "Llama158ForCausalLM",
    "Mistral158Config",
    "Mistral158ForCausalLM",
    "__version__",
    "convert_hf_model",
    "export_bitnet",
    "inspect_checkpoint",
    "load_bitnet_checkpoint",
    "merge_lora",
    "pack_and_drop_latent",
    "prepare_for_fast_generation",
    "prepare_for_training",
    "read_bitnet_layout",
    "save_pretrained",
]
