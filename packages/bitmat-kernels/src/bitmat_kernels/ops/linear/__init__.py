"""bitmat_linear: y = x @ (codes * scale)^T + bias with packed ternary or binary weights."""

from __future__ import annotations

import torch

from ..._checks import FLOAT_DTYPES, check_same_device, check_tensor
from ...backend import use_triton
from ...formats import weight_format
from ..pack import check_packed
from ..quantize import QuantizedActivations, _check_eps
from .reference import dequantize_reference, linear_reference


def _linear_impl(
    x: torch.Tensor,
    packed: torch.Tensor,
    scale: torch.Tensor,
    in_features: int,
    fmt: str,
    activation_bits: int | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    if use_triton(x):
        from .kernel import linear_triton

        return linear_triton(x, packed, scale, in_features, fmt, activation_bits, bias, eps)
    return linear_reference(x, packed, scale, in_features, fmt, activation_bits, bias, eps)


_linear_op = torch.library.custom_op("bitmat::linear", mutates_args=())(_linear_impl)


@_linear_op.register_fake
def _(x, packed, scale, in_features, fmt, activation_bits, bias, eps):
    return x.new_empty(*x.shape[:-1], packed.shape[0])


def _setup_context(ctx, inputs, output):
    _, packed, scale, in_features, fmt, _, bias, _ = inputs
    ctx.save_for_backward(packed, scale)
    ctx.in_features, ctx.fmt, ctx.has_bias = in_features, fmt, bias is not None


def _backward(ctx, grad_y):
    # Straight-through for the activation quantizer: dL/dx = dL/dy @ (codes * scale).
    packed, scale = ctx.saved_tensors
    w = dequantize_reference(packed, scale, ctx.in_features, ctx.fmt, torch.float32)
    grad_x = (grad_y.float() @ w).to(grad_y.dtype)
    grad_bias = grad_y.reshape(-1, grad_y.shape[-1]).sum(0) if ctx.has_bias else None
    return grad_x, None, None, None, None, None, grad_bias, None


_linear_op.register_autograd(_backward, setup_context=_setup_context)


def bitmat_linear(
    x: torch.Tensor,
    packed: torch.Tensor,
    scale: torch.Tensor,
    *,
    in_features: int,
    weight_bits: float = 1.58,
    activation_bits: int | None = 8,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    quantized: QuantizedActivations | None = None,
) -> torch.Tensor:
    """Linear layer with packed low-bit weights: y = Q(x) @ (codes * scale)^T + bias.

    x: float16/bfloat16/float32 [..., in_features]. packed: uint8 [N, ceil(K/4)] (weight_bits=1.58)
    or [N, ceil(K/8)] (weight_bits=1) from pack_ternary/pack_binary. scale: float32 [1]
    (per-tensor) or [N, 1] / [N] (per-channel). activation_bits=8 quantizes x per token to int8
    (BitNet's W1.58A8, exact int32 sums); None keeps x as is (weight-only). Returns x's dtype,
    shape [..., N]. CUDA tensors run Triton kernels; other devices run the pure-torch reference.

    quantized (activation_bits=8, inference): Q(x) computed beforehand, e.g. by rms_norm_quantize along with x;
    the Triton kernels then skip their own quantization of x. It must be quantize_activations(x, eps=eps) of
    this very x: its eps and shapes are checked, its values are trusted. Ignored where the op itself runs
    (torch.compile, gradients) and by the reference, which compute the same values from x.
    """
    fn = "bitmat_linear"
    fmt = weight_format(weight_bits, fn)
    check_tensor(fn, "x", x, dtypes=FLOAT_DTYPES, min_ndim=1)
    check_tensor(fn, "packed", packed, ndim=2)
    check_packed(fn, packed, in_features, fmt)
    n = packed.shape[0]
    if n == 0:
        raise ValueError(f"{fn}: argument 'packed' must have at least one output row, got shape {tuple(packed.shape)}")
    if x.shape[-1] != in_features:
        raise ValueError(
            f"{fn}: argument 'x' must have in_features={in_features} as its last dimension, got shape {tuple(x.shape)}"
        )
    check_tensor(fn, "scale", scale, dtypes=(torch.float32,))
    if scale.numel() not in (1, n) or (scale.dim() == 2 and scale.shape[1] != 1) or scale.dim() > 2:
        raise ValueError(
            f"{fn}: argument 'scale' must have shape [1], [{n}] or [{n}, 1] for {n} output rows, "
            f"got {tuple(scale.shape)}"
        )
    if bias is not None:
        check_tensor(fn, "bias", bias, dtypes=FLOAT_DTYPES, ndim=1)
        if bias.shape[0] != n:
            raise ValueError(f"{fn}: argument 'bias' must have shape [{n}], got {tuple(bias.shape)}")
    if activation_bits not in (8, None):
        raise ValueError(f"{fn}: argument 'activation_bits' must be 8 or None (weight-only), got {activation_bits!r}")
    check_same_device(fn, x=x, packed=packed, scale=scale, bias=bias)
    if quantized is not None:
        _check_quantized(fn, quantized, x, activation_bits, eps)
    # Eager inference skips the custom-op machinery (autograd wrapper and dispatcher: tens of
    # microseconds of host time a call, more than a decode kernel); torch.compile and anything that
    # needs gradients go through the op.
    needs_op = torch.compiler.is_compiling() or (
        torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad))
    )
    if quantized is not None and not needs_op and use_triton(x):
        from .kernel import linear_triton

        return linear_triton(
            x.contiguous(), packed, scale.contiguous(), in_features, fmt, activation_bits,
            None if bias is None else bias.contiguous(), eps, quantized=quantized,
        )  # fmt: skip
    return (_linear_op if needs_op else _linear_impl)(
        x.contiguous(),
        packed,
        scale.contiguous(),
        in_features,
        fmt,
        activation_bits,
        None if bias is None else bias.contiguous(),
        _check_eps(fn, eps),
    )


def _check_quantized(fn: str, q: object, x: torch.Tensor, activation_bits: int | None, eps: float) -> None:
    if not isinstance(q, QuantizedActivations):
        raise TypeError(f"{fn}: argument 'quantized' must be a QuantizedActivations, got {type(q).__name__}")
    if activation_bits != 8:
        raise ValueError(f"{fn}: argument 'quantized' needs activation_bits=8, got {activation_bits!r}")
    if q.eps != eps:
        raise ValueError(f"{fn}: argument 'quantized' was made with eps={q.eps}, but this call has eps={eps}")
    tokens = x.numel() // x.shape[-1]
    ok = (
        q.values.dtype == torch.int8 and q.values.shape == x.shape
        and q.scale.dtype == torch.float32 and q.scale.shape == (*x.shape[:-1], 1)
        and q.row_sum.dtype == torch.int32 and q.row_sum.shape == (tokens,)
        and all(t.device == x.device and t.is_contiguous() for t in (q.values, q.scale, q.row_sum))
    )  # fmt: skip
    if not ok:
        raise ValueError(
            f"{fn}: argument 'quantized' does not match x of shape {tuple(x.shape)}: values "
            f"{q.values.dtype} {tuple(q.values.shape)}, scale {q.scale.dtype} {tuple(q.scale.shape)}, row_sum "
            f"{q.row_sum.dtype} {tuple(q.row_sum.shape)} (expected int8 x's shape, float32 [..., 1], int32 "
            f"[{tokens}], contiguous, on x's device)"
        )


def dequantize(
    packed: torch.Tensor,
    scale: torch.Tensor,
    *,
    in_features: int,
    weight_bits: float = 1.58,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The dense weight codes * scale, shape [N, in_features] (for merging, export and debugging)."""
    fn = "dequantize"
    fmt = weight_format(weight_bits, fn)
    check_packed(fn, packed, in_features, fmt)
    check_tensor(fn, "scale", scale, dtypes=(torch.float32,))
    if use_triton(packed) and not torch.compiler.is_compiling():
        from ..pack.kernel import unpack_triton

        return unpack_triton(packed, in_features, fmt, scale=scale.float(), dtype=dtype)
    from ..pack import _unpack_op

    codes = _unpack_op(packed, in_features, fmt)
    return (codes.to(torch.float32) * scale.reshape(-1, 1)).to(dtype)


__all__ = ["bitmat_linear", "dequantize"]
