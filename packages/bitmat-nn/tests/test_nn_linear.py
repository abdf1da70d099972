"""BitLinear against explicit float64 references: forward, gradients, eval/train agreement, the
packed cache, drop_latent_weights, state_dict in both states, dtype/device moves, compile."""

from __future__ import annotations

import copy
import logging

import bitmat_kernels as bk
import pytest
import torch
from _nn_reference import ref_activations, ref_bitlinear, ref_weight
from bitmat_nn import BitLinear
from torch import nn

CONFIGS = [
    dict(weight_bits=1.58, activation_bits=8, per_channel=False),
    dict(weight_bits=1.58, activation_bits=None, per_channel=False),
    dict(weight_bits=1.58, activation_bits=8, per_channel=True),
    dict(weight_bits=1, activation_bits=8, per_channel=False),
    dict(weight_bits=1, activation_bits=None, per_channel=True),
]


def _layer(k=13, n=7, bias=True, seed=0, **kw):
    torch.manual_seed(seed)
    layer = BitLinear(k, n, bias=bias, **kw)
    with torch.no_grad():
        if bias:
            layer.bias.normal_()
    return layer


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("bias", [True, False])
def test_training_forward_and_gradients_match_reference(cfg, bias):
    layer = _layer(bias=bias, **cfg).double()
    x = torch.randn(2, 5, 13, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    ref = ref_bitlinear(x.detach(), layer.weight.detach(), layer.bias, **cfg)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)

    g = torch.randn_like(y)
    y.backward(g)
    # The straight-through recipe: dW = g^T Q(x), dx = g Q(W), db = sum g.
    xq = ref_activations(x.detach()) if cfg["activation_bits"] == 8 else x.detach()
    wq = ref_weight(layer.weight.detach(), cfg["weight_bits"], cfg["per_channel"])
    g2 = g.reshape(-1, 7)
    torch.testing.assert_close(layer.weight.grad, g2.T @ xq.reshape(-1, 13), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad, g @ wq, rtol=1e-6, atol=1e-6)
    if bias:
        torch.testing.assert_close(layer.bias.grad, g2.sum(0))


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_eval_packed_output_equals_training_fake_quant(cfg, dtype):
    layer = _layer(k=37, n=11, **cfg).to(dtype)
    x = torch.randn(3, 4, 37).to(dtype)
    train_out = layer(x)
    layer.eval()
    eval_out = layer(x)
    assert eval_out.dtype == dtype and eval_out.shape == (3, 4, 11)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=5e-2)
    torch.testing.assert_close(eval_out, train_out.detach(), **tol)
    # and both equal the float64 reference (bf16 layers: the reference of the bf16 weights)
    ref = ref_bitlinear(x.float(), layer.weight.detach().float(), layer.bias.detach().float(), **cfg)
    torch.testing.assert_close(eval_out.double(), ref, **tol)


def test_input_norm_is_applied_before_quantization():
    layer = _layer(input_norm=True)
    assert layer.norm is not None
    x = torch.randn(4, 13) * 5
    xn = x.double() / torch.sqrt(x.double().pow(2).mean(-1, keepdim=True) + 1e-6)
    ref = ref_bitlinear(xn, layer.weight.detach(), layer.bias.detach())
    torch.testing.assert_close(layer(x).double(), ref, rtol=1e-5, atol=1e-5)
    layer.eval()
    torch.testing.assert_close(layer(x).double(), ref, rtol=1e-5, atol=1e-5)
    assert set(layer.state_dict()) == {"weight", "bias", "norm.weight"}


def test_packed_cache_refreshes_after_optimizer_step_and_in_place_edits():
    layer = _layer(k=16, n=8)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    x = torch.randn(4, 16)
    layer.eval()
    first = layer(x)
    packed_before = layer.packed_weight.clone()
    layer.train()
    layer(torch.randn(4, 16)).pow(2).sum().backward()
    opt.step()
    layer.eval()
    after = layer(x)
    ref = ref_bitlinear(x, layer.weight.detach(), layer.bias.detach())
    torch.testing.assert_close(after.double(), ref, rtol=1e-5, atol=1e-5)
    assert not torch.equal(after, first)
    assert not torch.equal(layer.packed_weight, packed_before)
    with torch.no_grad():
        layer.weight.mul_(-1)  # in-place edit, no optimizer
    torch.testing.assert_close(
        layer(x).double(), ref_bitlinear(x, layer.weight, layer.bias.detach()), rtol=1e-5, atol=1e-5
    )
    # a replaced weight Parameter (new storage) is seen too
    layer.weight = nn.Parameter(torch.randn(8, 16))
    torch.testing.assert_close(
        layer(x).double(), ref_bitlinear(x, layer.weight, layer.bias.detach()), rtol=1e-5, atol=1e-5
    )


def test_cache_is_reused_when_weights_do_not_change(monkeypatch):
    layer = _layer().eval()
    x = torch.randn(2, 13)
    layer(x)
    calls = []
    real = layer.pack_weights
    monkeypatch.setattr(layer, "pack_weights", lambda: calls.append(1) or real())
    layer(x)
    layer(x)
    assert calls == []


def test_cache_refreshes_after_load_state_dict_and_dtype_moves():
    layer = _layer().eval()
    x = torch.randn(2, 13)
    layer(x)
    other = _layer(seed=5)
    layer.load_state_dict(other.state_dict())
    torch.testing.assert_close(
        layer(x).double(), ref_bitlinear(x, other.weight.detach(), other.bias.detach()), rtol=1e-5, atol=1e-5
    )
    layer.double()
    y = layer(x.double())
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, ref_bitlinear(x, other.weight.detach(), other.bias.detach()), rtol=1e-6, atol=1e-6)
    layer.bfloat16()
    assert layer.weight_scale.dtype == torch.float32 and layer.packed_weight.dtype == torch.uint8
    yb = layer(x.bfloat16())
    assert yb.dtype == torch.bfloat16
    ref = ref_bitlinear(x.bfloat16().float(), layer.weight.detach().float(), layer.bias.detach().float())
    torch.testing.assert_close(yb.double(), ref, rtol=2e-2, atol=5e-2)


def test_drop_latent_weights_gives_an_inference_only_layer():
    layer = _layer(k=21, n=9)
    x = torch.randn(3, 21)
    layer.eval()
    before = layer(x)
    layer.drop_latent_weights()
    assert layer.weight is None and not layer.has_latent_weights
    assert set(layer.state_dict()) == {"bias", "packed_weight", "weight_scale"}
    assert layer.state_dict()["packed_weight"].shape == (9, 6)
    torch.testing.assert_close(layer(x), before)
    assert "latent_weights=False" in repr(layer)
    # training mode without grad still serves; with grad it is a clear error
    layer.train()
    with torch.no_grad():
        torch.testing.assert_close(layer(x), before)
    with pytest.raises(RuntimeError, match="latent weights were dropped"):
        layer(x)
    with pytest.raises(RuntimeError, match="latent weights were dropped"):
        layer.quantized_weight_for_training()
    with pytest.raises(RuntimeError, match="latent weights were dropped"):
        layer.pack_weights()
    layer.drop_latent_weights()  # idempotent
    # the dense weight still reads back
    ref_w = ref_weight(_layer(k=21, n=9).weight.detach(), 1.58)
    torch.testing.assert_close(layer.dequantized_weight().double(), ref_w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_state_dict_round_trips_in_both_states(cfg, caplog):
    src = _layer(**cfg)
    x = torch.randn(4, 13)
    src.eval()
    expected = src(x)

    # latent -> latent (exactly nn.Linear's keys, loadable by an nn.Linear too)
    sd = src.state_dict()
    assert set(sd) == {"weight", "bias"}
    plain = nn.Linear(13, 7)
    plain.load_state_dict(sd)
    dst = BitLinear(13, 7, **cfg).eval()
    dst.load_state_dict(sd)
    torch.testing.assert_close(dst(x), expected)

    # packed -> packed
    dropped = copy.deepcopy(src)
    dropped.drop_latent_weights()
    packed_sd = dropped.state_dict()
    dst2 = BitLinear(13, 7, **cfg)
    dst2.drop_latent_weights()
    dst2.load_state_dict(packed_sd)
    torch.testing.assert_close(dst2.eval()(x), expected)

    # packed -> latent: the latent weight becomes the dequantized weight, logged at INFO
    dst3 = BitLinear(13, 7, **cfg).eval()
    with caplog.at_level(logging.INFO, logger="bitmat_nn.linear"):
        dst3.load_state_dict(packed_sd)
    assert any("dequantized" in r.message for r in caplog.records)
    # its latent weight requantizes (float64 reference) to exactly the source's quantized weight
    wq_src = ref_weight(src.weight.detach(), cfg["weight_bits"], cfg["per_channel"])
    torch.testing.assert_close(ref_weight(dst3.weight.detach(), cfg["weight_bits"], cfg["per_channel"]), wq_src)
    torch.testing.assert_close(dst3.dequantized_weight().double(), wq_src)
    torch.testing.assert_close(dst3(x), expected)

    # latent -> packed: quantized on load
    dst4 = BitLinear(13, 7, **cfg)
    dst4.drop_latent_weights()
    dst4.load_state_dict(sd)
    torch.testing.assert_close(dst4.eval()(x), expected)


def test_load_state_dict_rejects_bad_packed_checkpoints():
    layer = BitLinear(13, 7)
    good = _layer()
    good.drop_latent_weights()
    sd = good.state_dict()
    bad = dict(sd, packed_weight=torch.zeros(7, 3, dtype=torch.uint8))
    with pytest.raises(RuntimeError, match="packed_weight"):
        layer.load_state_dict(bad)
    bad = dict(sd, weight_scale=torch.ones(7, 1))
    with pytest.raises(RuntimeError, match="weight_scale"):
        layer.load_state_dict(bad)
    # a format version this kernels package does not know
    sd_meta = good.state_dict()
    sd_meta._metadata[""]["bitmat_format_version"] = 999
    with pytest.raises(RuntimeError, match="format version 999"):
        BitLinear(13, 7).load_state_dict(sd_meta)
    with pytest.raises(RuntimeError, match="weight_bits"):
        BitLinear(13, 7, weight_bits=1).load_state_dict(good.state_dict())
    # a latent weight of the wrong shape into a dropped layer
    dropped = BitLinear(13, 7)
    dropped.drop_latent_weights()
    with pytest.raises(RuntimeError, match=r"\[7, 13\]"):
        dropped.load_state_dict({"weight": torch.randn(7, 12), "bias": torch.zeros(7)})


def test_from_linear_shares_parameters_and_from_packed_serves():
    lin = nn.Linear(13, 7).double()
    bl = BitLinear.from_linear(lin, weight_bits=1, activation_bits=None)
    assert bl.weight is lin.weight and bl.bias is lin.bias
    assert bl.packed_weight.device == lin.weight.device and not bl.packed_weight.is_meta
    x = torch.randn(3, 13, dtype=torch.float64)
    torch.testing.assert_close(
        bl(x), ref_bitlinear(x, lin.weight.detach(), lin.bias.detach(), weight_bits=1, activation_bits=None)
    )
    with pytest.raises(TypeError, match="nn.Linear"):
        BitLinear.from_linear(nn.Conv1d(1, 1, 1))
    with pytest.raises(TypeError, match="dtype"):
        BitLinear.from_linear(lin, dtype=torch.float32)

    src = _layer(per_channel=True).eval()
    x32 = torch.randn(3, 13)
    packed, scale = src.pack_weights()
    served = BitLinear.from_packed(packed, scale, 13, bias=src.bias.detach())
    assert not served.training and served.weight is None and served.per_channel
    torch.testing.assert_close(served(x32), src(x32))
    with pytest.raises(ValueError, match="packed_weight"):
        BitLinear.from_packed(packed, scale, 40)
    with pytest.raises(TypeError, match="uint8"):
        BitLinear.from_packed(packed.int(), scale, 13)
    with pytest.raises(ValueError, match="per_channel"):
        BitLinear.from_packed(packed, scale, 13, per_channel=False)


def test_repr_and_bad_arguments():
    layer = BitLinear(4, 3, bias=False, weight_bits=1, activation_bits=None, per_channel=True)
    assert repr(layer) == (
        "BitLinear(in_features=4, out_features=3, bias=False, weight_bits=1, activation_bits=None, per_channel=True)"
    )
    with pytest.raises(ValueError, match="weight_bits"):
        BitLinear(4, 3, weight_bits=2)
    with pytest.raises(ValueError, match="activation_bits"):
        BitLinear(4, 3, activation_bits=4)
    with pytest.raises(ValueError, match="eps"):
        BitLinear(4, 3, eps=0)
    with pytest.raises(ValueError, match="in_features"):
        BitLinear(0, 3)
    layer = BitLinear(4, 3)
    with pytest.raises(ValueError, match=r"4 features.*\(2, 5\)"):
        layer(torch.randn(2, 5))
    with pytest.raises(TypeError, match="floating"):
        layer(torch.ones(2, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="dtype"):
        layer(torch.randn(2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        layer([1.0, 2.0, 3.0, 4.0])


def test_deepcopy_and_empty_batches():
    layer = _layer().eval()
    x = torch.randn(2, 13)
    clone = copy.deepcopy(layer)
    with torch.no_grad():
        layer.weight.zero_()
    torch.testing.assert_close(
        clone(x).double(), ref_bitlinear(x, clone.weight.detach(), clone.bias.detach()), rtol=1e-5, atol=1e-5
    )
    assert clone(torch.randn(0, 13)).shape == (0, 7)
    assert clone.train()(torch.randn(0, 3, 13)).shape == (0, 3, 7)


@pytest.mark.parametrize("cfg", CONFIGS[:2] + CONFIGS[3:4])
def test_triton_kernel_path_matches_reference(cfg):
    """The eval path through the Triton kernels (interpreter on CPU) equals the float64 reference."""
    layer = _layer(k=19, n=5, **cfg).eval()
    x = torch.randn(3, 19)
    with bk.use_backend("triton"):
        y = layer(x)
    torch.testing.assert_close(
        y.double(), ref_bitlinear(x, layer.weight.detach(), layer.bias.detach(), **cfg), rtol=1e-5, atol=1e-5
    )


def test_torch_compile_fullgraph_train_and_eval():
    layer = _layer(k=16, n=8)
    x = torch.randn(3, 16, requires_grad=True)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    y = compiled(x)
    y.sum().backward()
    ref = ref_bitlinear(x.detach(), layer.weight.detach(), layer.bias.detach())
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5)
    assert layer.weight.grad is not None and x.grad is not None
    layer.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x).double(), ref, rtol=1e-5, atol=1e-5)
        layer.weight.mul_(-1)  # never stale under compile either
        torch.testing.assert_close(compiled(x).double(), -ref + 2 * layer.bias.double(), rtol=1e-5, atol=1e-5)
    layer.drop_latent_weights()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x).double(), -ref + 2 * layer.bias.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weight_bits", [1.58, 1])
@pytest.mark.parametrize("per_channel", [False, True])
def test_restore_latent_weights_requantizes_to_the_same_codes(weight_bits, per_channel):
    layer = BitLinear(40, 24, weight_bits=weight_bits, per_channel=per_channel)
    packed, scale = (t.clone() for t in layer.pack_weights())
    x = torch.randn(3, 40)
    layer.eval()
    with torch.no_grad():
        before = layer(x)
    layer.drop_latent_weights()
    layer.restore_latent_weights()
    assert isinstance(layer.weight, torch.nn.Parameter) and layer.weight.dtype == torch.float32
    new_packed, new_scale = layer.pack_weights()
    assert torch.equal(new_packed, packed)
    torch.testing.assert_close(new_scale, scale, rtol=1e-5, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), before, rtol=1e-4, atol=1e-5)
    layer.train()
    layer(x).sum().backward()  # trainable again
    assert layer.weight.grad is not None
    layer.restore_latent_weights()  # a no-op now
