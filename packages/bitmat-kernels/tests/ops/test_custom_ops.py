"""Every op through torch.library's checks (fake vs real implementation) and torch.compile(fullgraph)."""

import bitmat_kernels as bk
import pytest
import torch


def _args():
    codes = torch.randint(-1, 2, (6, 21), dtype=torch.int8)
    bcodes = codes.clamp(min=0) * 2 - 1
    return codes, bcodes


def _int8_linear_args():
    codes = _args()[0]
    xq, xs = bk.quantize_activations(torch.randn(3, 21))
    bias = torch.randn(6, dtype=torch.bfloat16)
    return (
        xq,
        xs,
        xq.sum(1, dtype=torch.int32),
        bk.pack_ternary(codes),
        torch.rand(1),
        21,
        "ternary",
        bias,
        torch.bfloat16,
    )


@pytest.mark.parametrize(
    ("op", "make_args"),
    [
        (torch.ops.bitmat.pack.default, lambda: (_args()[0], "ternary")),
        (torch.ops.bitmat.pack.default, lambda: (_args()[1], "binary")),
        (torch.ops.bitmat.unpack.default, lambda: (bk.pack_ternary(_args()[0]), 21, "ternary")),
        (torch.ops.bitmat.unpack.default, lambda: (bk.pack_binary(_args()[1]), 21, "binary")),
        (torch.ops.bitmat.quantize_activations.default, lambda: (torch.randn(3, 21), 1e-5)),
        (torch.ops.bitmat.linear_int8.default, lambda: _int8_linear_args()),
    ],
)
def test_opcheck(op, make_args):
    torch.library.opcheck(op, make_args())


def test_every_public_op_compiles_fullgraph():
    codes, bcodes = _args()
    w = torch.randn(6, 21)
    x = torch.randn(4, 21)

    def pipeline(w, x):
        tcodes, gamma = bk.ternarize(w)
        packed = bk.pack_ternary(tcodes)
        back = bk.unpack_ternary(packed, 21)
        xq, xs = bk.quantize_activations(x)
        y = bk.bitmat_linear(x, packed, gamma, in_features=21)
        return back, xq, xs, y

    compiled = torch.compile(pipeline, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(w, x), pipeline(w, x)):
        torch.testing.assert_close(got, want)
    binary = torch.compile(lambda c: bk.unpack_binary(bk.pack_binary(c), 21), fullgraph=True, backend="aot_eager")
    assert torch.equal(binary(bcodes), bcodes)


@pytest.mark.parametrize("m", [1, 3])
def test_compiled_a8_linear_quantizes_as_torch_ops_and_reads_int8(triton_backend, monkeypatch, m):
    """Under torch.compile the W1.58A8 activation quantization is traced as torch ops (so inductor can fuse it into
    the kernel that produced x) and the Triton matmul reads the int8 result: same output as eager."""
    from bitmat_kernels.ops.linear import kernel

    seen = []
    real = kernel.linear_triton

    def spy(*args, **kwargs):
        seen.append(kwargs.get("quantized") is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(kernel, "linear_triton", spy)
    gen = torch.Generator().manual_seed(m)
    k, n = 64, 10
    codes = torch.randint(-1, 2, (n, k), dtype=torch.int8, generator=gen)
    packed, scale = bk.pack_ternary(codes), torch.rand(n, 1, generator=gen) + 0.5
    x = torch.randn(m, k, generator=gen).to(torch.bfloat16)
    bias = torch.randn(n, generator=gen).to(torch.bfloat16)

    def f(x):
        return bk.bitmat_linear(x, packed, scale, in_features=k, bias=bias)

    want = f(x)
    assert seen == [False]
    torch._dynamo.reset()
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(x)
    assert seen[1:] and all(seen[1:])
    assert got.dtype == torch.bfloat16 and got.shape == (m, n)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
