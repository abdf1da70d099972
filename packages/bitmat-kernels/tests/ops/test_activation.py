import bitmat_kernels as bk
import pytest
import torch
import torch.nn.functional as F
from bitmat_kernels.ops.quantize.reference import quantize_activations_reference

FLOATS = [torch.float32, torch.float16, torch.bfloat16]
SHAPES = [(1, 1), (3, 7), (5, 130), (2, 3, 67), (0, 9)]


def float64_silu_mul(gate, up):
    """silu in float64 rounded once to the dtype, times up, rounded again (torch's two roundings)."""
    g = gate.double()
    s = (g / (1 + torch.exp(-g))).to(gate.dtype)
    return (s.double() * up.double()).to(gate.dtype)


def assert_close_to_rounded(h, ref):
    """float32 exp against float64: at most one unit in the last place of the dtype (two for float32, where the
    float32 exp's own error shows), and only in a small share of the values."""
    assert h.dtype == ref.dtype and h.shape == ref.shape
    assert not torch.isnan(h).any(), "an output element was never written (NaN poison survived)"
    mag = ref.double().abs()
    ulp = torch.finfo(ref.dtype).eps * mag * (1.01 if ref.dtype != torch.float32 else 8)
    assert ((h.double() - ref.double()).abs() <= ulp + 1e-30).all()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
def test_silu_mul_quantize_matches_float64_and_quantizes_its_own_output(backend, shape, dtype):
    gen = torch.Generator().manual_seed(sum(shape) + 1)
    gate = (torch.randn(*shape, generator=gen) * 4).to(dtype)
    up = torch.randn(*shape, generator=gen).to(dtype)
    h, q = bk.silu_mul_quantize(gate, up, quant_eps=1e-5)
    assert_close_to_rounded(h, float64_silu_mul(gate, up))
    hq, scale = quantize_activations_reference(h, 1e-5)
    assert torch.equal(q.values, hq) and torch.equal(q.scale, scale) and q.eps == 1e-5
    assert torch.equal(q.row_sum, hq.reshape(-1, shape[-1]).sum(1).int())


def test_halves_of_a_fused_product_are_read_in_place(triton_backend, monkeypatch):
    import bitmat_kernels.ops.activation.kernel as kernel

    monkeypatch.setattr(kernel, "MAX_ONE_BLOCK", 32)  # rows in several blocks, too
    both = torch.randn(2, 3, 2 * 50, dtype=torch.bfloat16) * 3
    gate, up = both[..., :50], both[..., 50:]
    h, q = bk.silu_mul_quantize(gate, up)
    assert h.is_contiguous() and h.shape == (2, 3, 50)
    assert_close_to_rounded(h, float64_silu_mul(gate, up))
    assert torch.equal(q.values, quantize_activations_reference(h, 1e-5)[0])


def test_reference_is_torch_silu_times_up():
    gate, up = torch.randn(4, 9, dtype=torch.bfloat16), torch.randn(4, 9, dtype=torch.bfloat16)
    h, _ = bk.silu_mul_quantize(gate, up)
    assert torch.equal(h, F.silu(gate) * up)


def test_quantized_product_feeds_bitmat_linear(triton_backend):
    k, n = 64, 11
    codes, gamma = bk.ternarize(torch.randn(n, k))
    packed = bk.pack_ternary(codes)
    gate, up = torch.randn(5, k, dtype=torch.bfloat16), torch.randn(5, k, dtype=torch.bfloat16)
    h, q = bk.silu_mul_quantize(gate, up)
    assert torch.equal(
        bk.bitmat_linear(h, packed, gamma, in_features=k, quantized=q),
        bk.bitmat_linear(h, packed, gamma, in_features=k),
    )


def test_bad_inputs_name_the_argument():
    g = torch.randn(2, 8)
    with pytest.raises(TypeError, match="'up' must have dtype float32"):
        bk.silu_mul_quantize(g, g.half())
    with pytest.raises(ValueError, match="same shape"):
        bk.silu_mul_quantize(g, g[:, :4])
    with pytest.raises(ValueError, match="'quant_eps' must be a positive"):
        bk.silu_mul_quantize(g, g, quant_eps=-1.0)
    with pytest.raises(RuntimeError, match="inference only"):
        bk.silu_mul_quantize(g.requires_grad_(), g)


def test_opcheck_and_compile():
    g, u = torch.randn(3, 21), torch.randn(3, 21)
    torch.library.opcheck(torch.ops.bitmat.silu_mul_quantize.default, (g, u, 1e-5))
    eager = bk.silu_mul_quantize(g, u)
    compiled = torch.compile(lambda g, u: bk.silu_mul_quantize(g, u), fullgraph=True, backend="aot_eager")(g, u)
    torch.testing.assert_close(compiled[0], eager[0])
    for got, want in zip(compiled[1], eager[1]):
        assert got == want if isinstance(want, float) else torch.equal(got, want)
