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
    "dequantize",
    "get_backend",
    "pack",
    "pack_binary",
    "pack_ternary",
    "packed_width",
    "quantize_activations",
    "rms_norm_quantize",
    "set_backend",
    "silu_mul_quantize",
    "ternarize",
    "unpack",
    "unpack_binary",
    "unpack_ternary",
    "use_backend",
]
