"""BitMamba: the chunked parallel scan equals the step-by-step recurrence (values and gradients),
the block equals a float64 reference, cached decoding equals the full forward."""

from __future__ import annotations

import pytest
import torch
from _nn_reference import ref_bit_mamba, ref_scan_recurrence
from bitmat_nn import BitMamba, MambaCache
from bitmat_nn.mamba import selective_scan, selective_state_update


def _scan_inputs(b=2, t=37, d=6, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, t, d, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(b, t, d, generator=g))
    A = -torch.rand(d, n, generator=g) * 3 - 0.1
    B, C = torch.randn(b, t, n, generator=g), torch.randn(b, t, n, generator=g)
    D, z = torch.randn(d, generator=g), torch.randn(b, t, d, generator=g)
    h0 = torch.randn(b, d, n, generator=g)
    return u, delta, A, B, C, D, z, h0


@pytest.mark.parametrize("chunk_size", [1, 3, 8, 64])
def test_scan_equals_recurrence(chunk_size):
    u, delta, A, B, C, D, z, h0 = _scan_inputs()
    y, h = selective_scan(u, delta, A, B, C, D, z, initial_state=h0, chunk_size=chunk_size)
    y_ref, h_ref = ref_scan_recurrence(u, delta, A, B, C, D, z, h0)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h.double(), h_ref, rtol=1e-4, atol=1e-4)


def test_scan_gradients_equal_recurrence_gradients():
    inputs = [t.double().requires_grad_() for t in _scan_inputs(t=13)]
    y, h = selective_scan(*inputs[:7], initial_state=inputs[7], chunk_size=4)
    (y.sum() + h.square().sum()).backward()
    grads = [t.grad.clone() for t in inputs]
    for t in inputs:
        t.grad = None
    y_ref, h_ref = ref_scan_recurrence(*inputs)
    (y_ref.sum() + h_ref.square().sum()).backward()
    for got, t in zip(grads, inputs):
        torch.testing.assert_close(got.double(), t.grad, rtol=1e-4, atol=1e-4)


def test_state_update_is_one_recurrence_step():
    u, delta, A, B, C, D, z, h0 = _scan_inputs(t=1)
    y, h = selective_state_update(h0, u[:, 0], delta[:, 0], A, B[:, 0], C[:, 0], D, z[:, 0])
    y_ref, h_ref = ref_scan_recurrence(u, delta, A, B, C, D, z, h0)
    torch.testing.assert_close(y.double(), y_ref[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h.double(), h_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bit_x_proj", [False, True])
def test_block_matches_reference(bit_x_proj):
    torch.manual_seed(0)
    m = BitMamba(16, d_state=4, d_conv=3, bit_x_proj=bit_x_proj, bit_dt_proj=bit_x_proj, chunk_size=5).double()
    assert isinstance(m.x_proj, torch.nn.Linear) and (type(m.x_proj).__name__ == "BitLinear") == bit_x_proj
    x = torch.randn(2, 11, 16, dtype=torch.float64, requires_grad=True)
    y = m(x)
    torch.testing.assert_close(y, ref_bit_mamba(m, x.detach()), rtol=1e-5, atol=1e-5)
    y.sum().backward()
    for p in (x, m.in_proj.weight, m.out_proj.weight, m.A_log, m.D, m.conv1d.weight, m.dt_proj.bias):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_cached_decoding_equals_full_forward():
    torch.manual_seed(0)
    m = BitMamba(16, d_state=4, chunk_size=4).eval()
    x = torch.randn(2, 10, 16)
    with torch.no_grad():
        full = m(x)
        cache = MambaCache()
        parts = [m(x[:, :3], cache=cache)]  # prefill shorter than the conv window
        parts += [m(x[:, i : i + 1], cache=cache) for i in range(3, 7)]
        parts.append(m(x[:, 7:], cache=cache))  # a chunk after steps
    assert cache.seq_length == 10
    torch.testing.assert_close(torch.cat(parts, 1), full, rtol=1e-5, atol=1e-5)


def test_left_padding_equals_unpadded():
    torch.manual_seed(0)
    m = BitMamba(16, d_state=4).eval()
    seq = torch.randn(1, 6, 16)
    padded = torch.cat((torch.randn(1, 3, 16), seq), 1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        alone = m(seq)
        cache = MambaCache()
        out = [m(padded[:, :5], attention_mask=mask[:, :5], cache=cache)]
        for i in range(5, 9):
            out.append(m(padded[:, i : i + 1], attention_mask=mask[:, : i + 1], cache=cache))
    torch.testing.assert_close(torch.cat(out, 1)[:, 3:], alone, rtol=1e-5, atol=1e-5)


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="d_state"):
        BitMamba(16, d_state=0)
    with pytest.raises(ValueError, match="dt_min"):
        BitMamba(16, dt_min=0.5, dt_max=0.1)
    m = BitMamba(16, d_state=4)
    with pytest.raises(ValueError, match="16 features"):
        m(torch.randn(1, 3, 15))
    with pytest.raises(TypeError, match="MambaCache"):
        m(torch.randn(1, 3, 16), cache=object())
    cache = MambaCache()
    with torch.no_grad():
        m(torch.randn(2, 3, 16), cache=cache)
        with pytest.raises(ValueError, match="cache misuse"):
            m(torch.randn(1, 1, 16), cache=cache)
    with pytest.raises(ValueError, match="attention_mask"):
        m(torch.randn(1, 3, 16), attention_mask=torch.ones(1, 2, dtype=torch.bool))
