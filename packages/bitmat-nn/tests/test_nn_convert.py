"""replace_linear_with_bitlinear: converts in place, keeps weights, honours the skip list, all-or-nothing."""

from __future__ import annotations

import pytest
import torch
from _nn_reference import ref_bitlinear
from bitmat_nn import BitLinear, replace_linear_with_bitlinear
from bitmat_nn.linear import BitLinear as _BitLinear
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.up_proj = nn.Linear(8, 16)
        self.down_proj = nn.Linear(16, 8, bias=False)
        self.mlp = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Block(), Block()])
        self.lm_head = nn.Linear(8, 5)
        self.attn = nn.MultiheadAttention(8, 2)  # its out_proj is an nn.Linear subclass: left alone


def test_converts_in_place_keeping_weights_and_skipping_by_name():
    torch.manual_seed(0)
    model = Toy()
    up = model.layers[0].up_proj
    out = replace_linear_with_bitlinear(model, modules_to_not_convert=("lm_head", "layers.1.mlp"), weight_bits=1)
    assert out is model
    assert isinstance(model.layers[0].up_proj, BitLinear) and model.layers[0].up_proj.weight is up.weight
    assert model.layers[0].up_proj.weight_bits == 1
    assert isinstance(model.layers[0].mlp[0], BitLinear)
    assert type(model.layers[1].mlp[0]) is nn.Linear and type(model.layers[1].mlp[2]) is nn.Linear
    assert isinstance(model.layers[1].up_proj, BitLinear)
    assert type(model.lm_head) is nn.Linear
    assert not isinstance(model.attn.out_proj, BitLinear)
    x = torch.randn(3, 8)
    ref = ref_bitlinear(x, up.weight.detach(), up.bias.detach(), weight_bits=1)
    torch.testing.assert_close(model.layers[0].up_proj(x).double(), ref, rtol=1e-5, atol=1e-5)
    # idempotent: BitLinear is not converted again
    before = model.layers[0].up_proj
    replace_linear_with_bitlinear(model)
    assert model.layers[0].up_proj is before


def test_shared_linear_stays_shared():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    replace_linear_with_bitlinear(model, modules_to_not_convert=())
    assert isinstance(model[0], BitLinear) and model[0] is model[2]


def test_failure_leaves_the_model_unchanged(monkeypatch):
    model = Toy()
    calls = []
    real = _BitLinear.from_linear.__func__

    def flaky(cls, linear, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real(cls, linear, **kw)

    monkeypatch.setattr(_BitLinear, "from_linear", classmethod(flaky))
    with pytest.raises(RuntimeError, match="boom"):
        replace_linear_with_bitlinear(model)
    assert not any(isinstance(m, BitLinear) for m in model.modules())


def test_bad_arguments():
    with pytest.raises(TypeError, match="model"):
        replace_linear_with_bitlinear("not a model")
    with pytest.raises(TypeError, match="modules_to_not_convert"):
        replace_linear_with_bitlinear(Toy(), modules_to_not_convert=("", "x"))
    with pytest.raises(ValueError, match="weight_bits"):
        replace_linear_with_bitlinear(Toy(), weight_bits=3)
    with pytest.raises(TypeError, match="from_linear"):
        replace_linear_with_bitlinear(nn.Linear(2, 2))
    model = Toy()
    with pytest.raises(ValueError):
        replace_linear_with_bitlinear(model, weight_bits=3)
    assert not any(isinstance(m, BitLinear) for m in model.modules())
