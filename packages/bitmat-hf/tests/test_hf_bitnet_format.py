"""transformers' own "bitnet" checkpoints (microsoft/bitnet-b1.58-2B-4T format) on BitMat: packing, loading,
logits against stock transformers' BitNetForCausalLM, export back to the format, bad input.

Tiny checkpoints are built locally with transformers' own pack_weights (tests/_bitnet_testing.py). transformers'
bitnet layers decorate their unpacking and activation quantizer with @torch.compile; they run eagerly in this module
(torch.compiler.set_stance('force_eager')) (same numbers, no minutes of CPU compilation).
"""

import json

import bitmat_kernels as bk
import pytest
import torch
from _bitnet_testing import float_bitnet_model, hf_model, ids, make_bitnet_checkpoint, run
from _hf_testing import folder_digest, make_model
from bitmat_hf import (
    BitNetFormatError,
    convert_hf_model,
    export_bitnet,
    load_bitnet_checkpoint,
    read_bitnet_layout,
    save_pretrained,
)
from bitmat_hf.bitnet import pack_hf_bitnet, unpack_hf_bitnet
from bitmat_nn import BitLinear


@pytest.fixture(autouse=True)
def _eager_transformers():
    with torch.compiler.set_stance("force_eager"):
        yield


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("bitnet")
    out = {}
    for lc, tie in (("autobitlinear", True), ("bitlinear", False)):
        for dtype in (torch.float32, torch.bfloat16):
            name = f"{lc}-{'tied' if tie else 'untied'}-{str(dtype)[6:]}"
            # the "bitlinear" ones carry a 2B4T-style config.json (torch_dtype, rope_theta)
            out[lc, dtype] = make_bitnet_checkpoint(root / name, lc, dtype, tie=tie, legacy_config=not tie)
    return out


def _close_to_hf(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    # float32: the int8 x ternary sums are exact on both sides; what remains is float32 rounding of the scales
    # and of everything else (norms, attention), i.e. ~1e-7 of the logits' size.
    scale = theirs.abs().max().item()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=2e-6 * max(scale, 1.0))


# ------------------------------------------------------------------------------------------------ packing


def test_packing_matches_transformers():
    from transformers.integrations.bitnet import pack_weights, unpack_weights

    g = torch.Generator().manual_seed(0)
    for n, k in ((4, 1), (12, 7), (64, 33)):
        codes = torch.randint(-1, 2, (n, k), generator=g, dtype=torch.int8)
        ours = pack_hf_bitnet(codes)
        assert ours.dtype == torch.uint8 and ours.shape == (n // 4, k)
        assert torch.equal(ours, pack_weights(codes.float().clone()))
        assert torch.equal(unpack_hf_bitnet(ours), codes)
        assert torch.equal(unpack_weights(ours, dtype=torch.float32), codes.float())
    # Row i * (n/4) + r lives in bits 2i..2i+1 of packed row r, as code + 1.
    codes = torch.zeros(8, 1, dtype=torch.int8)
    codes[5, 0] = 1  # block i = 2, row r = 1
    assert pack_hf_bitnet(codes)[:, 0].tolist() == [0b01010101, 0b01100101]
    with pytest.raises(BitNetFormatError, match="multiple of 4"):
        pack_hf_bitnet(torch.zeros(6, 3, dtype=torch.int8))
    with pytest.raises(BitNetFormatError, match="value 3"):
        unpack_hf_bitnet(torch.full((1, 2), 0xFF, dtype=torch.uint8))
    with pytest.raises(BitNetFormatError, match="uint8"):
        unpack_hf_bitnet(torch.zeros(2, 2, dtype=torch.int8))


# ------------------------------------------------------------------------------------------------ loading


@pytest.mark.parametrize("linear_class", ["autobitlinear", "bitlinear"])
def test_logits_match_transformers_float32(checkpoints, linear_class):
    folder = checkpoints[linear_class, torch.float32]
    theirs = hf_model(folder)
    ours = load_bitnet_checkpoint(folder, show_progress=False)
    assert type(ours) is type(theirs)  # transformers' own architecture class: subln, relu2, GQA, RoPE
    quantized = [n for n, m in ours.named_modules() if isinstance(m, BitLinear)]
    assert len(quantized) == 14 and all(ours.get_submodule(n).weight is None for n in quantized)
    assert (ours.lm_head.weight is ours.model.embed_tokens.weight) == (linear_class == "autobitlinear")
    assert ours.config.quantization_config.quant_method == "bitmat"
    _close_to_hf(run(ours), run(theirs))
    # Greedy decoding with the KV cache gives the same tokens.
    prompt = ids(1, 5)
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        assert torch.equal(ours.generate(prompt, **kw), theirs.generate(prompt, **kw))


@pytest.mark.parametrize("linear_class", ["autobitlinear", "bitlinear"])
def test_logits_bf16_within_transformers_own_rounding(checkpoints, linear_class):
    """In bf16 transformers rounds where BitMat does not: its BitLinear quantizes activations and sums in bf16,
    its AutoBitLinear feeds bf16-rounded x_q / s to a float matmul; BitMat sums int8 x ternary exactly (int32) and
    scales in float32. Both are compared with the float32 logits of the same checkpoint (same numbers, stored in
    float32): BitMat's error is of the size of transformers' own bf16 error, and the two differ by no more."""
    ref = run(hf_model(checkpoints[linear_class, torch.float32]))
    folder = checkpoints[linear_class, torch.bfloat16]
    theirs = run(hf_model(folder))
    model = load_bitnet_checkpoint(folder, show_progress=False)
    assert model.dtype == torch.bfloat16  # the config's dtype
    ours = run(model)
    err_theirs = (theirs - ref).abs().max().item()
    err_ours = (ours - ref).abs().max().item()
    assert 0 < err_theirs < 0.01 * ref.abs().max().item()
    assert err_ours <= 1.5 * err_theirs
    assert (ours - theirs).abs().max().item() <= 2.5 * err_theirs
    assert (ours.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.9


def test_read_layout_and_save_as_bitmat(checkpoints, tmp_path):
    from transformers import AutoModelForCausalLM

    folder = checkpoints["bitlinear", torch.float32]
    layout = read_bitnet_layout(folder)
    assert layout.linear_class == "bitlinear" and layout.scale_is_reciprocal
    assert layout.full_precision_linears == ["lm_head"] and layout.tied_linears == []
    down = layout.layers["model.layers.0.mlp.down_proj"]
    assert (down.out_features, down.in_features, down.weight.shape) == (64, 128, (16, 128))
    model = load_bitnet_checkpoint(folder, show_progress=False)
    # The scale is BitMat's multiplicative float32 one: 1 / the stored "bitlinear" scale.
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        stored = f.get_tensor("model.layers.0.mlp.down_proj.weight_scale")
        packed = f.get_tensor("model.layers.0.mlp.down_proj.weight")
    layer = model.model.layers[0].mlp.down_proj
    torch.testing.assert_close(layer.weight_scale, 1 / stored.float())
    assert torch.equal(bk.unpack_ternary(layer.packed_weight, 128), unpack_hf_bitnet(packed))
    save_pretrained(model, tmp_path / "bitmat")
    cfg = json.loads((tmp_path / "bitmat" / "config.json").read_text())
    assert cfg["model_type"] == "bitnet" and cfg["quantization_config"]["quant_method"] == "bitmat"
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "bitmat")
    assert torch.equal(run(again), run(model))


# ------------------------------------------------------------------------------------------------ export


@pytest.mark.parametrize("linear_class", ["autobitlinear", "bitlinear"])
def test_export_loads_in_stock_transformers(checkpoints, tmp_path, linear_class):
    source = checkpoints["autobitlinear", torch.float32]
    model = load_bitnet_checkpoint(source, show_progress=False)
    out = export_bitnet(model, tmp_path / "exported", linear_class=linear_class)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"]["quant_method"] == "bitnet"
    assert cfg["quantization_config"]["linear_class"] == linear_class
    theirs = hf_model(out)
    cls = "AutoBitLinear" if linear_class == "autobitlinear" else "BitLinear"
    assert type(theirs.model.layers[1].mlp.up_proj).__name__ == cls
    _close_to_hf(run(model), run(theirs))
    # Read back by BitMat: the same codes and scales.
    back = load_bitnet_checkpoint(out, show_progress=False)
    for name, m in model.named_modules():
        if isinstance(m, BitLinear):
            assert torch.equal(back.get_submodule(name).packed_weight, m.packed_weight)
            torch.testing.assert_close(back.get_submodule(name).weight_scale, m.weight_scale)


@pytest.mark.parametrize("arch", ["bitnet", "llama"])
def test_export_converted_float_model(tmp_path, arch):
    """A float model converted by BitMat (latent weights) is written in the bitnet format; a 158 class is written
    as its base architecture, so stock transformers builds it with its bitnet layers."""
    float_model = float_bitnet_model() if arch == "bitnet" else make_model("llama")
    model = convert_hf_model(float_model, show_progress=False).eval()
    out = export_bitnet(model, tmp_path / arch)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == arch
    theirs = hf_model(out)
    assert type(theirs).__name__ == ("BitNetForCausalLM" if arch == "bitnet" else "LlamaForCausalLM")
    input_ids = ids() % model.config.vocab_size
    _close_to_hf(run(model, input_ids), run(theirs, input_ids))


def test_export_refuses_what_bitnet_cannot_hold(tmp_path):
    model = convert_hf_model(make_model("llama"), per_channel=True, show_progress=False)
    with pytest.raises(BitNetFormatError, match="per_channel=True"):
        export_bitnet(model, tmp_path / "a")
    model = convert_hf_model(make_model("llama"), weight_bits=1, show_progress=False)
    with pytest.raises(BitNetFormatError, match="weight_bits=1"):
        export_bitnet(model, tmp_path / "b")
    model = convert_hf_model(make_model("llama"), show_progress=False)
    with pytest.raises(ValueError, match="linear_class"):
        export_bitnet(model, tmp_path / "c", linear_class="fast")
    with pytest.raises(TypeError, match="PreTrainedModel"):
        export_bitnet(torch.nn.Linear(4, 4), tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        export_bitnet(model, tmp_path / "e")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ------------------------------------------------------------------------------------------------ bad input


def _tamper_tensors(folder, edit):
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _tamper_config(folder, edit):
    cfg = json.loads((folder / "config.json").read_text())
    edit(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


Q = "model.layers.0.self_attn.q_proj"
BAD = {
    "scale shape": (lambda s: s.__setitem__(Q + ".weight_scale", torch.ones(2)), None, "shape \\[1\\]"),
    "scale per row": (lambda s: s.__setitem__(Q + ".weight_scale", torch.ones(64, 1)), None, "got F32 \\[64, 1\\]"),
    "scale dtype": (lambda s: s.__setitem__(Q + ".weight_scale", torch.ones(1, dtype=torch.int32)), None, "I32"),
    "weight dtype": (lambda s: s.__setitem__(Q + ".weight", s[Q + ".weight"].to(torch.int8)), None, "got I8"),
    "BitMat layout": (
        lambda s: s.__setitem__(Q + ".weight", torch.zeros(64, 16, dtype=torch.uint8)),
        None,
        "uint8 \\[16, 64\\].*got U8 \\[64, 16\\]",
    ),
    "transposed": (lambda s: s.__setitem__(Q + ".weight", s[Q + ".weight"].T.contiguous()), None, "\\[16, 64\\]"),
    "missing scale": (lambda s: s.pop(Q + ".weight_scale"), None, "weight_scale' is missing"),
    "missing norm": (lambda s: s.pop("model.norm.weight"), None, "'model.norm.weight' is missing"),
    "unexpected": (lambda s: s.__setitem__("model.extra", torch.ones(1)), None, "unexpected tensor 'model.extra'"),
    "code 3": (lambda s: s[Q + ".weight"].__setitem__((0, 0), 0xFF), None, "value 3"),
    "zero scale": (lambda s: s[Q + ".weight_scale"].zero_(), None, "positive finite"),
    "linear class": (None, lambda c: c["quantization_config"].update(linear_class="fast"), "linear_class"),
    "online": (None, lambda c: c["quantization_config"].update(quantization_mode="online"), "offline"),
    "rms norm": (None, lambda c: c["quantization_config"].update(use_rms_norm=True), "use_rms_norm"),
    "not bitnet": (None, lambda c: c.pop("quantization_config"), "quant_method 'bitnet'"),
    "architecture": (None, lambda c: c.update(hidden_size=32, intermediate_size=96), "packed uint8 \\[8, 32\\]"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_checkpoints_raise_clear_errors(tmp_path, case):
    edit_tensors, edit_config, message = BAD[case]
    folder = make_bitnet_checkpoint(tmp_path / "ck", "autobitlinear", tie=True)
    if edit_tensors:
        _tamper_tensors(folder, edit_tensors)
    if edit_config:
        _tamper_config(folder, edit_config)
    before = folder_digest(folder)
    with pytest.raises(BitNetFormatError, match=message):
        load_bitnet_checkpoint(folder, show_progress=False)
    assert folder_digest(folder) == before
