"""The packed weight formats (documented in the package README, section "Packed formats").

Version 1, for a weight of N output rows and K = in_features columns:

* ternary (1.58-bit): 4 codes per byte, 2 bits each, stored as code + 1 (0 -> -1, 1 -> 0,
  2 -> +1; 3 never occurs). Packed shape [N, KP] with KP = ceil(K / 4). Along each row the
  K columns are split into 4 consecutive slices of KP columns; byte j of a row holds column
  s * KP + j in bits 2s..2s+1, for s = 0..3. Columns past K (padding) hold code 0.
* binary (1-bit): 8 codes per byte, 1 bit each, bit = 1 for +1 and 0 for -1. Packed shape
  [N, KP] with KP = ceil(K / 8); byte j holds column s * KP + j in bit s, for s = 0..7.
  Padding columns hold bit 0 (-1): in_features tells every reader where a row ends.

Slicing K into contiguous blocks (instead of interleaving neighbouring columns in a byte) lets
a kernel unpack a tile of bytes with one shift and mask per slice and feed each slice to a dot
product against a contiguous block of activations: no register shuffles.
"""

from __future__ import annotations

FORMAT_VERSION = 1
"""Written into every saved checkpoint; readers refuse versions they do not know."""

SUPPORTED_FORMAT_VERSIONS = (1,)

TERNARY = "ternary"
BINARY = "binary"

CODES_PER_BYTE = {TERNARY: 4, BINARY: 8}
BITS_PER_CODE = {TERNARY: 2, BINARY: 1}


def weight_format(weight_bits: float, fn: str = "bitmat_kernels") -> str:
    """Map the public `weight_bits` (1.58 or 1) to a format name."""
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, (int, float)):
        raise TypeError(f"{fn}: argument 'weight_bits' must be 1.58 or 1, got {weight_bits!r}")
    # plain arithmetic, not math.isclose: torch.compile (2.11) cannot trace math.isclose
    if abs(weight_bits - 1.58) < 1e-6:
        return TERNARY
    if weight_bits == 1:
        return BINARY
    raise ValueError(f"{fn}: argument 'weight_bits' must be 1.58 (ternary) or 1 (binary), got {weight_bits!r}")


def packed_width(in_features: int, fmt: str) -> int:
    """Bytes per packed row for `in_features` columns."""
    return -(-in_features // CODES_PER_BYTE[fmt])


def packed_nbytes(out_features: int, in_features: int, fmt: str) -> int:
    return out_features * packed_width(in_features, fmt)
