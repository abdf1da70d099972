"""bitmat-kernels: packed ternary (1.58-bit) and binary (1-bit) weights, their quantizers and
Triton matmul kernels, each with a pure-torch reference. Importing this package does no GPU work."""

from .__about__ import __version__
from .backend import get_backend, set_backend, use_backend
from .formats import FORMAT_VERSION, SUPPORTED_FORMAT_VERSIONS, packed_width
from .ops.activation import silu_mul_quantize
from .ops.linear import bitmat_linear, dequantize
from .ops.norm import rms_norm_quantize
from .ops.pack import pack, pack_binary, pack_ternary, unpack, unpack_binary, unpack_ternary
from .ops.quantize import QuantizedActivations, binarize, quantize_activations, ternarize

__all__ = [
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "QuantizedActivations",
    "__version__",
    "binarize",
    "bitmat_linear",
    "clear_tuned_configs",
    "dequantize",
    "get_backend",
    "load_tuned_configs",
    "pack",
    "pack_binary",
    "pack_ternary",
    "packed_width",
    "quantize_activations",
    "rms_norm_quantize",
    "save_tuned_configs",
    "set_backend",
    "silu_mul_quantize",
    "ternarize",
    "tune_linear",
    "unpack",
    "unpack_binary",
    "unpack_ternary",
    "use_backend",
]

# Launch-configuration tuning imports Triton: loaded on first use, so importing this package stays light.
_LAZY = {
    "tune_linear": ".ops.linear.tuning",
    "save_tuned_configs": ".ops.linear.configs",
    "load_tuned_configs": ".ops.linear.configs",
    "clear_tuned_configs": ".ops.linear.configs",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
