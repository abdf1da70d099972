"""Argument checks shared by every public entry point.

Each check raises a TypeError or ValueError that names the function, the argument, what was
expected and what was received, so a bad call fails here and never inside a kernel.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _names(dtypes: Iterable[torch.dtype]) -> str:
    return ", ".join(str(d).replace("torch.", "") for d in dtypes)


def check_tensor(
    fn: str,
    name: str,
    t: object,
    *,
    dtypes: Iterable[torch.dtype] | None = None,
    ndim: int | tuple[int, ...] | None = None,
    min_ndim: int | None = None,
    contiguous: bool = False,
    nonempty: bool = False,
) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{fn}: argument '{name}' must be a torch.Tensor, got {type(t).__name__}")
    if dtypes is not None:
        dtypes = tuple(dtypes)
        if t.dtype not in dtypes:
            raise TypeError(f"{fn}: argument '{name}' must have dtype {_names(dtypes)}, got {_names([t.dtype])}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if t.dim() not in allowed:
            raise ValueError(
                f"{fn}: argument '{name}' must have {' or '.join(map(str, allowed))} dimensions, "
                f"got shape {tuple(t.shape)}"
            )
    if min_ndim is not None and t.dim() < min_ndim:
        raise ValueError(
            f"{fn}: argument '{name}' must have at least {min_ndim} dimension(s), got shape {tuple(t.shape)}"
        )
    if contiguous and not t.is_contiguous():
        raise ValueError(
            f"{fn}: argument '{name}' must be contiguous (packed weights are a storage format), "
            f"got strides {t.stride()} for shape {tuple(t.shape)}; call .contiguous() on it"
        )
    if nonempty and t.numel() == 0:
        raise ValueError(f"{fn}: argument '{name}' must not be empty, got shape {tuple(t.shape)}")
    return t


def check_same_device(fn: str, **tensors: torch.Tensor | None) -> None:
    present = {k: v for k, v in tensors.items() if v is not None}
    devices = {str(v.device) for v in present.values()}
    if len(devices) > 1:
        listing = ", ".join(f"'{k}' on {v.device}" for k, v in present.items())
        raise ValueError(f"{fn}: all tensors must be on one device, got {listing}")


def check_codes_in(fn: str, name: str, codes: torch.Tensor, low: int, high: int, *, exclude_zero=False) -> None:
    """Value check (one device sync); skipped while torch.compile traces or a CUDA graph captures,
    where a sync is impossible."""
    if codes.numel() == 0 or torch.compiler.is_compiling():
        return
    if codes.is_cuda and torch.cuda.is_current_stream_capturing():
        return
    bad = (codes < low) | (codes > high)
    if exclude_zero:
        bad |= codes == 0
    if bool(bad.any()):
        first = codes[bad].flatten()[0].item()
        alphabet = "{-1, +1}" if exclude_zero else "{" + ", ".join(str(v) for v in range(low, high + 1)) + "}"
        raise ValueError(
            f"{fn}: argument '{name}' must hold codes in {alphabet}, got value {first} "
            f"({int(bad.sum())} of {codes.numel()} entries out of range)"
        )
