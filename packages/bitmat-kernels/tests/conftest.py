"""Fixtures for the kernel tests: the Triton backend on CPU (through the interpreter) and NaN
poisoning of every buffer the kernels allocate."""

from __future__ import annotations

import bitmat_kernels as bk
import pytest
import torch

POISON_INT = {torch.int8: 77, torch.uint8: 0xAA, torch.int32: -123456789}


def poison_empty(monkeypatch):
    real_empty = torch.empty

    def empty(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        if t.is_floating_point():
            t.fill_(float("nan"))
        elif t.dtype in POISON_INT:
            t.fill_(POISON_INT[t.dtype])
        return t

    monkeypatch.setattr(torch, "empty", empty)


@pytest.fixture(params=["reference", "triton"])
def backend(request, monkeypatch):
    """Runs a test on both paths; the Triton path sees poisoned output buffers."""
    if request.param == "triton":
        poison_empty(monkeypatch)
    with bk.use_backend(request.param):
        yield request.param


@pytest.fixture
def triton_backend(monkeypatch):
    poison_empty(monkeypatch)
    with bk.use_backend("triton"):
        yield


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
