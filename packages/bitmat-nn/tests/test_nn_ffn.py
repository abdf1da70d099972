"""BitFFN (SwiGLU, squared ReLU, subln) against the float64 reference."""

from __future__ import annotations

import pytest
import torch
from _nn_reference import ref_bit_ffn
from bitmat_nn import BitFFN


@pytest.mark.parametrize("activation", ["swiglu", "relu2"])
@pytest.mark.parametrize("subln", [False, True])
def test_forward_and_eval_match_reference(activation, subln):
    torch.manual_seed(0)
    ffn = BitFFN(24, 40, activation=activation, subln=subln).double()
    x = torch.randn(2, 3, 24, dtype=torch.float64, requires_grad=True)
    y = ffn(x)
    torch.testing.assert_close(y, ref_bit_ffn(ffn, x.detach()), rtol=1e-6, atol=1e-6)
    y.sum().backward()
    assert x.grad.abs().sum() > 0 and ffn.down_proj.weight.grad.abs().sum() > 0
    ffn32 = ffn.float().eval()
    with torch.no_grad():
        torch.testing.assert_close(
            ffn32(x.detach().float()).double(), ref_bit_ffn(ffn32, x.detach()), rtol=1e-4, atol=1e-4
        )


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        BitFFN(8, 16, activation="gelu")
    with pytest.raises(ValueError, match="intermediate_size"):
        BitFFN(8, 0)
    with pytest.raises(ValueError, match="8 features"):
        BitFFN(8, 16)(torch.randn(2, 7))
