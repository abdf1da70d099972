"""Fast generation (static cache + CUDA graphs) on the CPU: the same tokens as the dynamic-cache eager path."""

import bitmat_hf
import bitmat_nn
import pytest
import torch
from _hf_testing import VOCAB, input_ids, make_model
from bitmat_hf.generation import GraphGreedyDecoder, _pad_after_eos, _regional_targets, prepare_for_fast_generation


def _mistral158(seed: int = 0):
    model = bitmat_hf.convert_hf_model(make_model("mistral", seed=seed), show_progress=False)
    model.eval()
    # No early stop: every path generates exactly max_new_tokens tokens.
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def _eager_dynamic(model, ids, n):
    with torch.no_grad():
        return model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False, cache_implementation="dynamic"
        )


def test_hf_generation_static_generate_matches_dynamic_eager():
    model = _mistral158()
    assert isinstance(model, bitmat_hf.Mistral158ForCausalLM)
    ids = input_ids(batch=2, length=7)
    ref = _eager_dynamic(model, ids, 10)  # latent weights, dynamic cache, eager
    out = prepare_for_fast_generation(model, max_batch_size=2, max_cache_len=32)
    assert out is model
    layers = bitmat_hf.convert.bitlinear_modules(model)
    assert layers and all(m.weight is None for _, m in layers)  # packed only
    gc = model.generation_config
    assert gc.cache_implementation == "static" and gc.max_cache_len == 32
    assert gc.compile_config is None  # nothing to compile on the CPU
    assert model._bitmat_fast_generation["dropped_latent_layers"] == len(layers)
    # q/k/v and gate/up share one matmul in every layer; tokens below are still exactly the unfused model's
    assert model._bitmat_fast_generation["fused_projection_groups"] == 2 * len(model.model.layers)
    assert isinstance(model.model.layers[0].self_attn.bitmat_fused_q_k_v, bitmat_nn.FusedBitLinear)
    # both norms and the MLP of every layer quantize for their projections (on the Triton path; the CPU keeps
    # the original modules' computation)
    assert model._bitmat_fast_generation["fused_norms"] == 2 * len(model.model.layers)
    assert model._bitmat_fast_generation["fused_gated_mlps"] == len(model.model.layers)
    assert isinstance(model.model.layers[0].input_layernorm, bitmat_nn.fuse.QuantizingNorm)
    assert isinstance(model.model.layers[0].mlp, bitmat_nn.fuse.QuantizingGatedMLP)
    with torch.no_grad():
        got = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False)
        again = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False)
    assert got.shape == (2, 17)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    torch.testing.assert_close(again, ref, rtol=0, atol=0)
    assert not model.training  # generate did not bring latent weights back


def test_hf_generation_fused_quantization_matches_on_the_triton_path():
    """MistralRMSNorm and MistralMLP's SiLU * up fused with the A8 quantization (Triton interpreter): the logits
    of the unfused model."""
    import bitmat_kernels as bk

    model = _mistral158()
    ids = input_ids(batch=1, length=5)
    with bk.use_backend("triton"), torch.no_grad():
        bitmat_hf.pack_and_drop_latent(model, show_progress=False)
        ref = model(ids).logits
        assert bitmat_nn.fuse_projections(model) == 2 * len(model.model.layers)
        ref_fused = model(ids).logits
        assert bitmat_nn.fuse_norms(model) == 2 * len(model.model.layers)
        assert bitmat_nn.fuse_gated_mlps(model) == len(model.model.layers)
        out = model(ids).logits
    torch.testing.assert_close(ref_fused, ref, rtol=2e-4, atol=2e-4)
    torch.testing.assert_close(out, ref, rtol=2e-4, atol=2e-4)


def test_hf_generation_graph_decoder_matches_generate():
    model = _mistral158(seed=3)
    ids = input_ids(batch=3, length=5, seed=4)
    ref = _eager_dynamic(model, ids, 9)
    prepare_for_fast_generation(model)
    dec = GraphGreedyDecoder(model, max_cache_len=20)
    assert dec.compile == "none" and not dec.cuda_graph  # the CPU runs the loop eagerly
    got = dec.generate(ids, max_new_tokens=9)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    assert dec.stats["method"] == "eager-cpu" and dec.stats["decode_steps"] == 8
    assert dec.stats["prefill_s"] > 0 and dec.stats["decode_s"] > 0
    # The same decoder again (cache reused), and with another batch size (cache rebuilt).
    torch.testing.assert_close(dec.generate(ids, max_new_tokens=9), ref, rtol=0, atol=0)
    one = dec.generate(ids[:1], max_new_tokens=4)
    torch.testing.assert_close(one, ref[:1, : 5 + 4], rtol=0, atol=0)


def test_hf_generation_graph_decoder_regional_compile_eager_backend():
    model = _mistral158(seed=5)
    ids = input_ids(batch=1, length=6, seed=6)
    ref = _eager_dynamic(model, ids, 5)
    prepare_for_fast_generation(model)
    targets = _regional_targets(model)
    names = {type(m).__name__ for m in targets}
    assert any(n.endswith("RMSNorm") for n in names) and any(n.endswith("MLP") for n in names)
    dec = GraphGreedyDecoder(model, max_cache_len=16, compile="regional", compile_backend="eager")
    torch.testing.assert_close(dec.generate(ids, max_new_tokens=5), ref, rtol=0, atol=0)
    dec.close()
    assert all(m._compiled_call_impl is None for m in targets)


def test_hf_generation_bf16_baseline_same_setup():
    """A plain (unconverted) model takes the same setup: the bf16 baseline of the benchmark."""
    model = make_model("llama", seed=2).to(torch.bfloat16)
    model.generation_config.eos_token_id = None
    ids = input_ids(batch=2, length=4)
    ref = _eager_dynamic(model, ids, 6)
    prepare_for_fast_generation(model, max_cache_len=16)
    assert model._bitmat_fast_generation["dropped_latent_layers"] == 0
    with torch.no_grad():
        got = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    dec = GraphGreedyDecoder(model, max_cache_len=16)
    torch.testing.assert_close(dec.generate(ids, max_new_tokens=6), ref, rtol=0, atol=0)


def test_hf_generation_pad_after_eos():
    out = torch.tensor([[5, 2, 7, 8], [5, 6, 7, 8], [2, 2, 9, 3]])
    got = _pad_after_eos(out, 2, 0)
    assert got.tolist() == [[5, 2, 0, 0], [5, 6, 7, 8], [2, 0, 0, 0]]
    assert _pad_after_eos(out, [7, 9], None).tolist() == [[5, 2, 7, 7], [5, 6, 7, 7], [2, 2, 9, 7]]


def test_hf_generation_bad_input():
    model = _mistral158()
    with pytest.raises(TypeError, match="argument 'model'"):
        prepare_for_fast_generation(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="max_cache_len"):
        prepare_for_fast_generation(model, max_cache_len=0)
    with pytest.raises(ValueError, match="warmup=True"):
        prepare_for_fast_generation(model, warmup=True)
    with pytest.raises(ValueError, match="compile"):
        GraphGreedyDecoder(model, max_cache_len=8, compile="fast")
    dec = GraphGreedyDecoder(model, max_cache_len=8)
    with pytest.raises(ValueError, match="exceeds the decoder's max_cache_len 8"):
        dec.generate(input_ids(1, 5), max_new_tokens=4)
    with pytest.raises(ValueError, match="padded prompts"):
        ids = input_ids(2, 3)
        dec.generate(ids, max_new_tokens=2, attention_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match="input_ids"):
        dec.generate(torch.zeros(3, dtype=torch.long), max_new_tokens=2)
    assert VOCAB > 3


def test_hf_generation_cache_keyword_follows_the_forward_signature():
    from bitmat_hf.generation import cache_kwargs

    class New(torch.nn.Module):
        def forward(self, input_ids=None, cache=None, **kwargs): ...

    class Old(torch.nn.Module):
        def forward(self, input_ids=None, past_key_values=None, **kwargs): ...

    assert cache_kwargs(New(), 1) == {"cache": 1}
    assert cache_kwargs(Old(), 1) == {"past_key_values": 1}


def test_hf_generation_compile_kwargs_pdl():
    """Inductor's programmatic dependent launch: off where the device cannot run it, and a compile mode becomes
    options when it is on (torch.compile takes one or the other)."""
    from unittest import mock

    from bitmat_hf import generation

    cpu = torch.device("cpu")
    assert not generation.inductor_pdl_supported(cpu)
    assert generation.compile_kwargs(cpu, "reduce-overhead", None) == {"mode": "reduce-overhead"}
    assert generation.compile_kwargs(cpu, None, False) == {"mode": None}
    with pytest.raises(ValueError, match="pdl=True needs"):
        generation.compile_kwargs(cpu, "reduce-overhead", True)
    with mock.patch.object(generation, "inductor_pdl_supported", lambda device: True):
        kw = generation.compile_kwargs(cpu, "reduce-overhead", None)
        assert kw == {"mode": None, "options": {"triton.cudagraphs": True, "triton.enable_pdl": True}}
        assert generation.compile_kwargs(cpu, None, None) == {"mode": None, "options": {"triton.enable_pdl": True}}
        assert generation.compile_kwargs(cpu, "reduce-overhead", False) == {"mode": "reduce-overhead"}
        torch.compile(lambda t: t + 1, **kw)  # torch accepts the combination
