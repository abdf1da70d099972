import bitmat_kernels as bk
import pytest
import torch
from bitmat_kernels.ops.norm.reference import rms_norm_quantize_reference, rms_norm_reference
from bitmat_kernels.ops.quantize.reference import quantize_activations_reference

FLOATS = [torch.float32, torch.float16, torch.bfloat16]
# K: 1, odd, not a power of two, and (through MAX_ONE_BLOCK, patched below) a row read in several blocks
SHAPES = [(1, 1), (3, 7), (5, 130), (2, 3, 67), (0, 9)]


def float64_rms_norm(x, weight, eps):
    """The normalisation in float64, rounded once to x's dtype, then times the weight (rounded again)."""
    xd = x.double()
    y = (xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    return y if weight is None else (weight.double() * y.double()).to(x.dtype)


def assert_within_one_ulp(y, ref):
    """float32 arithmetic (sum of squares, rsqrt, products) against float64: a few float32 rounding errors, which
    can move the result to the neighbouring value of a 16-bit dtype (one unit in the last place)."""
    assert y.dtype == ref.dtype and y.shape == ref.shape
    assert not torch.isnan(y).any(), "an output element was never written (NaN poison survived)"
    mag = ref.double().abs().clamp_min(torch.finfo(ref.dtype).tiny)
    one_ulp = torch.finfo(ref.dtype).eps * mag if ref.dtype != torch.float32 else 0
    assert ((y.double() - ref.double()).abs() <= one_ulp + 4 * torch.finfo(torch.float32).eps * mag).all()


@pytest.mark.parametrize("with_weight", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
def test_rms_norm_quantize_matches_float64_and_quantizes_its_own_output(backend, shape, dtype, with_weight):
    gen = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(*shape, generator=gen) * 3).to(dtype)
    weight = (torch.rand(shape[-1], generator=gen) + 0.5).to(dtype) if with_weight else None
    y, q = bk.rms_norm_quantize(x, weight, eps=1e-6, quant_eps=1e-5)
    assert_within_one_ulp(y, float64_rms_norm(x, weight, 1e-6))
    # the codes are exactly quantize_activations of the y returned (what the matmul would compute from it)
    yq, scale = quantize_activations_reference(y, 1e-5)
    assert torch.equal(q.values, yq) and torch.equal(q.scale, scale) and q.eps == 1e-5
    assert q.row_sum.dtype == torch.int32 and torch.equal(q.row_sum, yq.reshape(-1, shape[-1]).sum(1).int())


def test_rows_longer_than_one_block(triton_backend, monkeypatch):
    import bitmat_kernels.ops.norm.kernel as kernel

    monkeypatch.setattr(kernel, "MAX_ONE_BLOCK", 32)
    x = torch.randn(3, 100, dtype=torch.bfloat16)
    w = torch.rand(100, dtype=torch.bfloat16) + 0.5
    y, q = bk.rms_norm_quantize(x, w)
    ref = rms_norm_quantize_reference(x, w, 1e-6, 1e-5)
    assert_within_one_ulp(y, float64_rms_norm(x, w, 1e-6))
    assert torch.equal(q.values, quantize_activations_reference(y, 1e-5)[0])
    assert torch.equal(q.values, ref[1]) or (y != ref[0]).any()  # equal unless y itself rounded differently


def test_reference_is_llama_rms_norm():
    """The formula of transformers' LlamaRMSNorm (and Mistral's, Qwen2's, BitNet's) step by step."""
    x = torch.randn(4, 33, dtype=torch.bfloat16)
    w = torch.randn(33, dtype=torch.bfloat16)
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5)
    assert torch.equal(rms_norm_reference(x, w, 1e-5), w * h.to(torch.bfloat16))


def test_non_finite_rows_poison_their_scale(backend):
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    x[1, 2] = float("inf")
    y, q = bk.rms_norm_quantize(x, torch.ones(16, dtype=torch.bfloat16))
    assert torch.isnan(q.scale[1]).all() and not torch.isnan(q.scale[[0, 2]]).any()
    assert (q.values[1] == 0).all()


def test_quantized_feeds_bitmat_linear_bit_for_bit(triton_backend, monkeypatch):
    """bitmat_linear with `quantized` = the same as quantizing y itself, on both kernel families."""
    import bitmat_kernels.ops.linear.kernel as kernel

    calls = []
    real = kernel.quantize_activations_triton

    gen = torch.Generator().manual_seed(3)
    k, n = 64, 19
    codes, gamma = bk.ternarize(torch.randn(n, k, generator=gen))
    packed = bk.pack_ternary(codes)
    for m in (1, 5):  # the one-token GEMV and the GEMM
        x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
        y, q = bk.rms_norm_quantize(x, torch.rand(k, generator=gen).to(torch.bfloat16) + 0.5)
        want = bk.bitmat_linear(y, packed, gamma, in_features=k)
        with monkeypatch.context() as patch:
            patch.setattr(kernel, "quantize_activations_triton", lambda *a, **kw: calls.append(1) or real(*a, **kw))
            got = bk.bitmat_linear(y, packed, gamma, in_features=k, quantized=q)
        assert not calls, "bitmat_linear quantized x again although it was given"
        assert torch.equal(got, want)


def test_quantized_is_checked():
    x = torch.randn(2, 8)
    y, q = bk.rms_norm_quantize(x)
    codes, gamma = bk.ternarize(torch.randn(3, 8))
    packed = bk.pack_ternary(codes)
    with pytest.raises(ValueError, match="eps=1e-05, but this call has eps=0.001"):
        bk.bitmat_linear(y, packed, gamma, in_features=8, eps=1e-3, quantized=q)
    with pytest.raises(ValueError, match="activation_bits=8"):
        bk.bitmat_linear(y, packed, gamma, in_features=8, activation_bits=None, quantized=q)
    with pytest.raises(ValueError, match="does not match x of shape"):
        bk.bitmat_linear(y[:1], packed, gamma, in_features=8, quantized=q)
    with pytest.raises(ValueError, match="contiguous, on x's device"):  # row sums the kernels cannot index
        bk.bitmat_linear(y, packed, gamma, in_features=8, quantized=q._replace(row_sum=q.row_sum.repeat(2)[::2]))
    with pytest.raises(TypeError, match="QuantizedActivations"):
        bk.bitmat_linear(y, packed, gamma, in_features=8, quantized=(q.values, q.scale))
    # the reference path (CPU without the interpreter backend) computes the same from y
    torch.testing.assert_close(
        bk.bitmat_linear(y, packed, gamma, in_features=8, quantized=q),
        bk.bitmat_linear(y, packed, gamma, in_features=8),
    )


def test_bad_inputs_name_the_argument():
    x = torch.randn(2, 8)
    with pytest.raises(TypeError, match="'weight' must have dtype float32"):
        bk.rms_norm_quantize(x, torch.ones(8, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"'weight' must have shape \[8\]"):
        bk.rms_norm_quantize(x, torch.ones(7))
    with pytest.raises(ValueError, match="'eps' must be a positive"):
        bk.rms_norm_quantize(x, eps=0.0)
    with pytest.raises(ValueError, match="'quant_eps' must be a positive"):
        bk.rms_norm_quantize(x, quant_eps=float("nan"))
    with pytest.raises(ValueError, match="at least one feature"):
        bk.rms_norm_quantize(torch.randn(2, 0))
    with pytest.raises(RuntimeError, match="inference only"):
        bk.rms_norm_quantize(x.requires_grad_())


def test_opcheck_and_compile():
    x, w = torch.randn(3, 21), torch.rand(21) + 0.5
    torch.library.opcheck(torch.ops.bitmat.rms_norm_quantize.default, (x, w, 1e-6, 1e-5))
    eager = bk.rms_norm_quantize(x, w)
    compiled = torch.compile(lambda x, w: bk.rms_norm_quantize(x, w), fullgraph=True, backend="aot_eager")(x, w)
    torch.testing.assert_close(compiled[0], eager[0])
    for got, want in zip(compiled[1], eager[1]):
        assert got == want if isinstance(want, float) else torch.equal(got, want)
