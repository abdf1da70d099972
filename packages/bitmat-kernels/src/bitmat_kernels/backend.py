"""Which implementation runs an op: the Triton kernels or the pure-torch reference.

"auto" (the default) runs Triton on CUDA tensors and the reference elsewhere. "triton" also
sends CPU tensors through the Triton kernels, which works only under the Triton interpreter
(TRITON_INTERPRET=1, set before triton is imported): that is how CPU CI checks the kernels.
"reference" always runs the reference. The environment variable BITMAT_KERNELS_BACKEND sets the
starting value.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

BACKENDS = ("auto", "triton", "reference")

_backend = os.environ.get("BITMAT_KERNELS_BACKEND", "auto").strip().lower() or "auto"
if _backend not in BACKENDS:
    raise ValueError(f"BITMAT_KERNELS_BACKEND must be one of {BACKENDS}, got {_backend!r}")


def get_backend() -> str:
    return _backend


def set_backend(name: str) -> None:
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"set_backend: argument 'name' must be one of {BACKENDS}, got {name!r}")
    _backend = name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_triton(t: torch.Tensor) -> bool:
    """Whether the op on tensor `t` should run the Triton kernel."""
    if _backend == "reference":
        return False
    if t.is_cuda:
        return True
    if _backend == "triton":
        if t.device.type == "cpu" and interpreter_enabled():
            return True
        raise RuntimeError(
            f"backend 'triton' on a {t.device.type} tensor needs the Triton interpreter: set "
            "TRITON_INTERPRET=1 before triton is imported, or use backend 'auto'"
        )
    return False
