"""Every op through torch.library's checks (fake vs real implementation) and torch.compile(fullgraph)."""

import bitmat_kernels as bk
import pytest
import torch


def _args():
    codes = torch.randint(-1, 2, (6, 21), dtype=torch.int8)
    bcodes = codes.clamp(min=0) * 2 - 1
    return codes, bcodes


@pytest.mark.parametrize(
    ("op", "make_args"),
    [
        (torch.ops.bitmat.pack.default, lambda: (_args()[0], "ternary")),
        (torch.ops.bitmat.pack.default, lambda: (_args()[1], "binary")),
        (torch.ops.bitmat.unpack.default, lambda: (bk.pack_ternary(_args()[0]), 21, "ternary")),
        (torch.ops.bitmat.unpack.default, lambda: (bk.pack_binary(_args()[1]), 21, "binary")),
        (torch.ops.bitmat.quantize_activations.default, lambda: (torch.randn(3, 21), 1e-5)),
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
