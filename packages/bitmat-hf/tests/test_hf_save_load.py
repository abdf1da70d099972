import logging
import os

import bitmat_hf
import pytest
import torch
from _hf_testing import input_ids, logits, make_model
from bitmat_hf import (
    Auto158ModelForCausalLM,
    BitMatConfig,
    Gemma158ForCausalLM,
    Llama158ForCausalLM,
    Mistral158ForCausalLM,
    convert_hf_model,
)
from bitmat_nn import BitLinear
from safetensors import safe_open
from transformers import AutoModelForCausalLM

CLS_158 = {"llama": Llama158ForCausalLM, "mistral": Mistral158ForCausalLM, "gemma": Gemma158ForCausalLM}


def _converted(arch, **kwargs):
    return convert_hf_model(make_model(arch), show_progress=False, **kwargs)


def test_packed_save_format(tmp_path):
    model = _converted("mistral")
    model.save_pretrained(tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
        packed = f.get_tensor("model.layers.0.self_attn.q_proj.packed_weight")
        scale = f.get_tensor("model.layers.0.self_attn.q_proj.weight_scale")
    assert meta["bitmat_format_version"] == "1" and meta["bitmat_checkpoint_format"] == "packed"
    assert "model.layers.0.self_attn.q_proj.weight" not in keys
    assert "lm_head.weight" in keys and "model.embed_tokens.weight" in keys
    assert packed.dtype == torch.uint8 and packed.shape == (32, 8)
    assert scale.dtype == torch.float32 and scale.shape == (1,)
    # Saving does not drop the in-memory latent weights.
    assert model.model.layers[0].self_attn.q_proj.weight is not None
    info = bitmat_hf.inspect_checkpoint(tmp_path)
    assert info.is_bitmat and info.format_version == 1


def test_round_trip_every_path(tmp_path, arch):
    model = _converted(arch)
    ref = logits(model)
    model.save_pretrained(tmp_path)
    loaders = [AutoModelForCausalLM.from_pretrained, Auto158ModelForCausalLM.from_pretrained]
    if arch in CLS_158:
        loaders.append(CLS_158[arch].from_pretrained)
    for load in loaders:
        loaded = load(tmp_path)
        assert type(loaded) is type(model)
        layer = loaded.model.layers[0].mlp.up_proj
        assert isinstance(layer, BitLinear) and layer.weight is None  # packed-only, inference memory
        assert torch.equal(logits(loaded), ref), load


def test_qwen2_round_trip_is_marked(tmp_path):
    model = _converted("qwen2")
    assert type(model).__name__ == "Qwen2ForCausalLM"
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.quantization_config.quant_method == "bitmat"
    assert loaded.model.layers[0].self_attn.q_proj.bias is not None  # qwen2 has q/k/v biases
    assert torch.equal(logits(loaded), logits(model))


def test_latent_round_trip_resumes_training(tmp_path, arch):
    model = _converted(arch)
    ref = logits(model)
    bitmat_hf.save_pretrained(model, tmp_path, keep_latent_weights=True)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        assert f.metadata()["bitmat_checkpoint_format"] == "latent"
        assert "model.layers.0.self_attn.q_proj.weight" in set(f.keys())
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    q0, q1 = model.model.layers[0].self_attn.q_proj, loaded.model.layers[0].self_attn.q_proj
    assert torch.equal(q0.weight, q1.weight)
    assert torch.equal(logits(loaded), ref)
    # And it re-saves packed by default, identical to the packed save of the original.
    loaded.save_pretrained(tmp_path / "again")
    model.save_pretrained(tmp_path / "orig")
    with (
        safe_open(tmp_path / "again" / "model.safetensors", "pt") as a,
        safe_open(tmp_path / "orig" / "model.safetensors", "pt") as b,
    ):
        assert set(a.keys()) == set(b.keys())
        for k in a.keys():  # noqa: SIM118  (safe_open is not a dict)
            assert torch.equal(a.get_tensor(k), b.get_tensor(k)), k


def test_158_save_pretrained_keep_latent(tmp_path):
    model = _converted("llama")
    model.save_pretrained(tmp_path, keep_latent_weights=True)
    loaded = Llama158ForCausalLM.from_pretrained(tmp_path)
    assert loaded.model.layers[0].mlp.down_proj.weight is not None
    assert loaded.config.quantization_config.checkpoint_format == "latent"


def test_safetensors_only(tmp_path):
    with pytest.raises(ValueError, match="safetensors only"):
        bitmat_hf.save_pretrained(_converted("mistral"), tmp_path, safe_serialization=False)


def test_packed_checkpoint_trains_from_dequantized_weights(tmp_path, caplog):
    model = _converted("mistral")
    model.save_pretrained(tmp_path)
    loaded = Mistral158ForCausalLM.from_pretrained(tmp_path)
    layer = loaded.model.layers[0].self_attn.v_proj
    packed_before = layer.packed_weight.clone()
    with caplog.at_level(logging.WARNING, logger="bitmat_hf"):
        loaded.train()
    assert "dequantized ternary weights" in caplog.text
    assert layer.weight is not None and layer.weight.requires_grad
    # The latent weight requantizes to exactly the loaded codes.
    packed, _ = layer.pack_weights()
    assert torch.equal(packed, packed_before)
    ids = input_ids()
    loaded(ids, labels=ids).loss.backward()
    assert layer.weight.grad is not None


def test_generic_model_train_materializes_too(tmp_path, caplog):
    model = _converted("qwen2")
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bitmat_hf"):
        loaded.train()
    assert "packed-only checkpoint" in caplog.text
    assert loaded.model.layers[0].mlp.up_proj.weight is not None


def test_float_checkpoint_through_158_class_converts_on_load(float_folder, arch):
    if arch not in CLS_158:
        pytest.skip("no 158 class")
    expected = logits(_converted(arch))
    loaded = CLS_158[arch].from_pretrained(float_folder)
    assert loaded.config.model_type == arch + "158"
    assert loaded.model.layers[0].self_attn.k_proj.weight is not None  # latent weights, ready for QAT
    assert torch.equal(logits(loaded), expected)


def test_quantize_while_loading(float_folder, arch):
    expected = logits(_converted(arch))
    loaded = AutoModelForCausalLM.from_pretrained(float_folder, quantization_config=BitMatConfig())
    layers = bitmat_hf.convert.bitlinear_modules(loaded)
    assert layers and all(m.weight is None for _, m in layers)  # float weights freed layer by layer
    assert torch.equal(logits(loaded), expected)
    kept = AutoModelForCausalLM.from_pretrained(
        float_folder, quantization_config=BitMatConfig(keep_latent_weights=True)
    )
    assert all(m.weight is not None for _, m in bitmat_hf.convert.bitlinear_modules(kept))
    assert torch.equal(logits(kept), expected)


def test_quantize_while_loading_then_save_and_reload(tmp_path, float_folder, arch):
    loaded = AutoModelForCausalLM.from_pretrained(float_folder, quantization_config=BitMatConfig())
    loaded.save_pretrained(tmp_path / "packed")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "packed")
    assert torch.equal(logits(again), logits(loaded))


def test_bitmat_alias_quick_start(tmp_path, float_folder, arch):
    """The original README's Quick Start, as written (with a local folder)."""
    if arch != "mistral":
        pytest.skip("one architecture is enough")
    from bitmat import convert_hf_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(float_folder))
    model = convert_hf_model(model)
    model.save_pretrained(str(tmp_path / "some_local_folder"))

    from bitmat import Mistral158ForCausalLM

    model = Mistral158ForCausalLM.from_pretrained(str(tmp_path / "some_local_folder"))
    model.eval()
    out = model(input_ids()).logits
    assert torch.isfinite(out).all()
    model.train()
    assert model.training

    from bitmat import BitLinear

    layer = BitLinear(in_features=1024, out_features=512, bias=True, eps=1e-5)
    assert layer(torch.randn(2, 1024)).shape == (2, 512)

    import bitmat

    for name in (
        "Llama158ForCausalLM",
        "Gemma158ForCausalLM",
        "Auto158ModelForCausalLM",
        "pack_ternary",
        "unpack_ternary",
    ):
        assert hasattr(bitmat, name)


def test_generate_after_reload(packed_folder):
    path, _ = packed_folder
    model = Mistral158ForCausalLM.from_pretrained(path)
    out = model.generate(input_ids(1, 4), max_new_tokens=5, do_sample=False)
    assert out.shape == (1, 9)


def test_deepcopy_and_dtype_moves(packed_folder):
    import copy

    path, ref = packed_folder
    model = Mistral158ForCausalLM.from_pretrained(path)
    clone = copy.deepcopy(model)
    assert torch.equal(logits(clone), ref)
    clone.to(torch.bfloat16)
    assert clone.model.layers[0].mlp.up_proj.weight_scale.dtype == torch.float32
    assert torch.isfinite(logits(clone).float()).all()
