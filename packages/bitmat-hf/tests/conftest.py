"""bitmat-hf test setup: makes the helpers (_hf_testing.py) importable; fixtures with tiny local models."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bitmat_hf
import pytest
from _hf_testing import ARCHS, logits, make_model


@pytest.fixture(params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture
def float_folder(tmp_path, arch):
    """A saved full-precision tiny model of `arch`."""
    model = make_model(arch)
    path = tmp_path / f"{arch}-float"
    model.save_pretrained(path)
    return path


@pytest.fixture
def packed_folder(tmp_path):
    """A saved packed BitMat Mistral158 tiny model, and the logits it must produce."""
    model = bitmat_hf.convert_hf_model(make_model("mistral"), show_progress=False)
    path = tmp_path / "mistral-packed"
    model.save_pretrained(path)
    return path, logits(model)
