"""The GPU suite: real sizes against the float64 reference, torch.compile(fullgraph) and CUDA-graph
capture of every op. Skipped without CUDA."""

import bitmat_kernels as bk
import pytest
import torch
from bitmat_kernels.ops.linear.kernel import _decode_ok, linear_triton
from bitmat_kernels.ops.linear.reference import linear_reference

pytestmark = pytest.mark.gpu

# (N, K): odd ones too, and a tall layer for the launch rules that depend on N (NOTES.md v12)
SHAPES = [(4096, 4096), (3840, 2560), (2560, 6912), (1000, 1000), (1024, 1000), (16384, 1024)]
MODES = [(1.58, 8), (1.58, None), (1, 8), (1, None)]


def layer(n, k, weight_bits, per_channel=False):
    w = torch.randn(n, k, device="cuda") * 0.02
    codes, scale = (bk.ternarize if weight_bits == 1.58 else bk.binarize)(w, per_channel=per_channel)
    return bk.pack(codes, weight_bits=weight_bits), scale


def rel_err(y, ref):
    return ((y.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize(("n", "k"), SHAPES)
@pytest.mark.parametrize(("weight_bits", "activation_bits"), MODES)
@pytest.mark.parametrize("m", [1, 3, 4, 16, 32, 64, 100, 256, 1024])  # every M bucket of configs.gemm_config
def test_linear_real_sizes(n, k, weight_bits, activation_bits, m):
    packed, scale = layer(n, k, weight_bits, per_channel=(m == 3))
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    bias = torch.randn(n, device="cuda", dtype=torch.bfloat16) if m == 16 else None
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    ref = linear_reference(x, packed, scale, k, fmt, activation_bits, bias, accumulate_dtype=torch.float64)
    import bitmat_kernels.ops.linear.kernel as kernel

    kernel.DECODE_MAX_M, saved = 4, kernel.DECODE_MAX_M  # exercise the multi-token GEMV too
    try:
        for path in ("auto", "decode", "gemm", "dequant", "planes"):
            if path == "decode" and not _decode_ok(m, k, packed, activation_bits == 8):
                continue
            if path in ("dequant", "planes") and activation_bits is not None:
                continue
            y = linear_triton(x, packed, scale, k, fmt, activation_bits, bias, path=path)
            assert not torch.isnan(y).any()
            # dequant (also what auto picks for weight-only from some M): cuBLAS on codes * scale rounded
            # to bf16, a systematic error of up to 2^-9 on top of the output's rounding
            tol = 6e-3 if activation_bits is None and path in ("auto", "dequant") else 4e-3
            assert rel_err(y, ref) < tol, (path, rel_err(y, ref))
    finally:
        kernel.DECODE_MAX_M = saved


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("weight_bits", [1.58, 1])
@pytest.mark.parametrize(("m", "n", "k"), [(4, 1024, 1000), (64, 3840, 2560), (16, 2048, 14336), (256, 512, 4112)])
def test_weight_only_gemm_decodes_on_gpu(monkeypatch, m, n, k, weight_bits, dtype):
    """The weight-only GEMM's code-pair decode (inline PTX) and byte decode against the float64 reference, with
    activations of mean 1: the per-token offsets the code-pair epilogue subtracts are then large."""
    import dataclasses

    import bitmat_kernels.ops.linear.kernel as kernel
    from bitmat_kernels.ops.linear import configs

    packed, scale = layer(n, k, weight_bits, per_channel=True)
    x = (torch.randn(m, k, device="cuda") + 1.0).to(dtype)
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    ref = linear_reference(x, packed, scale, k, fmt, None, None, accumulate_dtype=torch.float64)
    for pairs in (True, False):
        monkeypatch.setattr(
            kernel,
            "gemm_config",
            lambda *a, p=pairs, **kw: dataclasses.replace(configs.gemm_config(*a, **kw), code_pairs=p),
        )
        y = linear_triton(x, packed, scale, k, fmt, None, None, path="gemm")
        assert rel_err(y, ref) < 4e-3, (pairs, rel_err(y, ref))


def sm90():
    return torch.cuda.get_device_capability() == (9, 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    ("m", "n", "k"),
    [
        (64, 4096, 4096),
        (50, 1000, 2048),
        (3, 2056, 1024),
        (200, 4096, 4096),
        (9, 8192, 28672),
        (1000, 28672, 4096),
        # tall layers' tiles, on grids of 2 programs an SM: where v20's operand race showed (NOTES.md v21)
        (8, 28672, 4096),
        (16, 28672, 4096),
        (64, 28672, 4096),
        (128, 28672, 4096),
        # K-heavy layers' long K steps, 64 x 256 tiles at 257-512 tokens, beyond 1024 tokens
        (16, 4096, 14336),
        (50, 4096, 14336),
        (300, 4096, 4096),
        (2048, 8192, 4096),
    ],
)
def test_hopper_weight_only_on_gpu(m, n, k, dtype):
    """The Gluon sm_90 GEMM (path="hopper", every tile of hopper_tile by M) against the float64 oracle: the sum of
    exact products in fp32, so all but a few outputs round as the oracle does; per-tensor scale at odd M, bias."""
    if not sm90():
        pytest.skip("the Gluon GEMM is for sm_90 (H100/H200)")
    packed, scale = layer(n, k, 1.58, per_channel=m % 2 == 0)
    x = torch.randn(m, k, device="cuda", dtype=dtype)
    bias = torch.randn(n, device="cuda", dtype=dtype) if m % 3 == 0 else None
    ref = linear_reference(x, packed, scale, k, "ternary", None, bias, accumulate_dtype=torch.float64)
    y = linear_triton(x, packed, scale, k, "ternary", None, bias, path="hopper")
    assert rel_err(y, ref) < 4e-3
    # outputs off the oracle's rounding (fp32 sums in another order); fp16's 4x finer steps meet more of them
    assert (y != ref).float().mean().item() < (2e-3 if dtype == torch.bfloat16 else 2e-2)
    assert torch.equal(y, linear_triton(x, packed, scale, k, "ternary", None, bias, path="hopper"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    ("m", "n", "k"), [(64, 4096, 4096), (50, 1000, 2048), (16, 28672, 4096), (300, 4096, 4096), (9, 8192, 28672)]
)
def test_hopper_binary_on_gpu(m, n, k, dtype):
    """Binary weights (8 codes a byte, w = +-1 from the sign bit) on the Gluon GEMM, against the float64 oracle."""
    if not sm90():
        pytest.skip("the Gluon GEMM is for sm_90 (H100/H200)")
    packed, scale = layer(n, k, 1, per_channel=m % 2 == 0)
    x = torch.randn(m, k, device="cuda", dtype=dtype)
    bias = torch.randn(n, device="cuda", dtype=dtype) if m % 3 == 0 else None
    ref = linear_reference(x, packed, scale, k, "binary", None, bias, accumulate_dtype=torch.float64)
    y = linear_triton(x, packed, scale, k, "binary", None, bias, path="hopper")
    assert rel_err(y, ref) < 4e-3
    assert (y != ref).float().mean().item() < (2e-3 if dtype == torch.bfloat16 else 2e-2)
    assert torch.equal(y, linear_triton(x, packed, scale, k, "binary", None, bias, path="hopper"))


@pytest.mark.parametrize(
    ("m", "n", "k"), [(64, 28672, 4096), (256, 8192, 4096), (32, 4096, 4096), (8, 28672, 4096), (16, 8192, 28672)]
)
def test_hopper_rules_pick_it_on_gpu(m, n, k):
    """Where the rules send weight-only calls to the Gluon GEMM, auto gives the forced path's result bit for bit,
    under CUDA-graph replay too."""
    import bitmat_kernels.ops.linear.kernel as kernel

    if not sm90():
        pytest.skip("the Gluon GEMM is for sm_90 (H100/H200)")
    packed, scale = layer(n, k, 1.58, per_channel=True)
    assert kernel.auto_path(m, n, k, "ternary", False, packed, 2) == "hopper"
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    forced = linear_triton(x, packed, scale, k, "ternary", None, None, path="hopper")
    assert torch.equal(linear_triton(x, packed, scale, k, "ternary", None, None), forced)
    graph, static_x = torch.cuda.CUDAGraph(), x.clone()
    linear_triton(static_x, packed, scale, k, "ternary", None, None)  # compiled before capture
    with torch.cuda.graph(graph):
        out = linear_triton(static_x, packed, scale, k, "ternary", None, None)
    graph.replay()
    assert torch.equal(out, forced)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("weight_bits", [1.58, 1])
@pytest.mark.parametrize(("m", "n", "k"), [(1, 28672, 4096), (4, 8192, 28672), (8, 3840, 2560), (3, 1000, 1000)])
def test_weight_only_planes_on_gpu(m, n, k, weight_bits, dtype):
    """Weight-only through four int8 planes a token and the A8 GEMM (NOTES.md v16): the plane quantizer bit for bit
    against its reference, and outputs against float64 on activations of mean 1 with a wide range, where float32
    keeps float32 accuracy."""
    from bitmat_kernels.ops.quantize.kernel import activation_planes_triton
    from bitmat_kernels.ops.quantize.reference import activation_planes_reference

    packed, scale = layer(n, k, weight_bits, per_channel=True)
    x = ((torch.randn(m, k, device="cuda") + 1.0) * torch.linspace(1e-3, 30.0, k, device="cuda")).to(dtype)
    for a, b in zip(activation_planes_triton(x), activation_planes_reference(x)):
        assert torch.equal(a, b)
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    ref = linear_reference(x, packed, scale, k, fmt, None, None, accumulate_dtype=torch.float64)
    y = linear_triton(x, packed, scale, k, fmt, None, None, path="planes")
    assert rel_err(y, ref) < (1e-6 if dtype == torch.float32 else 4e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_linear_other_dtypes(dtype):
    packed, scale = layer(512, 768, 1.58)
    for m in (1, 64):
        x = torch.randn(m, 768, device="cuda", dtype=dtype)
        for ab in (8, None):
            y = bk.bitmat_linear(x, packed, scale, in_features=768, activation_bits=ab)
            ref = linear_reference(x, packed, scale, 768, "ternary", ab, None, accumulate_dtype=torch.float64)
            assert y.dtype == dtype and rel_err(y, ref) < 2e-3


def test_pack_and_quantize_match_reference_on_gpu():
    codes = torch.randint(-1, 2, (777, 1001), dtype=torch.int8, device="cuda")
    packed = bk.pack_ternary(codes)
    with bk.use_backend("reference"):
        assert torch.equal(packed, bk.pack_ternary(codes))
    assert torch.equal(bk.unpack_ternary(packed, 1001), codes)
    bcodes = codes.clamp(min=0) * 2 - 1
    assert torch.equal(bk.unpack_binary(bk.pack_binary(bcodes), 1001), bcodes)
    x = torch.randn(300, 4096, device="cuda", dtype=torch.bfloat16) * 4
    xq, s = bk.quantize_activations(x)
    with bk.use_backend("reference"):
        xq_ref, s_ref = bk.quantize_activations(x)
    assert torch.equal(s, s_ref)
    assert (xq != xq_ref).sum().item() == 0


@pytest.mark.parametrize("activation_bits", [8, None])  # weight-only at 4 tokens: the planes path
def test_torch_compile_fullgraph_inductor(activation_bits):
    packed, scale = layer(1024, 1024, 1.58)
    x = torch.randn(4 if activation_bits is None else 8, 1024, device="cuda", dtype=torch.bfloat16)

    def f(x):
        h = bk.bitmat_linear(x, packed, scale, in_features=1024, activation_bits=activation_bits)
        return torch.relu(h) + 1

    compiled = torch.compile(f, fullgraph=True)
    torch.testing.assert_close(compiled(x), f(x))


@pytest.mark.parametrize(("m", "k", "chunks"), [(4096, 4096, 4), (2100, 36864, 3)])  # K > 32768: two-pass rows
def test_chunked_a8_gemm_on_gpu(monkeypatch, m, k, chunks):
    """Large-M A8 in chunks, each quantizer beside the GEMM before it (PDL on Hopper): the same bits as one
    quantizer and one GEMM, and as a graph replay."""
    import bitmat_kernels.ops.linear.kernel as kernel

    n = 384
    packed, scale = layer(n, k, 1.58)
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    x[5, 1] = float("nan")

    def f(x):
        return bk.bitmat_linear(x, packed, scale, in_features=k)

    monkeypatch.setattr(kernel, "a8_chunks", lambda *a: 1)
    whole = f(x)
    monkeypatch.setattr(kernel, "a8_chunks", lambda *a: chunks)
    assert torch.equal(f(x).nan_to_num(), whole.nan_to_num()) and f(x).isnan().sum() == n
    graph = torch.cuda.CUDAGraph()
    f(x)
    with torch.cuda.graph(graph):
        out = f(x)
    for _ in range(3):
        x.normal_()
        graph.replay()
        monkeypatch.setattr(kernel, "a8_chunks", lambda *a: 1)
        assert torch.equal(out, f(x))
        monkeypatch.setattr(kernel, "a8_chunks", lambda *a: chunks)


@pytest.mark.parametrize("activation_bits", [8, None])
@pytest.mark.parametrize("m", [1, 4, 64])
def test_cuda_graph_capture(m, activation_bits):
    packed, scale = layer(2048, 1024, 1.58)
    x = torch.randn(m, 1024, device="cuda", dtype=torch.bfloat16)

    def f(x):
        return bk.bitmat_linear(x, packed, scale, in_features=1024, activation_bits=activation_bits)

    expected = f(x)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        f(x)  # compile and warm up outside the graph
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = f(x)
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, f(x))
    assert not torch.equal(out, expected)


def test_deterministic_run_to_run():
    packed, scale = layer(4096, 4096, 1.58)
    x = torch.randn(512, 4096, device="cuda", dtype=torch.bfloat16)
    a = bk.bitmat_linear(x, packed, scale, in_features=4096)
    b = bk.bitmat_linear(x, packed, scale, in_features=4096)
    assert torch.equal(a, b)


def test_every_op_under_inductor_and_cuda_graphs():
    """pack, unpack, quantize and the matmul: torch.compile(fullgraph) and graph capture on the GPU."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    # weights whose codes do not hang on a rounding tie: |w| / mean|w| is ~0 or ~1.5 (clamped to 1), never near 0.5.
    # From randn, inductor's other summation order for mean|w| moved one code of 397824 (2026-11-27 run, v17).
    sign = torch.randint(-1, 2, (512, 777), device="cuda", generator=gen).float()
    w = sign * (1 + 0.1 * torch.rand(512, 777, device="cuda", generator=gen))
    x = torch.randn(5, 777, device="cuda", dtype=torch.bfloat16, generator=gen)

    def pipeline(w, x):
        codes, gamma = bk.ternarize(w)
        packed = bk.pack_ternary(codes)
        back = bk.unpack_ternary(packed, 777)
        xq, xs = bk.quantize_activations(x)
        return back, xq, xs, bk.bitmat_linear(x, packed, gamma, in_features=777)

    expected = pipeline(w, x)
    for got, want in zip(torch.compile(pipeline, fullgraph=True)(w, x), expected):
        torch.testing.assert_close(got, want)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        pipeline(w, x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = pipeline(w, x)
    graph.replay()
    torch.cuda.synchronize()
    for got, want in zip(captured, expected):
        torch.testing.assert_close(got, want)


def assert_rounding_close(y, ref):
    """A fused kernel's output against torch's unfused ops on the same GPU. Both round twice (e.g. the
    normalised value, then its product with the weight), and the first rounding may land on the other side of a
    tie where a float32 sum, rsqrt or exp differs in its last bit. A 16-bit result is then off by at most three
    of its units in the last place (the product can fall a binade below), in at most 0.1% of the values; a
    float32 result is off by a few float32 units (exp: its argument's rounding, ~|x| units), anywhere."""
    assert y.dtype == ref.dtype and y.shape == ref.shape
    mag = ref.double().abs()
    if ref.dtype == torch.float32:
        assert ((y.double() - ref.double()).abs() <= 64 * 2**-24 * mag + 1e-30).all()
        return
    differ = (y != ref).float().mean().item()
    assert ((y.double() - ref.double()).abs() <= 3 * torch.finfo(ref.dtype).eps * mag + 1e-30).all()
    assert differ < 1e-3, f"{differ:.2%} of the values differ"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(("m", "k"), [(1, 4096), (2048, 4096), (7, 6912), (3, 14336), (2, 28672)])
def test_rms_norm_quantize_matches_torch_on_gpu(m, k, dtype):
    """Against the RMSNorm of transformers' Llama in torch on the same GPU (assert_rounding_close); the codes
    exactly quantize_activations of the y returned; and
    bitmat_linear fed the codes equals bitmat_linear quantizing y itself (GEMV and GEMM)."""
    from bitmat_kernels.ops.norm.reference import rms_norm_reference

    x = torch.randn(m, k, device="cuda").to(dtype) * 3
    w = (torch.rand(k, device="cuda") + 0.5).to(dtype)
    with torch.no_grad():
        y, q = bk.rms_norm_quantize(x, w, eps=1e-5)
        ref = rms_norm_reference(x, w, 1e-5)
        assert_rounding_close(y, ref)
        yq, scale = bk.quantize_activations(y)
        assert torch.equal(q.values, yq) and torch.equal(q.scale, scale)
        assert torch.equal(q.row_sum, yq.sum(1, dtype=torch.int32))
        packed, gamma = layer(512, k, 1.58)
        assert torch.equal(
            bk.bitmat_linear(y, packed, gamma, in_features=k, quantized=q),
            bk.bitmat_linear(y, packed, gamma, in_features=k),
        )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(("m", "n"), [(1, 14336), (2048, 14336), (7, 6912), (2, 28672)])
def test_silu_mul_quantize_matches_torch_on_gpu(m, n, dtype):
    """Against torch's F.silu(gate) * up on the same GPU, the halves of a fused product as in a Llama MLP."""
    both = (torch.randn(m, 2 * n, device="cuda") * 3).to(dtype)
    gate, up = both[:, :n], both[:, n:]
    with torch.no_grad():
        h, q = bk.silu_mul_quantize(gate, up)
        ref = torch.nn.functional.silu(gate) * up
        assert_rounding_close(h, ref)
        hq, scale = bk.quantize_activations(h)
        assert torch.equal(q.values, hq) and torch.equal(q.scale, scale)
        assert torch.equal(q.row_sum, hq.sum(1, dtype=torch.int32))


@pytest.mark.parametrize(("weight_bits", "activation_bits"), [(1.58, 8), (1.58, None), (1, None)])
def test_tune_linear_on_the_gpu(tmp_path, weight_bits, activation_bits):
    """tune_linear at real size: every tuned point runs a config that gives the rules' result (A8: the same bits),
    and save / load brings the same choices back."""
    from bitmat_kernels.ops.linear import configs

    configs.clear_tuned_configs()
    try:
        n, k = 4096, 4096
        packed, scale = layer(n, k, weight_bits)
        x = torch.randn(256, k, device="cuda", dtype=torch.bfloat16)
        kwargs = dict(in_features=k, weight_bits=weight_bits, activation_bits=activation_bits)
        before = bk.bitmat_linear(x, packed, scale, **kwargs)
        records = bk.tune_linear(packed, scale, batch_sizes=[1, 2, 4, 16, 256], budget_ms=10, **kwargs)
        tuned = [r for r in records if r["config"] is not None]
        # weight-only from 8 tokens runs the Gluon GEMM, whose tile tune_linear leaves alone (sm_90)
        gluon = activation_bits is None and sm90()
        assert len(tuned) >= (2 if gluon else 3) and all(r["us"] > 0 and r["candidates"] >= 2 for r in tuned), records
        after = bk.bitmat_linear(x, packed, scale, **kwargs)
        if activation_bits == 8:
            assert torch.equal(after, before)
        else:
            assert rel_err(after, before.double()) < 2e-2
        # weight-only M=256 also records whether dequantize + cuBLAS won (TUNED_DEQUANT), but where the Gluon GEMM
        # takes it
        tables = configs.TUNED_GEMM, configs.TUNED_DECODE, configs.TUNED_DEQUANT
        saved = tuple(dict(t) for t in tables)
        assert len(saved[2]) == (activation_bits is None and not gluon)
        assert bk.save_tuned_configs(tmp_path / "t.json") == sum(map(len, saved))
        configs.clear_tuned_configs()
        bk.load_tuned_configs(tmp_path / "t.json")
        assert saved == tables
    finally:
        configs.clear_tuned_configs()
