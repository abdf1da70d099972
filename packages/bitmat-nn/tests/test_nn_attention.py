"""BitAttention against a float64 first-principles reference; cached decoding equals the full forward."""

from __future__ import annotations

import pytest
import torch
from _nn_reference import ref_bit_attention
from bitmat_nn import BitAttention, KVCache

HEADS = [(4, 4), (4, 2), (4, 1)]  # multi-head, grouped-query, multi-query


def _attn(num_heads, num_kv_heads, seed=0, **kw):
    torch.manual_seed(seed)
    return BitAttention(32, num_heads, num_kv_heads, **kw)


@pytest.mark.parametrize(("num_heads", "num_kv_heads"), HEADS)
@pytest.mark.parametrize("subln", [False, True])
def test_forward_matches_reference(num_heads, num_kv_heads, subln):
    attn = _attn(num_heads, num_kv_heads, subln=subln, bias=subln).double()
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    torch.testing.assert_close(attn(x), ref_bit_attention(attn, x), rtol=1e-6, atol=1e-6)
    mask = torch.tensor([[1] * 7, [0, 0, 0, 1, 1, 1, 1]])
    torch.testing.assert_close(attn(x, attention_mask=mask), ref_bit_attention(attn, x, mask), rtol=1e-6, atol=1e-6)


def test_gradients_reach_inputs_and_all_projections():
    attn = _attn(4, 2).double()
    x = torch.randn(2, 5, 32, dtype=torch.float64, requires_grad=True)
    attn(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for proj in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj):
        assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("num_heads", "num_kv_heads"), HEADS)
def test_cached_decoding_equals_full_forward(num_heads, num_kv_heads):
    attn = _attn(num_heads, num_kv_heads).eval()
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        full = attn(x)
        cache = KVCache()
        parts = [attn(x[:, :4], cache=cache)]
        parts += [attn(x[:, i : i + 1], cache=cache) for i in range(4, 7)]
        parts.append(attn(x[:, 7:], cache=cache))  # a multi-token chunk after the cache
    assert cache.seq_length == 9
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-5, atol=1e-5)


def test_left_padding_with_cache_equals_unpadded_sequences():
    attn = _attn(4, 2).eval()
    torch.manual_seed(1)
    short, long = torch.randn(1, 5, 32), torch.randn(1, 8, 32)
    batch = torch.cat((torch.cat((torch.zeros(1, 3, 32), short), 1), long))
    mask = torch.tensor([[0, 0, 0] + [1] * 5, [1] * 8])
    with torch.no_grad():
        alone_short, alone_long = attn(short), attn(long)
        cache = KVCache()
        out = [attn(batch[:, :6], attention_mask=mask[:, :6], cache=cache)]
        for i in range(6, 8):
            out.append(attn(batch[:, i : i + 1], attention_mask=mask[:, : i + 1], cache=cache))
    out = torch.cat(out, 1)
    torch.testing.assert_close(out[0, 3:], alone_short[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1], alone_long[0], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(out).all()


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="multiple of 'num_kv_heads'"):
        BitAttention(32, 4, 3)
    with pytest.raises(ValueError, match="divisible by 'num_heads'"):
        BitAttention(30, 4)
    with pytest.raises(ValueError, match="even"):
        BitAttention(12, 4)
    attn = _attn(4, 2)
    with pytest.raises(ValueError, match="3 dimensions"):
        attn(torch.randn(5, 32))
    with pytest.raises(ValueError, match="32 features"):
        attn(torch.randn(1, 5, 31))
    with pytest.raises(ValueError, match=r"attention_mask.*\[1, 5\]"):
        attn(torch.randn(1, 5, 32), attention_mask=torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="attention_mask"):
        attn(torch.randn(1, 5, 32), attention_mask=torch.ones(1, 5))
    with pytest.raises(ValueError, match="position_ids"):
        attn(torch.randn(1, 5, 32), position_ids=torch.arange(4))
    with pytest.raises(TypeError, match="KVCache"):
        attn(torch.randn(1, 5, 32), cache={})
    cache = KVCache()
    with torch.no_grad():
        attn(torch.randn(2, 3, 32), cache=cache)
        with pytest.raises(ValueError, match="cache misuse"):
            attn(torch.randn(3, 1, 32), cache=cache)
    small = KVCache(max_length=4)
    with torch.no_grad(), pytest.raises(ValueError, match="max_length=4"):
        attn(torch.randn(1, 5, 32), cache=small)
