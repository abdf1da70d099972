"""accelerate: device maps plan with packed sizes; loading and generation with a device map (CPU only here)."""

import pytest
import torch
from _hf_testing import input_ids, logits
from bitmat_hf import Mistral158ForCausalLM
from transformers import AutoModelForCausalLM


def test_device_map_auto_loads_and_generates(packed_folder):
    path, ref = packed_folder
    model = AutoModelForCausalLM.from_pretrained(path, device_map="auto")
    first = model.get_input_embeddings().weight.device  # a GPU where there is one: inputs go there
    got = logits(model, input_ids().to(first)).cpu()
    if first.type == "cpu":
        assert torch.equal(got, ref)
    else:  # the Triton kernels against the CPU reference: same integer sums, other float rounding
        torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-3)
    out = model.generate(input_ids(1, 4).to(first), max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 8)


def test_memory_planning_sees_packed_sizes(packed_folder):
    """The skeleton transformers plans with holds the real packed buffers: 2 bits per weight, not 16 or 32."""
    from accelerate import init_empty_weights
    from bitmat_hf import BitMatConfig, BitMatHfQuantizer
    from transformers.integrations.accelerate import compute_module_sizes

    path, _ = packed_folder
    config = Mistral158ForCausalLM.config_class.from_pretrained(path)
    with init_empty_weights():
        model = Mistral158ForCausalLM(config)
    quantizer = BitMatHfQuantizer(BitMatConfig.coerce(config.quantization_config), pre_quantized=True)
    quantizer.preprocess_model(model)
    sizes, _ = compute_module_sizes(model, quantizer)
    n, k = 64, 32  # up_proj
    assert sizes["model.layers.0.mlp.up_proj"] == n * (k // 4) + 4  # packed bytes + one float32 scale
    assert sizes["model.layers.0.mlp.up_proj"] * 15 < n * k * 4  # vs. the float32 original


def test_explicit_device_map_with_offload(packed_folder, tmp_path):
    path, ref = packed_folder
    device_map = {
        "model.embed_tokens": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "disk",
        "model.norm": "cpu",
        "model.rotary_emb": "cpu",
        "lm_head": "cpu",
    }
    model = AutoModelForCausalLM.from_pretrained(path, device_map=device_map, offload_folder=str(tmp_path / "off"))
    assert torch.allclose(logits(model), ref)
    out = model.generate(input_ids(1, 4), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 7)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_device_map_across_two_gpus(packed_folder):
    """A packed model split over two GPUs (layer 0 on the first, the rest on the second): accelerate's hooks move
    the hidden states, each GPU runs its own Triton kernels; the logits match the CPU reference and generate runs.
    (Planning "auto" maps from packed sizes is test_device_map_over_two_devices_plans_packed_sizes.)"""
    path, ref = packed_folder
    device_map = {
        "model.embed_tokens": 0,
        "model.layers.0": 0,
        "model.layers.1": 1,
        "model.norm": 1,
        "model.rotary_emb": 1,
        "lm_head": 1,
    }
    model = AutoModelForCausalLM.from_pretrained(path, device_map=device_map)
    layers = model.model.layers
    assert layers[0].mlp.up_proj.packed_weight.device == torch.device("cuda", 0)
    assert layers[1].mlp.up_proj.packed_weight.device == torch.device("cuda", 1)
    got = logits(model, input_ids().to("cuda:0")).cpu()
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-3)
    out = model.generate(input_ids(1, 4).to("cuda:0"), max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 8)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_device_map_auto_spreads_over_two_gpus(packed_folder):
    """device_map="auto" with a per-GPU budget that holds about half the model at packed size: transformers plans
    from the quantizer's packed sizes, places decoder layers on both GPUs, and the split model matches the CPU
    reference and generates."""
    from accelerate import init_empty_weights
    from bitmat_hf import BitMatConfig, BitMatHfQuantizer
    from transformers.integrations.accelerate import compute_module_sizes

    path, ref = packed_folder
    config = Mistral158ForCausalLM.config_class.from_pretrained(path)
    with init_empty_weights():
        skeleton = Mistral158ForCausalLM(config)
    quantizer = BitMatHfQuantizer(BitMatConfig.coerce(config.quantization_config), pre_quantized=True)
    quantizer.preprocess_model(skeleton)
    sizes, _ = compute_module_sizes(skeleton, quantizer)
    layer, embed = sizes["model.layers.0"], sizes["model.embed_tokens"]
    tail = sizes["lm_head"] + sizes["model.norm"]
    reserve = max(embed, tail, layer)  # the planner keeps room on GPU 0 for the largest offloadable module
    max_memory = {0: embed + reserve + layer + layer // 2, 1: layer + tail + reserve + layer // 2, "cpu": 10**9}
    model = AutoModelForCausalLM.from_pretrained(path, device_map="auto", max_memory=max_memory)
    placed = {name: str(dev) for name, dev in model.hf_device_map.items()}
    assert set(placed.values()) == {"0", "1"}, placed
    assert model.model.layers[0].mlp.up_proj.packed_weight.device == torch.device("cuda", 0), placed
    assert model.model.layers[-1].mlp.up_proj.packed_weight.device == torch.device("cuda", 1), placed
    got = logits(model, input_ids().to("cuda:0")).cpu()
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-3)
    out = model.generate(input_ids(1, 4).to("cuda:0"), max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 8)
