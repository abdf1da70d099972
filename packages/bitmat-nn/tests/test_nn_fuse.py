"""fuse_projections: sibling BitLinear layers (q/k/v, gate/up) share one matmul, with unchanged outputs.
fuse_norms: an RMSNorm quantizes its output for the A8 layers that read it, with unchanged outputs."""

from __future__ import annotations

import bitmat_kernels as bk
import pytest
import torch
from bitmat_nn import (
    BitFFN,
    BitLinear,
    BitNetConfig,
    BitNetForCausalLM,
    RMSNorm,
    fuse_gated_mlps,
    fuse_norms,
    fuse_projections,
    unfuse_gated_mlps,
    unfuse_norms,
    unfuse_projections,
)
from bitmat_nn.fuse import FusedBitLinear, QuantizingGatedMLP, QuantizingNorm


def small_model(
    per_channel: bool = False, bias: bool = False, activation_bits: int | None = 8, subln: bool = False
) -> BitNetForCausalLM:
    torch.manual_seed(0)
    cfg = BitNetConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4, num_kv_heads=2,
        per_channel=per_channel, bias=bias, activation_bits=activation_bits, subln=subln,
    )  # fmt: skip
    model = BitNetForCausalLM(cfg).eval()
    for m in model.modules():
        if isinstance(m, BitLinear):
            if m.bias is not None:
                torch.nn.init.normal_(m.bias)
            m.drop_latent_weights()
    return model


def packed_ffn(gate: BitLinear | None = None) -> BitFFN:
    """A small BitFFN (optionally with `gate` as its gate projection), packed-only, in eval mode."""
    ffn = BitFFN(16, 24).eval()
    if gate is not None:
        ffn.gate_proj = gate.eval()
    for m in (ffn.gate_proj, ffn.up_proj, ffn.down_proj):
        m.drop_latent_weights()
    return ffn


class CountCalls:
    def __init__(self, monkeypatch):
        self.calls = 0
        real = bk.bitmat_linear

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(bk, "bitmat_linear", counted)


@pytest.mark.parametrize(("per_channel", "bias", "activation_bits"), [(False, False, 8), (True, True, None)])
def test_fused_model_matches_unfused_with_fewer_matmuls(monkeypatch, per_channel, bias, activation_bits):
    model = small_model(per_channel, bias, activation_bits)
    ids = torch.randint(0, 64, (2, 5))
    counter = CountCalls(monkeypatch)
    with torch.no_grad():
        ref = model(ids).logits
        unfused_calls, counter.calls = counter.calls, 0
        assert fuse_projections(model) == 4  # q/k/v and gate/up in each of 2 layers
        out = model(ids).logits
    assert unfused_calls == 2 * 7 and counter.calls == 2 * 4
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert isinstance(model.layers[0].mixer.bitmat_fused_q_k_v, FusedBitLinear)
    assert isinstance(model.layers[1].ffn.bitmat_fused_gate_up, FusedBitLinear)
    # the members' packed buffers are views of the fused weight: no second copy
    q = next(m for n, m in model.named_modules() if n.endswith("q_proj"))
    fused = q._fused_group[0]
    assert q.packed_weight.untyped_storage().data_ptr() == fused.packed_weight.untyped_storage().data_ptr()
    assert unfuse_projections(model) == 4
    assert not any(isinstance(m, FusedBitLinear) for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref, rtol=1e-5, atol=1e-5)
    assert q.packed_weight.untyped_storage().data_ptr() != fused.packed_weight.untyped_storage().data_ptr()
    assert fused.packed_weight.untyped_storage().nbytes() == 0  # the stacked weight is freed


def test_any_call_order_and_other_inputs_are_served_correctly():
    ffn = packed_ffn()
    x1, x2 = torch.randn(3, 16), torch.randn(3, 16)
    with torch.no_grad():
        ref_up1, ref_gate2 = ffn.up_proj(x1), ffn.gate_proj(x2)
        ref_gate1, ref_up2 = ffn.gate_proj(x1), ffn.up_proj(x2)
        fuse_projections(ffn)
        # up before gate, interleaved inputs, and one input modified in place between two members' calls
        torch.testing.assert_close(ffn.up_proj(x1), ref_up1)
        torch.testing.assert_close(ffn.gate_proj(x2), ref_gate2)
        torch.testing.assert_close(ffn.gate_proj(x1), ref_gate1)
        torch.testing.assert_close(ffn.up_proj(x2), ref_up2)
        ffn.gate_proj(x1)
        x1.mul_(2)
        torch.testing.assert_close(ffn.up_proj(x1), 2 * ref_up1, rtol=2e-2, atol=2e-2)
        assert not torch.allclose(ffn.up_proj(x1), ref_up1)


@pytest.mark.parametrize("per_channel", [False, True])
def test_state_dict_is_unchanged_and_loading_or_repacking_dissolves_the_group(per_channel):
    model = small_model(per_channel=per_channel)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fuse_projections(model)
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k, v in after.items():
        assert torch.equal(v, before[k]), k
        assert v._base is None or not k.endswith(("packed_weight", "weight_scale")), k  # no shared storage
    # loading new weights into a fused model: packed bytes land in the fused weight (views); a copied-in scale
    # dissolves the group at the next call, so outputs follow the loaded weights either way
    ids = torch.randint(0, 64, (1, 4))
    with torch.no_grad():
        ref = model(ids).logits
    changed = {k: (v * 2 if k.endswith("weight_scale") else v) for k, v in after.items()}
    model.load_state_dict(changed)
    with torch.no_grad():
        out = model(ids).logits
    unfuse_projections(model)
    model.load_state_dict(changed)
    with torch.no_grad():
        torch.testing.assert_close(out, model(ids).logits)
        assert not torch.allclose(out, ref)
    model.load_state_dict(after)
    assert fuse_projections(model) == 4
    # replacing a member's packed weight (as LoRA merging does) dissolves the group at its next call
    k_proj = next(m for n, m in model.named_modules() if n.endswith("k_proj"))
    k_proj.packed_weight = bk.pack(torch.zeros(k_proj.out_features, k_proj.in_features, dtype=torch.int8))
    with torch.no_grad():
        model(ids)
    assert k_proj._fused_group is None
    with torch.no_grad():
        assert torch.equal(k_proj(torch.randn(1, 32)), torch.zeros(1, k_proj.out_features))


def test_layers_that_cannot_fuse_are_left_alone():
    model = small_model()
    for m in model.modules():
        if isinstance(m, BitLinear) and m.out_features == 48:  # gate/up: give them latent weights again
            m.restore_latent_weights()
    assert fuse_projections(model) == 2  # q/k/v only
    with pytest.raises(ValueError, match="latent weights"):
        FusedBitLinear([model.layers[0].ffn.gate_proj, model.layers[0].ffn.up_proj])


def test_fused_layers_trace_with_torch_compile_fullgraph():
    ffn = packed_ffn()
    x = torch.randn(2, 16)
    with torch.no_grad():
        ref = ffn(x)
        fuse_projections(ffn)
        torch._dynamo.reset()
        out = torch.compile(ffn, backend="eager", fullgraph=True)(x)
    torch.testing.assert_close(out, ref)


def test_dtype_moves_keep_the_group_and_its_float32_scales():
    model = small_model(per_channel=True)
    ids = torch.randint(0, 64, (1, 4))
    fuse_projections(model)
    model.bfloat16()
    fusions = [m for m in model.modules() if isinstance(m, FusedBitLinear)]
    assert all(f.weight_scale.dtype == torch.float32 and f.bounds for f in fusions)
    with torch.no_grad():
        out = model(ids).logits
        unfuse_projections(model)
        torch.testing.assert_close(out, model(ids).logits)
    # a float64 input takes the dense path without dissolving the group
    ffn = packed_ffn()
    fuse_projections(ffn)
    with torch.no_grad():
        ffn.double()(torch.randn(2, 16, dtype=torch.float64))
    assert ffn.gate_proj._fused_group is not None


def test_members_with_and_without_bias_fuse():
    torch.manual_seed(1)
    gate = BitLinear(16, 24, bias=True)
    torch.nn.init.normal_(gate.bias)
    ffn = packed_ffn(gate)
    x = torch.randn(3, 16)
    with torch.no_grad():
        ref = ffn(x)
        fuse_projections(ffn)
        fused = ffn.bitmat_fused_gate_up
        assert torch.equal(fused.bias[24:], torch.zeros(24))
        torch.testing.assert_close(ffn(x), ref)


@pytest.mark.parametrize("groups", ["q_proj", ("q_proj", "k_proj"), [("q_proj",)], [("q_proj", 3)]])
def test_bad_groups_are_a_clear_error(groups):
    with pytest.raises(TypeError, match="groups of at least two child names"):
        fuse_projections(small_model(), groups)


# ------------------------------------------------------------------------------------------------ fuse_norms


class CountQuantizeKernels:
    """Counts the A8 quantize kernels the linear kernels launch (the Triton path)."""

    def __init__(self, monkeypatch):
        import bitmat_kernels.ops.linear.kernel as kernel

        self.calls = 0
        real = kernel.quantize_activations_triton

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(kernel, "quantize_activations_triton", counted)


@pytest.mark.parametrize("fuse_both", [False, True])
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_fused_norms_quantize_for_their_readers_with_unchanged_outputs(monkeypatch, mode, fuse_both):
    model = small_model(subln=True)
    ids = torch.randint(0, 64, (2, 5))
    counter = CountQuantizeKernels(monkeypatch)
    context = torch.no_grad if mode == "no_grad" else torch.inference_mode
    with bk.use_backend("triton"), context():
        if fuse_both:  # a fused q/k/v group reads the norm's codes as well
            fuse_projections(model)
        ref = model(ids).logits
        unfused, counter.calls = counter.calls, 0
        # each layer: mixer_norm -> q/k/v, ffn_norm -> gate/up, sub_norms -> o_proj, down_proj
        assert fuse_norms(model) == 2 * 4
        out = model(ids).logits
    assert unfused == 2 * (4 if fuse_both else 7) and counter.calls == 0
    # float32 model: the fused norm's output matches RMSNorm's to float32 rounding
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_fused_norms_keep_parameters_and_classes_and_unfuse():
    model = small_model()
    keys = list(model.state_dict())
    norm = model.layers[0].mixer_norm
    assert fuse_norms(model) == 4 and fuse_norms(model) == 0  # the second call finds them fused
    assert isinstance(norm, RMSNorm) and isinstance(norm, QuantizingNorm) and list(model.state_dict()) == keys
    assert "QuantizingRMSNorm" in repr(norm)
    assert unfuse_norms(model) == 4
    assert type(norm) is RMSNorm and not hasattr(norm, "_bitmat_quant_eps")


def test_a_norm_output_changed_in_place_is_quantized_afresh():
    norm = RMSNorm(16)
    layer = BitLinear(16, 8).eval()
    layer.drop_latent_weights()
    parent = torch.nn.Module()
    parent.input_layernorm, parent.self_attn = norm, torch.nn.Module()
    for name in ("q_proj", "k_proj", "v_proj"):
        setattr(parent.self_attn, name, layer)
    assert fuse_norms(parent) == 1
    x = torch.randn(3, 16)
    with bk.use_backend("triton"), torch.no_grad():
        y = norm(x)
        assert getattr(y, "_bitmat_quantized", None) is not None
        y.mul_(-2.0)  # the codes the norm left are stale now
        got = layer(y)
    with torch.no_grad():
        want = layer(y.clone())  # (a new tensor: no codes attached)
    torch.testing.assert_close(got, want)


def test_norms_with_readers_that_cannot_use_codes_are_left_alone():
    assert fuse_norms(small_model(activation_bits=None)) == 0  # weight-only readers
    ffn = packed_ffn()
    parent = torch.nn.Module()
    parent.post_attention_layernorm, parent.mlp = torch.nn.LayerNorm(16), ffn  # not an RMSNorm
    assert fuse_norms(parent) == 0
    parent.post_attention_layernorm = RMSNorm(16)
    ffn.up_proj.eps = 1e-3  # readers disagree on eps
    assert fuse_norms(parent) == 0
    ffn.up_proj.eps = ffn.gate_proj.eps
    assert fuse_norms(parent) == 1


def test_fused_norms_fall_back_to_the_original_under_compile_and_autograd():
    model = small_model()
    ids = torch.randint(0, 64, (1, 4))
    with torch.no_grad():
        ref = model(ids).logits
    fuse_norms(model)
    torch._dynamo.reset()
    with bk.use_backend("triton"), torch.no_grad():
        out = torch.compile(model, backend="eager", fullgraph=True)(ids).logits
    torch.testing.assert_close(out, ref)
    norm = model.layers[0].mixer_norm
    x = torch.randn(2, 32, requires_grad=True)
    with bk.use_backend("triton"):
        norm(x).sum().backward()  # gradients: the original norm
    assert x.grad is not None


# ------------------------------------------------------------------------------------------- fuse_gated_mlps


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_fused_gated_mlps_with_norms_and_projections_skip_the_quantize_kernels(monkeypatch, mode):
    model = small_model()
    ids = torch.randint(0, 64, (2, 5))
    counter = CountQuantizeKernels(monkeypatch)
    context = torch.no_grad if mode == "no_grad" else torch.inference_mode
    with bk.use_backend("triton"), context():
        fuse_projections(model)  # the MLP reads the two halves of the fused gate/up product in place
        ref = model(ids).logits
        before, counter.calls = counter.calls, 0
        assert fuse_norms(model) == 2 * 2 and fuse_gated_mlps(model) == 2
        out = model(ids).logits
    # per layer: q/k/v, o, gate/up and down quantized their input before; now only o_proj (after attention)
    assert before == 2 * 4 and counter.calls == 2
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    ffn = model.layers[0].ffn
    assert isinstance(ffn, BitFFN) and isinstance(ffn, QuantizingGatedMLP)
    assert unfuse_gated_mlps(model) == 2 and type(ffn) is BitFFN


def test_gated_mlps_that_cannot_fuse_are_left_alone():
    assert fuse_gated_mlps(small_model(activation_bits=None)) == 0  # weight-only down_proj
    assert fuse_gated_mlps(small_model(subln=True)) == 0  # a sub-norm sits between (fuse_norms serves it)
    relu2 = BitFFN(16, 24, activation="relu2")
    assert fuse_gated_mlps(relu2) == 0


def test_fused_gated_mlp_falls_back_for_gradients():
    ffn = BitFFN(16, 24)
    fuse_gated_mlps(ffn)
    x = torch.randn(3, 16, requires_grad=True)
    with bk.use_backend("triton"):
        ffn(x).sum().backward()  # latent weights, training: the original path
    assert x.grad is not None
