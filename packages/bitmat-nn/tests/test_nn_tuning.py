"""tune_kernels: one bitmat_kernels.tune_linear call per distinct packed matmul of a model (tune_linear itself is
tested in bitmat-kernels; here it is replaced by a recorder)."""

from __future__ import annotations

import bitmat_kernels as bk
import pytest
import torch
from bitmat_nn import BitLinear, BitNetConfig, BitNetForCausalLM, fuse_projections, tune_kernels


def small_model(activation_bits: int | None = 8) -> BitNetForCausalLM:
    torch.manual_seed(0)
    cfg = BitNetConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4, num_kv_heads=2,
        activation_bits=activation_bits,
    )  # fmt: skip
    model = BitNetForCausalLM(cfg).eval()
    for m in model.modules():
        if isinstance(m, BitLinear):
            m.drop_latent_weights()
    return model


@pytest.fixture
def calls(monkeypatch):
    seen = []

    def fake(packed, scale, **kwargs):
        seen.append((tuple(packed.shape), scale.dtype, kwargs))
        return [dict(m=1, path="gemm", config=None, us=None, rule_us=None, candidates=0)]

    monkeypatch.setattr(bk, "tune_linear", fake)
    return seen


def test_one_call_per_distinct_shape(calls):
    model = small_model()
    results = tune_kernels(model, batch_sizes=[1, 16], dtype=torch.bfloat16, budget_ms=5)
    # q and o are 32x32, k and v 16x32, gate and up 48x32, down 32x48 (two decoder layers)
    assert sorted(results) == [(16, 32, 1.58, 8), (32, 32, 1.58, 8), (32, 48, 1.58, 8), (48, 32, 1.58, 8)]
    assert len(calls) == 4
    shape, scale_dtype, kwargs = calls[0]
    assert scale_dtype == torch.float32
    assert kwargs == dict(in_features=kwargs["in_features"], weight_bits=1.58, activation_bits=8,
                          dtype=torch.bfloat16, budget_ms=5, batch_sizes=[1, 16])  # fmt: skip
    assert shape[1] == bk.packed_width(kwargs["in_features"], "ternary")


def test_fused_groups_are_tuned_as_the_one_matmul_they_run(calls):
    model = small_model(activation_bits=None)
    fuse_projections(model)
    results = tune_kernels(model)
    # q/k/v fused: 64x32, gate/up fused: 96x32; o 32x32 and down 32x48 stay
    assert sorted(results) == [(32, 32, 1.58, None), (32, 48, 1.58, None), (64, 32, 1.58, None), (96, 32, 1.58, None)]
    assert all("batch_sizes" not in kw and kw["dtype"] == torch.float32 for _, _, kw in calls)  # the model's dtype


def test_bad_input(calls):
    with pytest.raises(TypeError, match="torch.nn.Module"):
        tune_kernels("model")
    with pytest.raises(ValueError, match="no BitLinear layers"):
        tune_kernels(torch.nn.Linear(4, 4))
