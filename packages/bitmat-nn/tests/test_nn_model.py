"""The small BitNet LM: quantization-aware training works for every block type, cached generation
equals the full forward, eval (packed) equals training (fake-quant), state_dict and bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from bitmat_nn import BitLinear, BitNetCache, BitNetConfig, BitNetForCausalLM

LAYER_MIXES = {
    "attention": ["attention", "attention"],
    "mamba": ["mamba", "mamba"],
    "moe": ["moe", "moe"],
    "hybrid": ["mamba_moe", "attention"],
}


def _config(layers, **kw):
    base = dict(
        vocab_size=32, hidden_size=32, intermediate_size=64, num_layers=len(layers), num_heads=4, num_kv_heads=2,
        layer_types=layers, mamba_d_state=8, num_experts=4, num_experts_per_token=2, mamba_chunk_size=8,
    )  # fmt: skip
    base.update(kw)
    return BitNetConfig(**base)


def _model(layers, seed=0, **kw):
    torch.manual_seed(seed)
    return BitNetForCausalLM(_config(layers, **kw))


STEPS = 40


def _successor_batch(gen, batch=8, length=16, vocab=32):
    """Sequences that count upwards mod vocab from a random start: the next token is learnable."""
    start = torch.randint(0, vocab, (batch, 1), generator=gen)
    return (start + torch.arange(length)) % vocab


@pytest.fixture
def one_thread():
    """Small CPU training steps run fastest (and steadiest on a shared machine) on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("mix", sorted(LAYER_MIXES))
def test_quantization_aware_training_lowers_the_loss(mix, one_thread):
    model = _model(LAYER_MIXES[mix])
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    eval_batch = _successor_batch(torch.Generator().manual_seed(123))
    with torch.no_grad():
        start = model(eval_batch, labels=eval_batch).loss.item()
    for _ in range(STEPS):
        batch = _successor_batch(gen)
        loss = model(batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        end = model(eval_batch, labels=eval_batch).loss.item()
    assert end < 0.2 * start, (start, end)
    # the packed (eval) model and the fake-quant (train) model agree after training
    with torch.no_grad():
        packed_logits = model(eval_batch).logits
        train_logits = model.train()(eval_batch).logits
    # (a one-ulp difference can move an activation across a rounding boundary, which later layers
    # amplify: compare the whole tensor and the predictions rather than every element)
    assert (packed_logits - train_logits).norm() < 1e-2 * train_logits.norm()
    assert (packed_logits.argmax(-1) == train_logits.argmax(-1)).float().mean() > 0.97


@pytest.mark.parametrize("mix", sorted(LAYER_MIXES))
def test_cached_generation_equals_full_forward(mix):
    model = _model(LAYER_MIXES[mix]).eval()
    prompt = torch.randint(0, 32, (2, 5), generator=torch.Generator().manual_seed(1))
    generated = model.generate(prompt, 6)
    assert generated.shape == (2, 11) and torch.equal(generated[:, :5], prompt)
    # the same tokens by full forwards without a cache
    seq = prompt
    with torch.no_grad():
        for _ in range(6):
            seq = torch.cat((seq, model(seq).logits[:, -1].argmax(-1, keepdim=True)), 1)
    assert torch.equal(generated, seq)
    # and the cached logits equal the full-forward logits position by position
    with torch.no_grad():
        full = model(generated).logits
        cache = BitNetCache()
        steps = [model(generated[:, :5], cache=cache).logits]
        steps += [model(generated[:, i : i + 1], cache=cache).logits for i in range(5, 11)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mix", ["attention", "hybrid"])
def test_left_padded_generation_equals_unpadded(mix):
    model = _model(LAYER_MIXES[mix]).eval()
    short = torch.tensor([[3, 4, 5]])
    long = torch.tensor([[7, 8, 9, 10, 11]])
    batch = torch.cat((torch.cat((torch.zeros(1, 2, dtype=torch.long), short), 1), long))
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    out = model.generate(batch, 4, attention_mask=mask)
    assert torch.equal(out[0, 2:], model.generate(short, 4)[0])
    assert torch.equal(out[1], model.generate(long, 4)[0])


def test_tied_and_untied_embeddings_and_state_dict_round_trip():
    tied = _model(["attention"])
    assert tied.lm_head.weight is tied.embed_tokens.weight
    untied = _model(["attention"], tie_word_embeddings=False)
    assert untied.lm_head.weight is not untied.embed_tokens.weight
    assert type(tied.lm_head) is torch.nn.Linear and not isinstance(tied.lm_head, BitLinear)
    ids = torch.randint(0, 32, (2, 7))
    tied.eval()
    expected = tied(ids).logits
    clone = _model(["attention"], seed=9).eval()
    clone.load_state_dict(tied.state_dict())
    torch.testing.assert_close(clone(ids).logits, expected)
    # inference-only: drop latent weights, save, load into another dropped model
    served = copy.deepcopy(tied)
    served.drop_latent_weights()
    assert not any(k.endswith("proj.weight") for k in served.state_dict())
    torch.testing.assert_close(served(ids).logits, expected)
    other = _model(["attention"], seed=3)
    other.drop_latent_weights()
    other.load_state_dict(served.state_dict())
    torch.testing.assert_close(other.eval()(ids).logits, expected)
    with pytest.raises(RuntimeError, match="latent weights were dropped"):
        other.train()(ids, labels=ids)


def test_moe_aux_loss_is_in_the_loss():
    model = _model(["moe"], router_aux_loss_coef=0.5)
    ids = torch.randint(0, 32, (2, 6))
    out = model(ids, labels=ids)
    assert out.aux_loss is not None and out.aux_loss > 0
    logits = out.logits[:, :-1].reshape(-1, 32)
    ce = torch.nn.functional.cross_entropy(logits, ids[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, ce + 0.5 * out.aux_loss)


def test_bad_input_and_config_get_clear_errors():
    with pytest.raises(ValueError, match="num_kv_heads"):
        _config(["attention"], num_kv_heads=3)
    with pytest.raises(ValueError, match="divisible by 'num_heads'"):
        _config(["attention"], hidden_size=30)
    with pytest.raises(ValueError, match="layer_types"):
        _config(["transformer"])
    with pytest.raises(ValueError, match="num_layers=2"):
        BitNetConfig(num_layers=2, layer_types=["attention"])
    with pytest.raises(ValueError, match="unknown keys"):
        BitNetConfig.from_dict({"hidden_sise": 3})
    assert BitNetConfig.from_dict(_config(["mamba"]).to_dict()) == _config(["mamba"])
    model = _model(["attention", "mamba"])
    with pytest.raises(TypeError, match="input_ids"):
        model(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        model(torch.tensor([[1, 32]]))
    with pytest.raises(ValueError, match="input_ids"):
        model(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="labels"):
        model(torch.tensor([[1, 2]]), labels=torch.tensor([[1]]))
    cache = BitNetCache()
    with torch.no_grad():
        model(torch.tensor([[1, 2], [3, 4]]), cache=cache)
        with pytest.raises(ValueError, match="cache misuse"):
            model(torch.tensor([[1]]), cache=cache)
    other = _model(["mamba", "attention"])
    with torch.no_grad(), pytest.raises(TypeError, match="cache misuse"):
        other(torch.tensor([[1], [2]]), cache=cache)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(torch.tensor([[1]]), -1)
