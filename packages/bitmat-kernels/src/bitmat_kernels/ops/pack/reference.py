"""Pure-torch packing and unpacking (see bitmat_kernels.formats for the layout)."""

from __future__ import annotations

import torch

from ...formats import BITS_PER_CODE, CODES_PER_BYTE, packed_width


def pack_reference(codes: torch.Tensor, fmt: str) -> torch.Tensor:
    """int8 codes [..., K] -> uint8 [..., ceil(K / codes_per_byte)]."""
    per_byte, bits = CODES_PER_BYTE[fmt], BITS_PER_CODE[fmt]
    k = codes.shape[-1]
    kp = packed_width(k, fmt)
    # Stored values: ternary code + 1 in {0, 1, 2}; binary bit 1 for +1, 0 for -1.
    stored = (codes.to(torch.int32) + 1) if bits == 2 else (codes > 0).to(torch.int32)
    padded = torch.zeros(*codes.shape[:-1], per_byte * kp, dtype=torch.int32, device=codes.device)
    if bits == 2:
        padded.fill_(1)  # padding holds code 0
    padded[..., :k] = stored
    slices = padded.view(*codes.shape[:-1], per_byte, kp)
    shifts = (torch.arange(per_byte, device=codes.device, dtype=torch.int32) * bits).view(per_byte, 1)
    return (slices << shifts).sum(dim=-2).to(torch.uint8)


def unpack_reference(packed: torch.Tensor, in_features: int, fmt: str) -> torch.Tensor:
    """uint8 [..., KP] -> int8 codes [..., in_features]."""
    per_byte, bits = CODES_PER_BYTE[fmt], BITS_PER_CODE[fmt]
    kp = packed.shape[-1]
    shifts = (torch.arange(per_byte, device=packed.device, dtype=torch.int32) * bits).view(per_byte, 1)
    stored = (packed.to(torch.int32).unsqueeze(-2) >> shifts) & ((1 << bits) - 1)
    codes = stored - 1 if bits == 2 else stored * 2 - 1
    return codes.reshape(*packed.shape[:-1], per_byte * kp)[..., :in_features].to(torch.int8)
