"""Every bad input gives a clear error, and leaves the files (and any model) untouched."""

import json
import struct

import bitmat_hf
import pytest
import torch
from _hf_testing import folder_digest, logits, make_model
from bitmat_hf import (
    Auto158ModelForCausalLM,
    BitMatArchitectureError,
    BitMatCheckpointError,
    BitMatConfigError,
    Llama158ForCausalLM,
    Mistral158ForCausalLM,
    convert_hf_model,
)
from transformers import AutoModelForCausalLM

LOADERS = {
    "158": Mistral158ForCausalLM.from_pretrained,
    "auto": AutoModelForCausalLM.from_pretrained,
    "auto158": Auto158ModelForCausalLM.from_pretrained,
}


def _rewrite(path, edit_header=None, edit_meta=None):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    if edit_meta:
        edit_meta(header["__metadata__"])
    if edit_header:
        edit_header(header)
    new = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])


def _expect_error(folder, exc, match, loaders=LOADERS):
    before = folder_digest(folder)
    for name, load in loaders.items():
        with pytest.raises(exc, match=match):
            load(folder)
        assert folder_digest(folder) == before, name


def test_missing_weights_file(packed_folder):
    path, _ = packed_folder
    (path / "model.safetensors").unlink()
    _expect_error(path, BitMatCheckpointError, "missing file")


def test_missing_config(packed_folder):
    path, _ = packed_folder
    (path / "config.json").unlink()
    with pytest.raises((OSError, ValueError)):
        Mistral158ForCausalLM.from_pretrained(path)
    with pytest.raises(BitMatCheckpointError, match="config.json"):
        bitmat_hf.inspect_checkpoint(path)


def test_truncated_file(packed_folder):
    path, _ = packed_folder
    f = path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    _expect_error(path, BitMatCheckpointError, "truncated")


def test_truncated_header(packed_folder):
    path, _ = packed_folder
    f = path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:50])
    _expect_error(path, BitMatCheckpointError, "truncated|corrupt")


def test_tampered_header_inconsistent_dtype(packed_folder):
    path, _ = packed_folder

    def edit(h):
        h["model.layers.0.self_attn.q_proj.packed_weight"]["dtype"] = "F16"

    _rewrite(path / "model.safetensors", edit_header=edit)
    _expect_error(path, BitMatCheckpointError, "tampered")


def test_tampered_header_not_json(packed_folder):
    path, _ = packed_folder
    f = path / "model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[8] = ord("#")
    f.write_bytes(bytes(raw))
    _expect_error(path, BitMatCheckpointError, "not valid JSON")


def test_shape_mismatch(packed_folder):
    path, _ = packed_folder

    def edit(h):
        h["model.layers.0.self_attn.q_proj.packed_weight"]["shape"] = [16, 16]  # same bytes, wrong shape

    _rewrite(path / "model.safetensors", edit_header=edit)
    _expect_error(path, BitMatCheckpointError, r"shape \(16, 16\).*expects \(32, 8\)")


def test_dtype_mismatch(tmp_path):
    from safetensors.torch import load_file, save_file

    model = convert_hf_model(make_model("mistral"), show_progress=False)
    model.save_pretrained(tmp_path)
    f = tmp_path / "model.safetensors"
    from safetensors import safe_open

    with safe_open(f, "pt") as h:
        meta = h.metadata()
    tensors = load_file(f)
    key = "model.layers.1.mlp.up_proj.weight_scale"
    tensors[key] = tensors[key].half()
    save_file(tensors, f, metadata=meta)
    _expect_error(tmp_path, BitMatCheckpointError, "dtype float16 but the model expects float32")


def test_packed_weights_missing(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    model = convert_hf_model(make_model("mistral"), show_progress=False)
    model.save_pretrained(tmp_path)
    f = tmp_path / "model.safetensors"
    with safe_open(f, "pt") as h:
        meta = h.metadata()
    tensors = load_file(f)
    del tensors["model.layers.1.mlp.up_proj.packed_weight"]
    save_file(tensors, f, metadata=meta)
    _expect_error(tmp_path, BitMatCheckpointError, "no tensor 'model.layers.1.mlp.up_proj.packed_weight'")


def test_future_format_version_in_config(packed_folder):
    path, _ = packed_folder
    cfg = json.loads((path / "config.json").read_text())
    cfg["quantization_config"]["format_version"] = 2
    (path / "config.json").write_text(json.dumps(cfg))
    _expect_error(path, BitMatConfigError, "version 2 is not supported.*newer BitMat")


def test_future_format_version_in_file(packed_folder):
    path, _ = packed_folder

    def edit(meta):
        meta["bitmat_format_version"] = "7"

    _rewrite(path / "model.safetensors", edit_meta=edit)
    _expect_error(path, BitMatCheckpointError, "version 7 is not supported")


def test_metadata_missing(packed_folder):
    path, _ = packed_folder

    def edit(meta):
        del meta["bitmat_format_version"]

    _rewrite(path / "model.safetensors", edit_meta=edit)
    _expect_error(path, BitMatCheckpointError, "carries no 'bitmat_format_version'")


def test_pickle_only_folder(tmp_path):
    model = convert_hf_model(make_model("mistral"), show_progress=False)
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(BitMatCheckpointError, match="safetensors only"):
        Mistral158ForCausalLM.from_pretrained(tmp_path)


def test_unknown_architecture_for_158_class(tmp_path):
    model = convert_hf_model(make_model("qwen2"), show_progress=False)
    model.save_pretrained(tmp_path)
    before = folder_digest(tmp_path)
    with pytest.raises(BitMatArchitectureError, match="'qwen2' model"):
        Mistral158ForCausalLM.from_pretrained(tmp_path)
    with pytest.raises(BitMatArchitectureError, match="'qwen2' model"):
        Llama158ForCausalLM.from_pretrained(tmp_path)
    assert folder_digest(tmp_path) == before


def test_auto158_refuses_unknown_float_architecture(tmp_path):
    make_model("qwen2").save_pretrained(tmp_path)
    with pytest.raises(BitMatArchitectureError, match="no 158 class for model_type 'qwen2'"):
        Auto158ModelForCausalLM.from_pretrained(tmp_path)


def test_158_class_refuses_other_quantization(tmp_path):
    make_model("mistral").save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "bitnet"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BitMatArchitectureError, match="quantized with 'bitnet'"):
        Mistral158ForCausalLM.from_pretrained(tmp_path)


def test_cannot_save_latent_of_packed_only_model(packed_folder, tmp_path):
    path, ref = packed_folder
    model = Mistral158ForCausalLM.from_pretrained(path)
    with pytest.raises(BitMatCheckpointError, match="cannot save latent weights"):
        model.save_pretrained(tmp_path / "x", keep_latent_weights=True)
    assert torch.equal(logits(model), ref)


def test_generic_architecture_checked_by_the_quantizer(tmp_path):
    """Qwen2 has no 158 class: AutoModelForCausalLM's quantizer path checks the files itself."""
    model = convert_hf_model(make_model("qwen2"), show_progress=False)
    model.save_pretrained(tmp_path)

    def edit(h):
        h["model.layers.1.self_attn.k_proj.packed_weight"]["shape"] = [8, 16]

    _rewrite(tmp_path / "model.safetensors", edit_header=edit)
    _expect_error(tmp_path, BitMatCheckpointError, "expects", {"auto": AutoModelForCausalLM.from_pretrained})
    f = tmp_path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    _expect_error(tmp_path, BitMatCheckpointError, "truncated", {"auto": AutoModelForCausalLM.from_pretrained})
