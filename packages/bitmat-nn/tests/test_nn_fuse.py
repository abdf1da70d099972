"""fuse_projections: sibling BitLinear layers (q/k/v, gate/up) share one matmul, with unchanged outputs."""

from __future__ import annotations

import bitmat_kernels as bk
import pytest
import torch
from bitmat_nn import BitFFN, BitLinear, BitNetConfig, BitNetForCausalLM, fuse_projections, unfuse_projections
from bitmat_nn.fuse import FusedBitLinear


def small_model(per_channel: bool = False, bias: bool = False, activation_bits: int | None = 8) -> BitNetForCausalLM:
    torch.manual_seed(0)
    cfg = BitNetConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_layers=2, num_heads=4, num_kv_heads=2,
        per_channel=per_channel, bias=bias, activation_bits=activation_bits,
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
