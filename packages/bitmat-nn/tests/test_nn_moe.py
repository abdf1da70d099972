"""BitMoE: routing conserves tokens and weights; output equals a per-token float64 reference;
the balancing loss equals its formula; gradients reach the router and the experts."""

from __future__ import annotations

import pytest
import torch
from _nn_reference import ref_bit_ffn
from bitmat_nn import BitMoE


def _moe(**kw):
    torch.manual_seed(0)
    return BitMoE(12, 20, num_experts=4, **kw)


@pytest.mark.parametrize("top_k", [1, 2, 4])
@pytest.mark.parametrize("normalize", [True, False])
def test_output_equals_per_token_reference(top_k, normalize):
    moe = _moe(top_k=top_k, normalize_top_k=normalize).double()
    x = torch.randn(3, 5, 12, dtype=torch.float64)
    y, _ = moe(x)
    flat = x.reshape(-1, 12)
    probs = torch.softmax(flat @ moe.router.weight.detach().double().T, -1)
    ref = torch.zeros_like(flat)
    for i in range(flat.shape[0]):  # the slow, obvious way: one token at a time
        top = probs[i].argsort(descending=True)[:top_k]
        w = probs[i, top] / (probs[i, top].sum() if normalize else 1.0)
        for e, we in zip(top.tolist(), w):
            ref[i] += we * ref_bit_ffn(moe.experts[e], flat[i : i + 1])[0]
    torch.testing.assert_close(y.reshape(-1, 12), ref, rtol=1e-6, atol=1e-6)


def test_routing_conserves_tokens_and_weights():
    moe = _moe(top_k=2)
    flat = torch.randn(50, 12)
    probs, weights, experts = moe.route(flat)
    torch.testing.assert_close(weights.sum(-1), torch.ones(50))
    assert torch.bincount(experts.reshape(-1), minlength=4).sum() == 100
    assert (experts[:, 0] != experts[:, 1]).all()  # a token never goes twice to one expert
    # identity experts: y = sum of weights * x = x exactly when weights are renormalised
    for expert in moe.experts:
        expert.forward = lambda h: h
    y, _ = moe(flat)
    torch.testing.assert_close(y, flat)


def test_aux_loss_formula_and_padding():
    moe = _moe(top_k=2)
    x = torch.randn(2, 6, 12)
    _, aux = moe(x)
    flat = x.reshape(-1, 12).double()
    probs = torch.softmax(flat @ moe.router.weight.detach().double().T, -1)
    top = probs.topk(2, -1).indices
    f = torch.stack([(top == e).any(-1).double().mean() / 2 for e in range(4)])
    torch.testing.assert_close(aux.double(), 4 * (f * probs.mean(0)).sum(), rtol=1e-5, atol=1e-6)
    # a uniform router is perfectly balanced in expectation: the loss is exactly 1
    with torch.no_grad():
        moe.router.weight.zero_()
    torch.testing.assert_close(moe(x)[1], torch.tensor(1.0))
    # padding is left out
    mask = torch.tensor([[1] * 6, [1, 1, 0, 0, 0, 0]])
    with torch.no_grad():
        moe.router.weight.normal_()
    _, aux_masked = moe(x, attention_mask=mask)
    _, aux_real = moe(torch.cat((x[0], x[1, :2]))[None])
    torch.testing.assert_close(aux_masked, aux_real)


def test_gradients_reach_router_and_experts():
    moe = _moe(top_k=2)
    x = torch.randn(4, 12, requires_grad=True)
    y, aux = moe(x)
    (y.square().sum() + aux).backward()
    assert moe.router.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0
    assert any(e.up_proj.weight.grad is not None for e in moe.experts)


def test_eval_equals_train_and_bad_input():
    moe = _moe(top_k=2, activation="relu2")
    x = torch.randn(9, 12)
    y_train, _ = moe(x)
    with torch.no_grad():
        y_eval, _ = moe.eval()(x)
    torch.testing.assert_close(y_eval, y_train.detach(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="top_k"):
        BitMoE(8, 8, num_experts=2, top_k=3)
    with pytest.raises(ValueError, match="12 features"):
        moe(torch.randn(3, 11))
    with pytest.raises(ValueError, match="attention_mask"):
        moe(torch.randn(2, 3, 12), attention_mask=torch.ones(2, 4))
