import bitmat_kernels as bk
import pytest
import torch
from bitmat_kernels.ops.linear.reference import linear_reference

# (M, N, K): M = 0, 1 and odd; K not a multiple of 4, 8 or the kernels' blocks
CASES = [(0, 5, 9), (1, 1, 1), (1, 7, 5), (3, 33, 67), (5, 8, 130), (17, 40, 33), (2, 65, 256)]
MODES = [(1.58, 8), (1.58, None), (1, 8), (1, None)]
TOL = {torch.float32: (2e-5, 1e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1e-2)}


def make_layer(n, k, weight_bits, per_channel=False, gen=None):
    w = torch.randn(n, k, generator=gen)
    quantize = bk.ternarize if weight_bits == 1.58 else bk.binarize
    codes, scale = quantize(w, per_channel=per_channel)
    return bk.pack(codes, weight_bits=weight_bits), scale


def oracle(x, packed, scale, k, weight_bits, activation_bits, bias):
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    return linear_reference(x, packed, scale, k, fmt, activation_bits, bias, accumulate_dtype=torch.float64)


def assert_close_to_oracle(y, ref, dtype):
    rtol, atol = TOL[dtype]
    assert not torch.isnan(y).any(), "an output element was never written (NaN poison survived)"
    scale = ref.abs().max().item() if ref.numel() else 1.0
    torch.testing.assert_close(y.double(), ref.double(), rtol=rtol, atol=atol * max(scale, 1.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("weight_bits", "activation_bits"), MODES)
@pytest.mark.parametrize(("m", "n", "k"), CASES)
def test_linear_matches_float64_oracle(backend, m, n, k, weight_bits, activation_bits, dtype):
    gen = torch.Generator().manual_seed(m * 1000 + n * 10 + k)
    packed, scale = make_layer(n, k, weight_bits, per_channel=(m % 2 == 1), gen=gen)
    x = torch.randn(m, k, generator=gen).to(dtype)
    bias = torch.randn(n, generator=gen).to(dtype) if n % 2 else None
    y = bk.bitmat_linear(
        x, packed, scale, in_features=k, weight_bits=weight_bits, activation_bits=activation_bits, bias=bias
    )
    assert y.dtype == dtype and y.shape == (m, n)
    assert_close_to_oracle(y, oracle(x, packed, scale, k, weight_bits, activation_bits, bias), dtype)


def test_a8_matches_the_design_formula():
    """y = (x_q @ codes^T) * (gamma / s) + bias, written out from DESIGN §4 in float64."""
    n, k = 6, 11
    w = torch.randn(n, k)
    codes, gamma = bk.ternarize(w)
    x = torch.randn(3, k)
    bias = torch.randn(n)
    xd = x.double()
    s = 127.0 / xd.abs().amax(-1, keepdim=True).clamp_min(1e-5)
    xq = (xd * s).round().clamp(-128, 127)
    expected = (xq @ codes.double().T) * (gamma.double() / s) + bias.double()
    y = bk.bitmat_linear(x, bk.pack_ternary(codes), gamma, in_features=k, bias=bias)
    torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-5)


def test_weight_only_equals_dense_matmul():
    n, k = 9, 21
    codes, gamma = bk.ternarize(torch.randn(n, k))
    x = torch.randn(4, k, dtype=torch.float64).float()
    y = bk.bitmat_linear(x, bk.pack_ternary(codes), gamma, in_features=k, activation_bits=None)
    torch.testing.assert_close(y.double(), x.double() @ (codes.double() * gamma.double()).T, rtol=1e-5, atol=1e-5)


def test_leading_dimensions_are_kept(backend):
    packed, scale = make_layer(7, 12, 1.58)
    x = torch.randn(2, 3, 12)
    y = bk.bitmat_linear(x, packed, scale, in_features=12)
    assert y.shape == (2, 3, 7)
    torch.testing.assert_close(y.reshape(6, 7), bk.bitmat_linear(x.reshape(6, 12), packed, scale, in_features=12))


def test_non_contiguous_activations(backend):
    packed, scale = make_layer(5, 8, 1.58)
    x = torch.randn(8, 4).t()
    torch.testing.assert_close(
        bk.bitmat_linear(x, packed, scale, in_features=8),
        bk.bitmat_linear(x.contiguous(), packed, scale, in_features=8),
    )


@pytest.mark.parametrize("activation_bits", [8, None])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_activations_give_nan_not_numbers(backend, activation_bits, bad):
    packed, scale = make_layer(6, 10, 1.58)
    x = torch.randn(3, 10)
    x[1, 2] = bad
    y = bk.bitmat_linear(x, packed, scale, in_features=10, activation_bits=activation_bits)
    assert torch.isfinite(y[[0, 2]]).all()
    if activation_bits == 8 or bad != bad:
        assert torch.isnan(y[1]).all()
    else:
        assert not torch.isfinite(y[1]).any() or (bk.unpack_ternary(packed, 10)[:, 2] == 0).any()


def test_large_k_int32_accumulation_is_exact():
    """Sums far beyond fp16 range: the integer accumulator must not overflow or round."""
    k = 4096
    codes = torch.ones(2, k, dtype=torch.int8)
    x = torch.ones(1, k)
    y = bk.bitmat_linear(x, bk.pack_ternary(codes), torch.ones(1), in_features=k)
    assert y.tolist() == [[4096.0, 4096.0]]


def test_gradient_reaches_the_input():
    packed, scale = make_layer(5, 7, 1.58)
    x = torch.randn(3, 7, requires_grad=True)
    bias = torch.randn(5, requires_grad=True)
    bk.bitmat_linear(x, packed, scale, in_features=7, bias=bias).sum().backward()
    w = bk.dequantize(packed, scale, in_features=7)
    torch.testing.assert_close(x.grad, torch.ones(3, 5) @ w)
    torch.testing.assert_close(bias.grad, torch.full((5,), 3.0))


def test_torch_compile_fullgraph():
    packed, scale = make_layer(6, 9, 1.58)
    x = torch.randn(2, 9)

    def f(x):
        return bk.bitmat_linear(x, packed, scale, in_features=9) * 2

    compiled = torch.compile(f, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), f(x))


def test_opcheck():
    packed, scale = make_layer(4, 10, 1.58)
    x = torch.randn(3, 10)
    torch.library.opcheck(torch.ops.bitmat.linear.default, (x, packed, scale, 10, "ternary", 8, None, 1e-5))


# --- bad input ---------------------------------------------------------------------------------


def test_bad_inputs_name_the_argument():
    packed, scale = make_layer(4, 10, 1.58)
    x = torch.randn(2, 10)

    def call(**kw):
        args = dict(x=x, packed=packed, scale=scale, in_features=10)
        args.update(kw)
        a = (args.pop("x"), args.pop("packed"), args.pop("scale"))
        return bk.bitmat_linear(*a, **args)

    with pytest.raises(TypeError, match="'x' must have dtype"):
        call(x=x.to(torch.int32))
    with pytest.raises(ValueError, match="'x' must have in_features=10"):
        call(x=torch.randn(2, 11))
    with pytest.raises(ValueError, match="in_features=13 needs 4 packed bytes"):
        call(in_features=13)
    with pytest.raises(TypeError, match="'packed' must have dtype uint8"):
        call(packed=packed.to(torch.int8))
    with pytest.raises(ValueError, match="'packed' must have 2 dimensions"):
        call(packed=packed[0])
    with pytest.raises(ValueError, match="'packed' must be contiguous"):
        call(packed=torch.zeros(3, 4, dtype=torch.uint8).t())
    with pytest.raises(TypeError, match="'scale' must have dtype float32"):
        call(scale=scale.double())
    with pytest.raises(ValueError, match=r"'scale' must have shape \[1\], \[4\] or \[4, 1\]"):
        call(scale=torch.ones(3))
    with pytest.raises(ValueError, match=r"'bias' must have shape \[4\]"):
        call(bias=torch.ones(5))
    with pytest.raises(ValueError, match="'activation_bits' must be 8 or None"):
        call(activation_bits=4)
    with pytest.raises(ValueError, match="'weight_bits'"):
        call(weight_bits=3)
    with pytest.raises(ValueError, match="in_features=10 needs 2 packed bytes"):
        call(weight_bits=1)
    with pytest.raises(ValueError, match="at least one output row"):
        call(packed=torch.zeros(0, 3, dtype=torch.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_devices_are_refused():
    packed, scale = make_layer(4, 10, 1.58)
    with pytest.raises(ValueError, match="one device"):
        bk.bitmat_linear(torch.randn(2, 10, device="cuda"), packed, scale, in_features=10)


# --- both kernel families, forced (the public function picks one by M) ------------------------


@pytest.mark.parametrize("path", ["decode", "gemm"])
@pytest.mark.parametrize(("weight_bits", "activation_bits"), MODES)
@pytest.mark.parametrize(("m", "k"), [(1, 64), (4, 96), (3, 60), (2, 32), (1, 640)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_kernel_families_match_oracle(triton_backend, monkeypatch, path, weight_bits, activation_bits, m, k, dtype):
    import bitmat_kernels.ops.linear.kernel as kernel
    from bitmat_kernels.ops.linear.kernel import _decode_ok, linear_triton

    monkeypatch.setattr(kernel, "DECODE_MAX_M", 4)  # the GEMV serves several tokens too

    n = 19
    gen = torch.Generator().manual_seed(k * 7 + m)
    packed, scale = make_layer(n, k, weight_bits, per_channel=True, gen=gen)
    x = torch.randn(m, k, generator=gen).to(dtype)
    bias = torch.randn(n, generator=gen)
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    if path == "decode" and not _decode_ok(m, k, packed, activation_bits == 8):
        with pytest.raises(ValueError, match="decode path needs"):
            linear_triton(x, packed, scale, k, fmt, activation_bits, bias, path=path)
        return
    y = linear_triton(x, packed, scale, k, fmt, activation_bits, bias, path=path)
    assert_close_to_oracle(y, oracle(x, packed, scale, k, weight_bits, activation_bits, bias), dtype)


@pytest.mark.parametrize("fused_quant", [True, False])
@pytest.mark.parametrize("weight_bits", [1.58, 1])
def test_decode_quantization_fused_or_separate(triton_backend, monkeypatch, fused_quant, weight_bits):
    """The GEMV either quantizes activations itself or reads the quantize kernel's output: same result."""
    import bitmat_kernels.ops.linear.kernel as kernel
    from bitmat_kernels.ops.linear.configs import DecodeConfig

    monkeypatch.setattr(
        kernel, "decode_config", lambda *a, **kw: DecodeConfig(8, 16, num_stages=1, fused_quant=fused_quant)
    )
    monkeypatch.setattr(kernel, "DECODE_MAX_M", 4)
    m, n, k = 3, 21, 64
    gen = torch.Generator().manual_seed(5)
    packed, scale = make_layer(n, k, weight_bits, gen=gen)
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    x[1, 3] = float("nan")
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    y = kernel.linear_triton(x, packed, scale, k, fmt, 8, None, path="decode")
    ref = oracle(x, packed, scale, k, weight_bits, 8, None)
    assert torch.isnan(y[1]).all()
    assert_close_to_oracle(y[[0, 2]], ref[[0, 2]], torch.bfloat16)


@pytest.mark.parametrize(("weight_bits", "activation_bits"), MODES)
def test_gemm_warp_specialized_config_matches_oracle(triton_backend, monkeypatch, weight_bits, activation_bits):
    """The sweep-only warp-specialization flag of the GEMM's K loop changes scheduling, never results."""
    import bitmat_kernels.ops.linear.kernel as kernel
    from bitmat_kernels.ops.linear.configs import GemmConfig

    monkeypatch.setattr(
        kernel, "gemm_config", lambda *a, **kw: GemmConfig(16, 32, 32, num_warps=4, num_stages=2, warp_specialize=True)
    )
    m, n, k = 5, 40, 260
    gen = torch.Generator().manual_seed(12)
    packed, scale = make_layer(n, k, weight_bits, per_channel=True, gen=gen)
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    y = kernel.linear_triton(x, packed, scale, k, fmt, activation_bits, None, path="gemm")
    assert_close_to_oracle(y, oracle(x, packed, scale, k, weight_bits, activation_bits, None), torch.bfloat16)


@pytest.mark.parametrize("split_k", [2, 3])
@pytest.mark.parametrize(("weight_bits", "activation_bits"), MODES)
def test_gemm_split_k_matches_oracle(triton_backend, monkeypatch, split_k, weight_bits, activation_bits):
    """Small M and N on a big GPU share K among programs; partial sums are reduced in a fixed order."""
    import bitmat_kernels.ops.linear.kernel as kernel
    from bitmat_kernels.ops.linear.configs import GemmConfig

    cfg = GemmConfig(16, 32, 32, num_warps=4, num_stages=1, split_k=split_k)
    monkeypatch.setattr(kernel, "gemm_config", lambda *a, **kw: cfg)
    finishes = []
    real_finish = kernel._split_k_finish_kernel

    class SpyFinish:
        def __getitem__(self, grid):
            finishes.append(grid)
            return real_finish[grid]

    monkeypatch.setattr(kernel, "_split_k_finish_kernel", SpyFinish())
    m, n, k = 5, 40, 520  # K spans several BLOCK_KP chunks per split, the last one ragged
    gen = torch.Generator().manual_seed(11)
    packed, scale = make_layer(n, k, weight_bits, per_channel=True, gen=gen)
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    bias = torch.randn(n, generator=gen)
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    y = kernel.linear_triton(x, packed, scale, k, fmt, activation_bits, bias, path="gemm")
    assert_close_to_oracle(y, oracle(x, packed, scale, k, weight_bits, activation_bits, bias), torch.bfloat16)
    again = kernel.linear_triton(x, packed, scale, k, fmt, activation_bits, bias, path="gemm")
    assert torch.equal(y, again)  # deterministic
    assert len(finishes) == 2, "split-K did not run"


@pytest.mark.parametrize("weight_bits", [1.58, 1])
def test_chunked_a8_gemm_equals_one_chunk(triton_backend, monkeypatch, weight_bits):
    """Large-M A8 quantizes and multiplies its tokens in chunks (a8_chunks), the later quantizers looping over
    their tokens with fewer programs than tokens: the same bits as one quantizer and one GEMM."""
    import bitmat_kernels.ops.linear.kernel as kernel
    from bitmat_kernels.ops.linear.configs import GemmConfig

    cfg = GemmConfig(16, 32, 32, num_warps=4, num_stages=1)
    monkeypatch.setattr(kernel, "gemm_config", lambda *a, **kw: cfg)
    m, n, k = 45, 40, 72  # chunks of 16, 16 and 13 tokens
    gen = torch.Generator().manual_seed(5)
    packed, scale = make_layer(n, k, weight_bits, per_channel=True, gen=gen)
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    x[7, 3] = float("nan")  # a poisoned token stays in its own row, whichever chunk holds it
    bias = torch.randn(n, generator=gen)
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    whole = kernel.linear_triton(x, packed, scale, k, fmt, 8, bias, path="gemm")
    calls = []
    real_quantize = kernel.quantize_activations_triton

    def spy_quantize(x, eps, **kw):
        calls.append((x.shape[0], kw.get("behind", 0)))
        return real_quantize(x, eps, **kw)

    monkeypatch.setattr(kernel, "quantize_activations_triton", spy_quantize)
    monkeypatch.setattr(kernel, "a8_chunks", lambda *a: 3)
    chunked = kernel.linear_triton(x, packed, scale, k, fmt, 8, bias, path="gemm")
    assert calls == [(16, 0), (16, 4), (13, 4)]
    assert torch.equal(chunked.isnan(), whole.isnan()) and chunked.isnan().sum() == n
    assert torch.equal(chunked.nan_to_num(), whole.nan_to_num())
    ok = ~x.isnan().any(dim=1)
    ref = oracle(x[ok], packed, scale, k, weight_bits, 8, bias)
    assert_close_to_oracle(chunked[ok], ref, torch.bfloat16)


def test_a8_chunks_rule():
    from bitmat_kernels.ops.linear.configs import GemmConfig
    from bitmat_kernels.ops.linear.kernel import a8_chunks

    cfg = GemmConfig(128, 128, 64)
    assert a8_chunks(4096, 8192, 28672, "ternary", cfg, pdl=True) == 8  # 512 tokens a chunk on a long-row layer
    assert a8_chunks(2048, 8192, 28672, "ternary", cfg, pdl=True) == 4
    assert a8_chunks(4096, 8192, 28672, "ternary", cfg, pdl=False) == 1  # the overlap needs PDL
    assert a8_chunks(4096, 8192, 28672, "binary", cfg, pdl=True) == 1
    assert a8_chunks(4096, 8192, 28672, "ternary", GemmConfig(128, 128, 64, split_k=2), pdl=True) == 1
    for m, n, k in ((1024, 8192, 28672), (8192, 8192, 28672), (4096, 4096, 14336), (4096, 28672, 4096)):
        assert a8_chunks(m, n, k, "ternary", cfg, pdl=True) == 1, (m, n, k)


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("weight_bits", [1.58, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weight_only_dequant_path_matches_oracle(triton_backend, per_channel, weight_bits, dtype):
    """Weight-only at large M: codes * scale written densely in one kernel, then F.linear."""
    from bitmat_kernels.ops.linear.kernel import linear_triton

    m, n, k = 6, 37, 70
    gen = torch.Generator().manual_seed(3)
    packed, scale = make_layer(n, k, weight_bits, per_channel=per_channel, gen=gen)
    x = torch.randn(m, k, generator=gen).to(dtype)
    bias = torch.randn(n, generator=gen).to(dtype)
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    y = linear_triton(x, packed, scale, k, fmt, None, bias, path="dequant")
    assert y.dtype == dtype
    assert_close_to_oracle(y, oracle(x, packed, scale, k, weight_bits, None, bias), dtype)
    with pytest.raises(ValueError, match="weight-only"):
        linear_triton(x, packed, scale, k, fmt, 8, bias, path="dequant")


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("weight_bits", [1.58, 1])
def test_dequantize_kernel_matches_reference(triton_backend, per_channel, weight_bits):
    n, k = 21, 67  # K not a multiple of 4 or 8: a ragged last byte in the last slice
    packed, scale = make_layer(n, k, weight_bits, per_channel=per_channel, gen=torch.Generator().manual_seed(9))
    got = bk.dequantize(packed, scale, in_features=k, weight_bits=weight_bits, dtype=torch.float32)
    with bk.use_backend("reference"):
        want = bk.dequantize(packed, scale, in_features=k, weight_bits=weight_bits, dtype=torch.float32)
    assert torch.equal(got, want)


def _run_ptx_model(asm: str, word: int, n_outputs: int) -> list[int]:
    """Executes the instruction forms the code-decoding PTX uses (cvt.u32.u16, prmt, shl/shr.u32, lop3 with
    (a & b) | c) on 32-bit integers, so the shift and mask constants are checked without a GPU (CPU CI cannot run inline PTX)."""
    import re

    regs = {f"${n_outputs}": word}
    for instr in (i.strip() for i in asm.strip("{} ").split(";")):
        if not instr or instr.startswith(".reg"):
            continue
        op, args = instr.split(None, 1)
        dst, *src = [a.strip() for a in args.split(",")]
        if op == "cvt.u32.u16":
            regs[dst] = regs[src[0]] & 0xFFFF
        elif op == "prmt.b32":
            # byte i of the result: byte (selector nibble i) of the 8 bytes b:a
            pool = (regs[src[1]] if src[1] in regs else int(src[1], 0)) << 32 | regs[src[0]]
            sel = int(src[2], 0)
            regs[dst] = sum(((pool >> (8 * ((sel >> (4 * i)) & 7))) & 0xFF) << (8 * i) for i in range(4))
        elif op in ("shl.b32", "shr.u32"):
            value, amount = regs[src[0]], int(src[1])
            regs[dst] = (value << amount if op == "shl.b32" else value >> amount) & 0xFFFFFFFF
        elif op == "lop3.b32":
            assert src[3] == "0xea", instr  # 0xea: (a & b) | c
            a, b, c = (regs[v] if v in regs else int(v, 0) for v in src[:3])
            regs[dst] = (a & b) | c
        else:
            raise AssertionError(f"unmodelled instruction {instr!r}")
        assert re.fullmatch(r"\$\d+|t|u", dst)
    return [regs[f"${i}"] for i in range(n_outputs)]


@pytest.mark.parametrize("bits", [2, 1])
def test_code_pair_ptx_places_each_code_under_the_mantissa_of_one(bits):
    """The weight-only GEMV's PTX: for each byte of a register, slice s + 1's code at bit 21 and slice s's at bit
    21 - bits, OR-ed into 1.0 (0x3f800000), i.e. the floats 1 + t/4 and 1 + t/(4 * 2**bits)."""
    from bitmat_kernels.ops.linear.kernel import _code_pair_as_floats_asm

    gen = torch.Generator().manual_seed(3)
    words = [*torch.randint(0, 2**32, (64,), generator=gen, dtype=torch.int64).tolist(), 0, 0xFFFFFFFF]
    mask = (1 << bits) - 1
    for s in range(0, 8 // bits, 2):
        asm = _code_pair_as_floats_asm(bits, s)
        for word in words:
            out = _run_ptx_model(asm, word, 8)
            for b in range(4):
                byte = (word >> (8 * b)) & 0xFF
                assert out[b] == ((byte >> ((s + 1) * bits)) & mask) << 21 | 0x3F800000, (s, hex(word), b)
                assert out[4 + b] == ((byte >> (s * bits)) & mask) << (21 - bits) | 0x3F800000, (s, hex(word), b)


@pytest.mark.parametrize("bf16", [True, False])
@pytest.mark.parametrize("bits", [2, 1])
def test_code_pairs_ptx_puts_two_bytes_codes_under_two_halves_of_one(bits, bf16):
    """The code-pair GEMM's PTX: bytes b0, b1 of a 16-bit register become, for slice s + 1, the 16-bit floats
    1 + t/2**bits in the low and high half of one word, and for slice s 1 + t/4**bits (bf16 or fp16 bits)."""
    from bitmat_kernels.ops.linear.kernel import _code_pairs_as_halves_asm

    gen = torch.Generator().manual_seed(4)
    words = [*torch.randint(0, 2**32, (64,), generator=gen, dtype=torch.int64).tolist(), 0, 0xFFFF, 0xFFFFFFFF]
    mantissa, one = (7, 0x3F80) if bf16 else (10, 0x3C00)
    code = (1 << bits) - 1
    for s in range(0, 8 // bits, 2):
        asm = _code_pairs_as_halves_asm(bits, s, bf16)
        for word in words:  # the 16 bits above the pair (a register's other half) must not leak in
            out = _run_ptx_model(asm, word, 2)
            for o, (slice_, low) in enumerate(((s + 1, mantissa - bits), (s, mantissa - 2 * bits))):
                halves = [one | ((((word >> (8 * b)) & 0xFF) >> (slice_ * bits)) & code) << low for b in (0, 1)]
                assert out[o] == halves[0] | halves[1] << 16, (s, hex(word), o)


@pytest.mark.parametrize("code_pairs", [True, False])
@pytest.mark.parametrize("weight_bits", [1.58, 1])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gemm_weight_only_decodes_match_oracle(triton_backend, monkeypatch, code_pairs, weight_bits, dtype):
    """Weight-only GEMM with the code-pair decode (two slices, two accumulators, offsets per token) and without."""
    import bitmat_kernels.ops.linear.kernel as kernel
    from bitmat_kernels.ops.linear.configs import GemmConfig

    cfg = GemmConfig(16, 32, 32, num_warps=4, num_stages=1, split_k=2, code_pairs=code_pairs)
    monkeypatch.setattr(kernel, "gemm_config", lambda *a, **kw: cfg)
    launched = []
    real_gemm = kernel._bitmat_gemm_kernel

    class SpyGemm:
        def __getitem__(self, grid):
            def run(*args, **kw):
                launched.append(kw["CODE_PAIRS"])
                return real_gemm[grid](*args, **kw)

            return run

    monkeypatch.setattr(kernel, "_bitmat_gemm_kernel", SpyGemm())
    m, n, k = 5, 40, 1102  # several K steps per split, the last slice ragged; KP even
    gen = torch.Generator().manual_seed(13)
    packed, scale = make_layer(n, k, weight_bits, per_channel=True, gen=gen)
    assert packed.shape[1] % 2 == 0
    x = (torch.randn(m, k, generator=gen) + 0.5).to(dtype)  # a mean: the offsets do not cancel by chance
    bias = torch.randn(n, generator=gen)
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    y = kernel.linear_triton(x, packed, scale, k, fmt, None, bias, path="gemm")
    assert launched == [code_pairs]
    assert_close_to_oracle(y, oracle(x, packed, scale, k, weight_bits, None, bias), dtype)
    # odd packed rows fall back to the byte decode
    k_odd = 4 * 33 if weight_bits == 1.58 else 8 * 33
    packed_odd, scale_odd = make_layer(n, k_odd, weight_bits, gen=gen)
    x_odd = torch.randn(m, k_odd, generator=gen).to(dtype)
    y = kernel.linear_triton(x_odd, packed_odd, scale_odd, k_odd, fmt, None, None, path="gemm")
    assert launched[-1] is False
    assert_close_to_oracle(y, oracle(x_odd, packed_odd, scale_odd, k_odd, weight_bits, None, None), dtype)


# --- weight-only on the int8 kernels: activation planes -----------------------------------------


@pytest.mark.parametrize("weight_bits", [1.58, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("m", "k"), [(1, 64), (3, 67), (5, 130), (2, 33)])
def test_weight_only_planes_path_matches_oracle(triton_backend, m, k, weight_bits, dtype):
    """Four int8 planes a token through the A8 GEMM, summed exactly in int64: the float64 oracle up to the fp32
    epilogue's few roundings, so float32 activations keep float32 accuracy."""
    from bitmat_kernels.ops.linear.kernel import linear_triton

    n = 37
    gen = torch.Generator().manual_seed(m * 100 + k)
    packed, scale = make_layer(n, k, weight_bits, per_channel=True, gen=gen)
    x = (torch.randn(m, k, generator=gen) + 1.0) * torch.linspace(1e-3, 30.0, k)  # mean 1, a wide range
    x = x.to(dtype)
    bias = torch.randn(n, generator=gen).to(dtype)
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    y = linear_triton(x, packed, scale, k, fmt, None, bias, path="planes")
    ref = oracle(x, packed, scale, k, weight_bits, None, bias)
    assert y.dtype == dtype
    if dtype == torch.float32:
        torch.testing.assert_close(y.double(), ref.double(), rtol=1e-6, atol=1e-6 * ref.abs().max().item())
    else:
        assert_close_to_oracle(y, ref, dtype)
    with pytest.raises(ValueError, match="weight-only"):
        linear_triton(x, packed, scale, k, fmt, 8, bias, path="planes")
    with pytest.raises(ValueError, match="'path' must be one of"):
        linear_triton(x, packed, scale, k, fmt, None, bias, path="planes-gemm")


@pytest.mark.parametrize("weight_bits", [1.58, 1])
def test_weight_only_planes_split_k_and_nan_token(triton_backend, monkeypatch, weight_bits):
    """Split-K partial sums of each plane row are combined per token in the finish kernel; a token holding NaN gives
    NaN outputs and leaves the others alone."""
    import bitmat_kernels.ops.linear.kernel as kernel
    from bitmat_kernels.ops.linear.configs import GemmConfig

    monkeypatch.setattr(
        kernel, "gemm_config", lambda *a, **kw: GemmConfig(16, 32, 32, num_warps=4, num_stages=1, split_k=2)
    )
    m, n, k = 3, 40, 520
    gen = torch.Generator().manual_seed(4)
    packed, scale = make_layer(n, k, weight_bits, per_channel=True, gen=gen)
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    x[1, 9] = float("nan")
    fmt = "ternary" if weight_bits == 1.58 else "binary"
    y = kernel.linear_triton(x, packed, scale, k, fmt, None, None, path="planes")
    assert torch.isnan(y[1]).all()
    ref = oracle(x[[0, 2]], packed, scale, k, weight_bits, None, None)
    assert_close_to_oracle(y[[0, 2]], ref, torch.bfloat16)
    assert torch.equal(y[[0, 2]], kernel.linear_triton(x[[0, 2]], packed, scale, k, fmt, None, None, path="planes"))


def test_weight_only_auto_takes_planes_by_the_rule(triton_backend, monkeypatch):
    import bitmat_kernels.ops.linear.kernel as kernel

    calls = []
    real = kernel.activation_planes_triton
    monkeypatch.setattr(kernel, "activation_planes_triton", lambda x, **kw: calls.append(x.shape) or real(x, **kw))
    packed, scale = make_layer(16, 32, 1.58)
    for m, planes in ((1, False), (2, True), (4, True), (9, False)):
        calls.clear()
        kernel.linear_triton(torch.randn(m, 32), packed, scale, 32, "ternary", None, None)
        assert bool(calls) == planes, m
