import math

import bitmat_kernels as bk
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

FLOATS = [torch.float32, torch.float16, torch.bfloat16]


# --- weights ------------------------------------------------------------------------------------


def test_ternarize_is_absmean_round_clamp():
    w = torch.tensor([[0.0, 0.4, -0.6, 3.0], [-2.0, 0.1, 0.5, -0.49]])
    codes, gamma = bk.ternarize(w, eps=1e-5)
    g = w.double().abs().mean()
    expected = (w.double() / (g + 1e-5)).round().clamp(-1, 1)
    assert gamma.dtype == torch.float32 and gamma.shape == (1,)
    assert math.isclose(gamma.item(), g.item(), rel_tol=1e-6)
    assert codes.dtype == torch.int8 and torch.equal(codes.double(), expected)


def test_ternarize_rounds_rather_than_truncates():
    # gamma = 1.0: 0.7 rounds to 1 (the original BitMat truncated it to 0), 0.3 rounds to 0
    w = torch.tensor([[0.7, -0.7, 0.3, 2.3]])
    codes, gamma = bk.ternarize(w)
    assert gamma.item() == pytest.approx(1.0)
    assert codes.tolist() == [[1, -1, 0, 1]]


def test_ternarize_large_values_clamp_without_wrapping():
    w = torch.tensor([[1000.0, -1000.0, 0.0, 0.0] + [0.001] * 1000])
    codes, _ = bk.ternarize(w)
    assert codes[0, 0] == 1 and codes[0, 1] == -1


def test_ternarize_per_channel():
    w = torch.randn(5, 8, dtype=torch.float64)
    codes, gamma = bk.ternarize(w, per_channel=True)
    g = w.abs().mean(dim=1, keepdim=True)
    assert gamma.shape == (5, 1) and gamma.dtype == torch.float32
    torch.testing.assert_close(gamma.double(), g, rtol=1e-6, atol=0)
    assert torch.equal(codes.double(), (w / (g + 1e-5)).round().clamp(-1, 1))


def test_ternarize_nan_weight_poisons_scale():
    w = torch.tensor([[1.0, float("nan")]])
    codes, gamma = bk.ternarize(w)
    assert set(codes.flatten().tolist()) <= {-1, 0, 1}
    assert math.isnan(gamma.item())


@pytest.mark.parametrize("per_channel", [False, True])
def test_binarize(per_channel):
    w = torch.randn(4, 9, dtype=torch.float64)
    codes, beta = bk.binarize(w, per_channel=per_channel)
    centre = w.mean(dim=1, keepdim=True) if per_channel else w.mean()
    expected = torch.where(w - centre > 0, 1.0, -1.0)
    assert torch.equal(codes.double(), expected)
    ref_beta = w.abs().mean(dim=1, keepdim=True) if per_channel else w.abs().mean().reshape(1)
    torch.testing.assert_close(beta.double(), ref_beta, rtol=1e-6, atol=0)
    assert set(codes.unique().tolist()) <= {-1, 1}


@pytest.mark.parametrize("fn", [bk.ternarize, bk.binarize])
def test_weight_quantizers_bad_input(fn):
    with pytest.raises(TypeError, match="'w' must have dtype"):
        fn(torch.ones(2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="must not be empty"):
        fn(torch.ones(0, 2))
    with pytest.raises(ValueError, match="per_channel=True needs a 2-D weight"):
        fn(torch.ones(2, 2, 2), per_channel=True)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        fn([[1.0]])


def test_ternarize_bad_eps():
    with pytest.raises(ValueError, match="'eps' must be a positive finite float"):
        bk.ternarize(torch.ones(2, 2), eps=0.0)


# --- activations --------------------------------------------------------------------------------


def activation_oracle(x: torch.Tensor, eps: float = 1e-5):
    """The formula of DESIGN §4 in float64 (the fp32 kernel may differ only on exact ties)."""
    xd = x.double()
    absmax = xd.abs().amax(-1, keepdim=True).clamp_min(eps)
    return (xd * (127.0 / absmax)).round().clamp(-128, 127), absmax / 127.0


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (3, 67), (2, 3, 130), (0, 8)])
def test_quantize_activations(backend, dtype, shape):
    x = (torch.randn(shape) * 3).to(dtype)
    xq, scale = bk.quantize_activations(x)
    assert xq.dtype == torch.int8 and xq.shape == x.shape
    assert scale.dtype == torch.float32 and scale.shape == (*shape[:-1], 1)
    q_ref, s_ref = activation_oracle(x)
    torch.testing.assert_close(scale.double(), s_ref, rtol=1e-6, atol=0)
    # fp32 vs fp64 products can only disagree on a tie: at most one step, rarely
    diff = (xq.double() - q_ref).abs()
    assert diff.max().item() <= 1 if diff.numel() else True
    assert (diff > 0).double().mean().item() < 0.01 if diff.numel() else True
    # the reconstruction error is at most half a step
    assert ((xq.double() * scale.double() - x.double()).abs() <= scale.double() * 0.5 + 1e-6).all()


def test_quantize_triton_is_bit_exact_with_reference(triton_backend):
    x = torch.randn(64, 75) * 5
    got = bk.quantize_activations(x)
    with bk.use_backend("reference"):
        ref = bk.quantize_activations(x)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


@pytest.mark.parametrize("k", [75, 28672, 32768 + 37])  # one read in registers (small, long) / two passes
def test_quantize_kernel_paths_are_bit_exact_with_sums_and_nan(triton_backend, k):
    from bitmat_kernels.ops.quantize.kernel import MAX_ONE_READ, quantize_activations_triton

    assert (k > MAX_ONE_READ) == (k == 32768 + 37)  # the parameters cover both paths

    x = torch.randn(3, k) * 5
    x[1, k // 2] = float("nan")
    xq, scale, sums = quantize_activations_triton(x, 1e-5, with_sum=True)
    with bk.use_backend("reference"):
        ref_q, ref_s = bk.quantize_activations(x)
    assert torch.equal(xq, ref_q)
    assert torch.equal(scale[[0, 2]], ref_s[[0, 2]]) and math.isnan(scale[1].item())
    assert torch.equal(sums, ref_q.sum(-1, dtype=torch.int32))


def test_activation_codes_stay_in_int8_range():
    x = torch.tensor([[-1.0, 1.0, 0.5]])
    xq, scale = bk.quantize_activations(x)
    assert xq.tolist() == [[-127, 127, 64]]  # 63.5 rounds to even
    assert scale.item() == pytest.approx(1 / 127)


def test_zero_token_uses_eps(backend):
    xq, scale = bk.quantize_activations(torch.zeros(2, 4))
    assert torch.equal(xq, torch.zeros(2, 4, dtype=torch.int8))
    assert torch.allclose(scale, torch.full((2, 1), 1e-5 / 127))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_token_gets_nan_scale(backend, bad):
    x = torch.randn(3, 10)
    x[1, 4] = bad
    xq, scale = bk.quantize_activations(x)
    assert math.isnan(scale[1].item())
    assert torch.isfinite(scale[[0, 2]]).all()


def test_quantize_activations_bad_input():
    with pytest.raises(TypeError, match="'x' must have dtype float16, bfloat16, float32"):
        bk.quantize_activations(torch.ones(2, 2, dtype=torch.int8))
    with pytest.raises(ValueError, match="at least one feature"):
        bk.quantize_activations(torch.ones(2, 0))
    with pytest.raises(ValueError, match="'eps'"):
        bk.quantize_activations(torch.ones(2, 2), eps=-1.0)


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(1, 4),
    k=st.integers(1, 80),
    scale=st.floats(1e-3, 1e4),
    seed=st.integers(0, 2**31),
)
@example(m=2, k=41, scale=597.798828125, seed=84196)  # a code off by 0.5 + 8.8e-6 steps (float32 rounding)
def test_quantize_property(m, k, scale, seed):
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(seed)) * scale
    xq, s = bk.quantize_activations(x)
    assert xq.abs().max() <= 127
    # half a step, plus float32 slack: x * (127 / absmax) and the stored absmax / 127 are each rounded, so a code of up
    # to 127 can miss by a few float32 units of 127 (seed 84196, k=41, scale 597.8: 0.5 + 8.8e-6 steps)
    assert ((xq.double() * s.double() - x.double()).abs() <= s.double() * (0.5 + 2**-15)).all()
    with bk.use_backend("triton"):
        xq2, s2 = bk.quantize_activations(x)
    assert torch.equal(xq, xq2) and torch.equal(s, s2)


# --- activation planes (weight-only matmuls on the int8 kernels) --------------------------------


def planes_value(planes, step):
    """The float64 value the four digit rows of each token stand for."""
    d = planes.reshape(step.shape[0], 4, -1).double()
    q = d[:, 0] + d[:, 1] * 2**8 + d[:, 2] * 2**16 + d[:, 3] * 2**24
    return q * step.double()[:, None]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("k", [1, 37, 8192 + 5])  # one block, and the two-pass path of long rows
def test_activation_planes_triton_is_bit_exact_with_reference(triton_backend, dtype, k):
    from bitmat_kernels.ops.quantize.kernel import activation_planes_triton
    from bitmat_kernels.ops.quantize.reference import activation_planes_reference

    gen = torch.Generator().manual_seed(k)
    x = torch.randn(4, k, generator=gen) * torch.tensor([[1.0], [3e3], [1e-3], [0.0]])
    x[0, k // 2] = 1e-6  # far below the token's max: rounded, not exact
    x = x.to(dtype)
    got = activation_planes_triton(x)
    ref = activation_planes_reference(x)
    for a, b in zip(got, ref):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", FLOATS)
def test_activation_planes_are_exact_within_their_range(dtype):
    """Each token is q * 2**(E - 30) with max |x| < 2**E: digits within int8, bfloat16 values of magnitude >= 2**(E - 23)
    (float16: 2**(E - 20)) exact, everything within half a step, 2**(E - 31)."""
    from bitmat_kernels.ops.quantize.reference import activation_planes_reference

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 300, generator=gen) * torch.tensor([[1.0], [1e4], [1e-5], [7.0], [0.01]])
    x[3, 7] = -1e-9
    x = x.to(dtype)
    planes, step, sums = activation_planes_reference(x)
    assert planes.shape == (20, 300) and step.shape == (5,) and sums.shape == (20,)
    assert torch.equal(sums, planes.sum(-1, dtype=torch.int32))
    d = planes.reshape(5, 4, 300)
    assert d[:, :3].min() >= -128 and d[:, :3].max() <= 127 and d[:, 3].abs().max() <= 64
    xd = x.double()
    e = torch.floor(torch.log2(xd.abs().amax(-1))) + 1  # max |x| < 2**E
    assert torch.equal(step.double(), 2.0 ** (e - 30))  # a power of two: the epilogue's multiply is exact
    err = (planes_value(planes, step) - xd).abs()
    assert (err <= step.double()[:, None] / 2).all()
    if dtype != torch.float32:
        exact_from = 2.0 ** (e - (23 if dtype == torch.bfloat16 else 20))
        assert (err[xd.abs() >= exact_from[:, None]] == 0).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_activation_planes_non_finite_token(backend, bad):
    from bitmat_kernels.ops.quantize.kernel import activation_planes_triton
    from bitmat_kernels.ops.quantize.reference import activation_planes_reference

    x = torch.randn(3, 20)
    x[1, 4] = bad
    x[2] = 0.0
    planes, step, sums = (activation_planes_triton if backend == "triton" else activation_planes_reference)(x)
    assert math.isnan(step[1].item()) and torch.isfinite(step[[0, 2]]).all()
    assert (planes[4:12] == 0).all() and (sums[4:12] == 0).all()  # the bad token and the zero token: all digits 0


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 3), k=st.integers(1, 60), log_scale=st.floats(-30, 30), seed=st.integers(0, 2**31))
def test_activation_planes_property(m, k, log_scale, seed):
    from bitmat_kernels.ops.quantize.kernel import activation_planes_triton
    from bitmat_kernels.ops.quantize.reference import activation_planes_reference

    x = torch.randn(m, k, generator=torch.Generator().manual_seed(seed)) * 2.0**log_scale
    planes, step, sums = activation_planes_reference(x)
    assert ((planes_value(planes, step) - x.double()).abs() <= step.double()[:, None] / 2).all()
    with bk.use_backend("triton"):
        got = activation_planes_triton(x)
    assert all(torch.equal(a, b) for a, b in zip(got, (planes, step, sums)))
