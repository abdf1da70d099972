"""pack_ternary / unpack_ternary / pack_binary / unpack_binary."""

from __future__ import annotations

import torch

from ..._checks import check_codes_in, check_tensor
from ...backend import use_triton
from ...formats import BINARY, CODES_PER_BYTE, TERNARY, packed_width, weight_format
from .reference import pack_reference, unpack_reference

_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)


@torch.library.custom_op("bitmat::pack", mutates_args=())
def _pack_op(codes: torch.Tensor, fmt: str) -> torch.Tensor:
    if use_triton(codes):
        from .kernel import pack_triton

        return pack_triton(codes, fmt)
    return pack_reference(codes, fmt)


@_pack_op.register_fake
def _(codes: torch.Tensor, fmt: str) -> torch.Tensor:
    return codes.new_empty(*codes.shape[:-1], packed_width(codes.shape[-1], fmt), dtype=torch.uint8)


@torch.library.custom_op("bitmat::unpack", mutates_args=())
def _unpack_op(packed: torch.Tensor, in_features: int, fmt: str) -> torch.Tensor:
    if use_triton(packed):
        from .kernel import unpack_triton

        return unpack_triton(packed, in_features, fmt)
    return unpack_reference(packed, in_features, fmt)


@_unpack_op.register_fake
def _(packed: torch.Tensor, in_features: int, fmt: str) -> torch.Tensor:
    return packed.new_empty(*packed.shape[:-1], in_features, dtype=torch.int8)


def _pack(fn: str, codes: torch.Tensor, fmt: str) -> torch.Tensor:
    check_tensor(fn, "codes", codes, dtypes=_INT_DTYPES, min_ndim=1)
    if codes.shape[-1] == 0:
        raise ValueError(f"{fn}: argument 'codes' must have at least one column, got shape {tuple(codes.shape)}")
    if fmt == TERNARY:
        check_codes_in(fn, "codes", codes, -1, 1)
    else:
        check_codes_in(fn, "codes", codes, -1, 1, exclude_zero=True)
    return _pack_op(codes.to(torch.int8).contiguous(), fmt)


def check_packed(fn: str, packed: torch.Tensor, in_features: int, fmt: str) -> torch.Tensor:
    """Checks a packed weight against `in_features`; shared by unpack and the matmul."""
    check_tensor(fn, "packed", packed, dtypes=(torch.uint8,), min_ndim=1, contiguous=True)
    if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
        raise ValueError(f"{fn}: argument 'in_features' must be a positive int, got {in_features!r}")
    expected = packed_width(in_features, fmt)
    if packed.shape[-1] != expected:
        per_byte = CODES_PER_BYTE[fmt]
        raise ValueError(
            f"{fn}: in_features={in_features} needs {expected} packed bytes per row ({fmt}, {per_byte} codes "
            f"per byte), but argument 'packed' has shape {tuple(packed.shape)} "
            f"(room for {per_byte * (packed.shape[-1] - 1) + 1}..{per_byte * packed.shape[-1]} columns)"
        )
    return packed


def _unpack(fn: str, packed: torch.Tensor, in_features: int, fmt: str) -> torch.Tensor:
    check_packed(fn, packed, in_features, fmt)
    return _unpack_op(packed, in_features, fmt)


def pack_ternary(codes: torch.Tensor) -> torch.Tensor:
    """Pack ternary codes in {-1, 0, +1} (any integer dtype, shape [..., K]) into uint8 [..., ceil(K/4)]."""
    return _pack("pack_ternary", codes, TERNARY)


def unpack_ternary(packed: torch.Tensor, in_features: int) -> torch.Tensor:
    """Inverse of pack_ternary: uint8 [..., ceil(K/4)] -> int8 codes [..., in_features]."""
    return _unpack("unpack_ternary", packed, in_features, TERNARY)


def pack_binary(codes: torch.Tensor) -> torch.Tensor:
    """Pack binary codes in {-1, +1} (any integer dtype, shape [..., K]) into uint8 [..., ceil(K/8)]."""
    return _pack("pack_binary", codes, BINARY)


def unpack_binary(packed: torch.Tensor, in_features: int) -> torch.Tensor:
    """Inverse of pack_binary: uint8 [..., ceil(K/8)] -> int8 codes [..., in_features]."""
    return _unpack("unpack_binary", packed, in_features, BINARY)


def pack(codes: torch.Tensor, weight_bits: float = 1.58) -> torch.Tensor:
    """pack_ternary for weight_bits=1.58, pack_binary for weight_bits=1."""
    fmt = weight_format(weight_bits, "pack")
    return _pack("pack", codes, fmt)


def unpack(packed: torch.Tensor, in_features: int, weight_bits: float = 1.58) -> torch.Tensor:
    """unpack_ternary for weight_bits=1.58, unpack_binary for weight_bits=1."""
    fmt = weight_format(weight_bits, "unpack")
    return _unpack("unpack", packed, in_features, fmt)


__all__ = ["check_packed", "pack", "pack_binary", "pack_ternary", "unpack", "unpack_binary", "unpack_ternary"]
