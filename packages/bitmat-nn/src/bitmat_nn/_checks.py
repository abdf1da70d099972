"""Argument checks for the layers: each raises a TypeError or ValueError naming the caller, the
argument, what was expected and what was received."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_positive_int(fn: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{fn}: argument '{name}' must be a positive int, got {value!r}")
    return value


def check_input(fn: str, name: str, x: object, *, last_dim: int | None = None, ndim: int | None = None) -> torch.Tensor:
    """A floating-point activation tensor, optionally with a fixed last dimension / rank."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: argument '{name}' must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        names = ", ".join(str(d).replace("torch.", "") for d in FLOAT_DTYPES)
        raise TypeError(f"{fn}: argument '{name}' must have a floating dtype ({names}), got {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{fn}: argument '{name}' must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if x.dim() == 0:
        raise ValueError(f"{fn}: argument '{name}' must have at least 1 dimension, got a scalar")
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(
            f"{fn}: argument '{name}' must have {last_dim} features in its last dimension, got shape {tuple(x.shape)}"
        )
    return x
