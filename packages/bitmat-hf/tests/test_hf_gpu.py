"""bitmat-hf on a CUDA device (skipped without one): a converted model runs the Triton kernels, agrees
with the CPU reference path, and generates the same greedy tokens through every generation path."""

import bitmat_hf
import pytest
import torch
from _hf_testing import input_ids, make_model
from bitmat_hf.generation import GraphGreedyDecoder, prepare_for_fast_generation

pytestmark = pytest.mark.gpu


def _converted(seed=0):
    model = bitmat_hf.convert_hf_model(make_model("mistral", seed=seed), show_progress=False).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def test_converted_model_on_gpu_matches_the_cpu_reference():
    model = _converted()
    ids = input_ids(batch=2, length=9)
    with torch.no_grad():
        cpu = model(ids).logits
        gpu = model.cuda()(ids.cuda()).logits.cpu()
    # fp32 model, A8: integer sums are exact on both paths; only fp32 rounding differs
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)


def test_generation_paths_agree_on_gpu():
    model = _converted(seed=1).cuda()
    ids = input_ids(batch=2, length=6, seed=2).cuda()
    with torch.no_grad():
        ref = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False, cache_implementation="dynamic"
        )
    prepare_for_fast_generation(model, max_batch_size=2, max_cache_len=32, compile=False)
    with torch.no_grad():
        static = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    torch.testing.assert_close(static, ref, rtol=0, atol=0)
    decoder = GraphGreedyDecoder(model, max_cache_len=32, compile="none")
    graphed = decoder.generate(ids, max_new_tokens=8)
    torch.testing.assert_close(graphed, ref, rtol=0, atol=0)
    assert decoder.stats["method"] != "eager-cpu"
