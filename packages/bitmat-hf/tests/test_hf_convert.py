import bitmat_hf
import pytest
import torch
from _hf_testing import input_ids, logits, make_model
from bitmat_hf import BitMatConversionError, convert_hf_model
from bitmat_nn import BitLinear
from torch import nn

EXPECTED_CLASS = {
    "llama": "Llama158ForCausalLM",
    "mistral": "Mistral158ForCausalLM",
    "gemma": "Gemma158ForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}


def test_convert_keeps_weights(arch):
    model = make_model(arch)
    ref = logits(model)
    originals = {n: m.weight for n, m in model.named_modules() if type(m) is nn.Linear}
    embed = model.get_input_embeddings().weight
    out = convert_hf_model(model, show_progress=False)
    assert out is model
    assert type(out).__name__ == EXPECTED_CLASS[arch]
    assert out.config.quantization_config.quant_method == "bitmat"
    if arch != "qwen2":
        assert out.config.model_type == arch + "158"
    layers = dict(bitmat_hf.convert.bitlinear_modules(out))
    assert layers and "lm_head" not in layers
    for name, w in originals.items():
        if name == "lm_head":
            assert type(out.lm_head) is nn.Linear
        else:
            assert isinstance(layers[name], BitLinear) and layers[name].weight is w  # the pretrained weight, kept
    assert out.get_input_embeddings().weight is embed
    # The quantized model computes its original up to quantization.
    got = logits(out)
    assert got.shape == ref.shape and torch.isfinite(got).all()
    rel = (got - ref).norm() / ref.norm()
    assert rel < 0.5, rel


def test_training_reaches_latent_weights(arch):
    model = convert_hf_model(make_model(arch), show_progress=False)
    model.train()
    ids = input_ids()
    loss = model(ids, labels=ids).loss
    loss.backward()
    q = model.model.layers[0].self_attn.q_proj
    assert q.weight.grad is not None and q.weight.grad.abs().sum() > 0
    assert model.model.embed_tokens.weight.grad is not None


def test_eval_uses_packed_weights():
    model = convert_hf_model(make_model("mistral"), show_progress=False).eval()
    layer = model.model.layers[0].mlp.down_proj
    logits(model)
    packed, scale = layer.packed_weight, layer.weight_scale
    assert packed.dtype == torch.uint8 and packed.shape == (32, 16) and scale.dtype == torch.float32


def test_options_reach_layers():
    model = convert_hf_model(
        make_model("llama"), weight_bits=1, activation_bits=None, per_channel=True, show_progress=False
    )
    layer = model.model.layers[1].self_attn.o_proj
    assert layer.weight_bits == 1 and layer.activation_bits is None and layer.per_channel
    assert torch.isfinite(logits(model)).all()


def test_modules_to_not_convert():
    model = convert_hf_model(make_model("mistral"), modules_to_not_convert=["lm_head", "mlp"], show_progress=False)
    assert type(model.model.layers[0].mlp.up_proj) is nn.Linear
    assert isinstance(model.model.layers[0].self_attn.q_proj, BitLinear)
    assert model.config.quantization_config.modules_to_not_convert == ["lm_head", "mlp"]


def test_bad_arguments_leave_model_unchanged():
    model = make_model("mistral")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="weight_bits"):
        convert_hf_model(model, weight_bits=3)
    with pytest.raises(BitMatConversionError, match="modules_to_not_convert"):
        convert_hf_model(model, modules_to_not_convert="lm_head")
    assert type(model).__name__ == "MistralForCausalLM"
    assert not any(isinstance(m, BitLinear) for m in model.modules())
    assert getattr(model.config, "quantization_config", None) is None
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_failure_half_way_leaves_model_unchanged(monkeypatch):
    model = make_model("llama")
    calls = {"n": 0}
    real = BitLinear.from_linear.__func__

    def flaky(cls, linear, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated failure")
        return real(cls, linear, **kwargs)

    monkeypatch.setattr(BitLinear, "from_linear", classmethod(flaky))
    with pytest.raises(BitMatConversionError, match="left unchanged"):
        convert_hf_model(model, show_progress=False)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not any(isinstance(m, BitLinear) for m in model.modules())


def test_refuses_non_models_and_double_conversion():
    with pytest.raises(TypeError, match="PreTrainedModel"):
        convert_hf_model(nn.Sequential(nn.Linear(4, 4)))
    model = convert_hf_model(make_model("mistral"), show_progress=False)
    with pytest.raises(BitMatConversionError, match="already converted"):
        convert_hf_model(model)


def test_fresh_158_model_from_config():
    from bitmat_hf import Mistral158Config, Mistral158ForCausalLM

    cfg = Mistral158Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = Mistral158ForCausalLM(cfg)
    assert isinstance(model.model.layers[0].mlp.gate_proj, BitLinear)
    assert type(model.lm_head) is nn.Linear
    assert model.config.quantization_config.quant_method == "bitmat"
    ids = torch.randint(0, 64, (1, 5))
    assert model.eval()(ids).logits.shape == (1, 5, 64)


def test_meta_device_conversion():
    """A model larger than memory converts as a skeleton on the meta device (no weights allocated)."""
    from _hf_testing import make_config
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(make_config("mistral", hidden_size=4096, intermediate_size=14336))
    model = convert_hf_model(model, show_progress=False)
    layer = model.model.layers[0].mlp.down_proj
    assert isinstance(layer, BitLinear) and layer.weight.is_meta
    assert layer.packed_weight.is_meta and layer.packed_weight.shape == (4096, 14336 // 4)
