"""BitLinear: an nn.Linear that trains with full-precision latent weights (quantization-aware, with
straight-through estimators) and serves from packed ternary / binary weights (DESIGN §3, §4).

Training mode runs the fake-quantized forward

    y = F.linear(x + (Q(x) - x).detach(), W + (Q(W) - W).detach(), bias)

so gradients reach the latent weights, the inputs and the bias. Evaluation mode runs the packed
weights through ``bitmat_kernels.bitmat_linear`` (Triton on CUDA, the pure-torch reference
elsewhere); the packed copy is cached and rebuilt whenever the latent weight changes.
``drop_latent_weights()`` frees the latent weight for inference-only memory.
"""

from __future__ import annotations

import logging
import math

import bitmat_kernels as bk
import torch
import torch.nn.functional as F
from bitmat_kernels.formats import BINARY, TERNARY, packed_width, weight_format
from torch import nn

from ._checks import check_input, check_positive_int
from .norm import RMSNorm

logger = logging.getLogger(__name__)

# Bits per weight and packed widths are bitmat-kernels' to define (one place for the format).
_TERNARY, _BINARY = TERNARY, BINARY
# Keys of the state_dict metadata that describe a packed layer.
_META_FORMAT_VERSION = "bitmat_format_version"
_META_WEIGHT_BITS = "bitmat_weight_bits"


def _check_weight_bits(fn: str, weight_bits: object) -> float:
    """1.58 or 1, checked by bitmat-kernels' weight_format (same message, same rules)."""
    return 1.58 if weight_format(weight_bits, fn) == TERNARY else 1


def _check_activation_bits(fn: str, activation_bits: object) -> int | None:
    if activation_bits is None or (not isinstance(activation_bits, bool) and activation_bits == 8):
        return activation_bits if activation_bits is None else 8
    raise ValueError(f"{fn}: argument 'activation_bits' must be 8 or None (weight-only), got {activation_bits!r}")


def _check_eps(fn: str, eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"{fn}: argument 'eps' must be a positive finite float, got {eps!r}")
    return float(eps)


def fake_quantize_activations(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x + (Q(x) - x).detach() with Q the per-token absmax int8 quantizer, dequantized to x's dtype."""
    with torch.no_grad():
        xd = x.detach()
        # The kernels quantize fp16/bf16/fp32; float64 (used for exact gradient checks) goes through fp32.
        xq, scale = bk.quantize_activations(xd.float() if xd.dtype == torch.float64 else xd, eps=eps)
        compute = torch.float64 if x.dtype == torch.float64 else torch.float32
        q = (xq.to(compute) * scale.to(compute)).to(x.dtype)
    return x + (q - x).detach()


class BitLinear(nn.Linear):
    """Linear layer with ternary (weight_bits=1.58) or binary (weight_bits=1) weights.

    Args:
        in_features, out_features, bias, device, dtype: as ``nn.Linear``.
        eps: floor of the weight and activation quantizers.
        weight_bits: 1.58 (absmean ternary, BitNet b1.58) or 1 (sign of the centred weight, BitNet).
        activation_bits: 8 for per-token int8 activations (W1.58A8), None for weight-only.
        per_channel: one weight scale per output row instead of one per tensor.
        input_norm: put an RMSNorm on the input (the b1.58 training recipe); off by default so a
            converted model computes its float original up to quantization.
    """

    _fused_group: tuple | None = None  # (FusedBitLinear, index) after fuse.fuse_projections

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        eps: float = 1e-5,
        *,
        weight_bits: float = 1.58,
        activation_bits: int | None = 8,
        per_channel: bool = False,
        input_norm: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        fn = "BitLinear"
        check_positive_int(fn, "in_features", in_features)
        check_positive_int(fn, "out_features", out_features)
        weight_bits = _check_weight_bits(fn, weight_bits)
        activation_bits = _check_activation_bits(fn, activation_bits)
        eps = _check_eps(fn, eps)
        for name, flag in (("bias", bias), ("per_channel", per_channel), ("input_norm", input_norm)):
            if not isinstance(flag, bool):
                raise TypeError(f"{fn}: argument '{name}' must be a bool, got {flag!r}")
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.eps = eps
        self.weight_bits = weight_bits
        self.activation_bits = activation_bits
        self.per_channel = per_channel
        self.input_norm = input_norm
        self.norm = RMSNorm(in_features, device=device, dtype=dtype) if input_norm else None
        self._init_packed_buffers(device)

    # ------------------------------------------------------------------ construction helpers

    @property
    def _fmt(self) -> str:
        return _TERNARY if self.weight_bits == 1.58 else _BINARY

    @property
    def packed_in_features(self) -> int:
        """Bytes per packed row."""
        return packed_width(self.in_features, self._fmt)

    @property
    def has_latent_weights(self) -> bool:
        return self.weight is not None

    def _scale_shape(self) -> tuple[int, ...]:
        return (self.out_features, 1) if self.per_channel else (1,)

    def _init_packed_buffers(self, device) -> None:
        # Non-persistent while latent weights exist: the state_dict then holds exactly nn.Linear's keys.
        persistent = self.weight is None
        packed = torch.zeros(self.out_features, self.packed_in_features, dtype=torch.uint8, device=device)
        scale = torch.ones(self._scale_shape(), dtype=torch.float32, device=device)
        self.register_buffer("packed_weight", packed, persistent=persistent)
        self.register_buffer("weight_scale", scale, persistent=persistent)
        self._packed_key = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, **kwargs) -> BitLinear:
        """A BitLinear that shares `linear`'s weight and bias Parameters (same device and dtype)."""
        if not isinstance(linear, nn.Linear):
            got = type(linear).__name__
            raise TypeError(f"BitLinear.from_linear: argument 'linear' must be an nn.Linear, got {got}")
        for key in ("device", "dtype", "in_features", "out_features", "bias"):
            if key in kwargs:
                raise TypeError(f"BitLinear.from_linear: argument '{key}' is taken from 'linear' and cannot be passed")
        weight = linear.weight
        layer = cls(
            linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta", dtype=weight.dtype,
            **kwargs,
        )  # fmt: skip
        layer.weight = weight
        layer.bias = linear.bias
        layer._materialize(weight.device, weight.dtype)
        layer.train(linear.training)
        return layer

    @classmethod
    def from_packed(
        cls,
        packed_weight: torch.Tensor,
        weight_scale: torch.Tensor,
        in_features: int,
        bias: torch.Tensor | None = None,
        **kwargs,
    ) -> BitLinear:
        """An inference-only BitLinear (no latent weights) around already packed weights, in eval mode."""
        fn = "BitLinear.from_packed"
        for key in ("out_features", "device"):
            if key in kwargs:
                raise TypeError(f"{fn}: argument '{key}' is taken from 'packed_weight' and cannot be passed")
        check_positive_int(fn, "in_features", in_features)
        weight_bits = _check_weight_bits(fn, kwargs.get("weight_bits", 1.58))
        packed, scale = _check_packed_pair(fn, packed_weight, weight_scale, in_features, weight_bits)
        n = packed.shape[0]
        inferred = scale.numel() != 1 or scale.dim() == 2
        requested = kwargs.get("per_channel", inferred)
        if n > 1 and requested != inferred:
            raise ValueError(
                f"{fn}: per_channel={requested} does not match argument 'weight_scale' of shape {tuple(scale.shape)} "
                f"for {n} output rows"
            )
        kwargs["per_channel"] = requested
        if bias is not None:
            if not isinstance(bias, torch.Tensor) or not bias.is_floating_point() or tuple(bias.shape) != (n,):
                got = f"shape {tuple(bias.shape)}, dtype {bias.dtype}" if isinstance(bias, torch.Tensor) else type(bias)
                raise ValueError(f"{fn}: argument 'bias' must be a floating tensor of shape [{n}], got {got}")
            if bias.device != packed.device:
                raise ValueError(f"{fn}: 'bias' is on {bias.device} but 'packed_weight' is on {packed.device}")
        dtype = kwargs.pop("dtype", None) or (bias.dtype if bias is not None else None)
        layer = cls(in_features, n, bias=bias is not None, device="meta", dtype=dtype, **kwargs)
        layer.weight = None
        layer._materialize(packed.device, dtype)
        layer.packed_weight = packed.contiguous()
        layer.weight_scale = scale.reshape(layer._scale_shape()).contiguous()
        if bias is not None:
            layer.bias = nn.Parameter(bias.detach().to(dtype), requires_grad=bias.requires_grad)
        return layer.eval()

    def _materialize(self, device, dtype) -> None:
        """Real (non-meta) buffers and norm on `device`, after a construction on the meta device."""
        self._init_packed_buffers(device)
        if self.norm is not None:
            self.norm = RMSNorm(self.in_features, device=device, dtype=dtype)

    # ------------------------------------------------------------------ quantization

    def _require_latent(self, what: str) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError(
                f"BitLinear.{what}: this layer's latent weights were dropped (drop_latent_weights()); it is "
                "inference-only. Keep the latent weights (or reload them) to train or requantize it."
            )
        return self.weight

    def _quantize(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._fmt == _TERNARY:
            return bk.ternarize(w, per_channel=self.per_channel, eps=self.eps)
        return bk.binarize(w, per_channel=self.per_channel)

    def quantized_weight_for_training(self) -> torch.Tensor:
        """W + (Q(W) - W).detach(): the quantized weight in the forward, the identity in the backward."""
        w = self._require_latent("quantized_weight_for_training")
        with torch.no_grad():
            codes, scale = self._quantize(w.detach())
            compute = torch.float64 if w.dtype == torch.float64 else torch.float32
            q = (codes.to(compute) * scale.to(compute)).to(w.dtype)
        return w + (q - w).detach()

    def _cache_key(self) -> tuple | None:
        w = self.weight
        version = tensor_version(w)
        if version is None:  # an inference tensor: never trust the cache
            return None
        return (version, w.data_ptr(), w.device, w.dtype, self.weight_bits, self.per_channel, self.eps)

    def pack_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Re)compute packed_weight and weight_scale from the latent weight and return them."""
        w = self._require_latent("pack_weights")
        self._leave_fused_group()
        key = self._cache_key()
        with torch.no_grad():
            if w.is_meta:
                packed = torch.empty(self.out_features, self.packed_in_features, dtype=torch.uint8, device="meta")
                scale = torch.empty(self._scale_shape(), dtype=torch.float32, device="meta")
            else:
                codes, scale = self._quantize(w.detach())
                packed = bk.pack(codes, self.weight_bits)
                scale = scale.reshape(self._scale_shape()).to(torch.float32)
        # Assigning to a registered buffer name keeps its persistence flag.
        self.packed_weight = packed
        self.weight_scale = scale
        self._packed_key = key
        return packed, scale

    def _current_packed(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.weight is None:
            return self.packed_weight, self.weight_scale
        key = self._cache_key()
        if key is None or key != self._packed_key:
            return self.pack_weights()
        return self.packed_weight, self.weight_scale

    def drop_latent_weights(self) -> None:
        """Free the latent weight; the layer becomes inference-only (packed weights, persistent in state_dict)."""
        if self.weight is None:
            return
        self._current_packed()
        self.weight = None
        self._non_persistent_buffers_set.discard("packed_weight")
        self._non_persistent_buffers_set.discard("weight_scale")
        self._packed_key = None
        logger.debug("BitLinear(%d, %d): latent weights dropped", self.in_features, self.out_features)

    def restore_latent_weights(self, dtype: torch.dtype | None = None) -> None:
        """Give a packed-only layer latent weights again, so it can train: the dense weight whose
        quantization gives back exactly its codes and scale. A no-op when latent weights exist.

        dtype: of the new latent weight (default: the bias's dtype, else torch's default dtype).
        Build optimizers after this call: it creates a new Parameter.
        """
        if self.weight is not None:
            return
        self._leave_fused_group()
        if dtype is None:
            dtype = self.bias.dtype if self.bias is not None else torch.get_default_dtype()
        with torch.no_grad():
            latent = self._latent_from_packed(self.packed_weight, self.weight_scale)
        self.weight = nn.Parameter(latent.to(dtype).contiguous())
        self._non_persistent_buffers_set.update({"packed_weight", "weight_scale"})
        self._packed_key = None
        logger.debug(
            "BitLinear(%d, %d): latent weights restored from the packed weights", self.in_features, self.out_features
        )

    def _latent_from_packed(self, packed: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """A dense latent weight whose quantization gives back exactly (codes, scale).

        Absmean ternarization is not idempotent: the mean |codes * gamma| is gamma times the fraction
        of non-zero codes, so the plain dequantized weight would requantize to a smaller scale.
        Dividing by that fraction restores gamma (binary codes * beta already requantize exactly).
        """
        codes = bk.unpack(packed, self.in_features, self.weight_bits).to(torch.float32)
        dense = codes * scale.reshape(-1, 1).to(torch.float32)
        if self._fmt == _TERNARY:
            nonzero = (codes != 0).to(torch.float32)
            fraction = nonzero.mean(-1, keepdim=True) if self.per_channel else nonzero.mean()
            dense = dense / torch.where(fraction > 0, fraction, torch.ones_like(fraction))
        return dense

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """codes * scale as a dense [out_features, in_features] tensor (the weight the layer computes with)."""
        if self.weight is not None:
            with torch.no_grad():
                codes, scale = self._quantize(self.weight.detach())
                return (codes.to(torch.float32) * scale).to(dtype or self.weight.dtype)
        return bk.dequantize(
            self.packed_weight, self.weight_scale, in_features=self.in_features, weight_bits=self.weight_bits,
            dtype=dtype or torch.float32,
        )  # fmt: skip

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input("BitLinear.forward", "x", x, last_dim=self.in_features)
        if self.norm is not None:
            x = self.norm(x)
        if self.training:
            if self.weight is not None:
                return self._forward_fake_quant(x)
            if torch.is_grad_enabled():
                raise RuntimeError(
                    "BitLinear.forward: cannot train this layer: its latent weights were dropped "
                    "(drop_latent_weights()), so it is inference-only. Call .eval() or run under torch.no_grad() "
                    "to use it, or keep the latent weights to train."
                )
        return self._forward_packed(x)

    def _forward_fake_quant(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if x.device != w.device:
            raise ValueError(f"BitLinear.forward: argument 'x' is on {x.device} but the weight is on {w.device}")
        if x.dtype != w.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(
                f"BitLinear.forward: argument 'x' has dtype {x.dtype} but the layer's weight has dtype {w.dtype}; "
                "cast one of them (or use torch.autocast)"
            )
        if self.activation_bits is not None:
            x = fake_quantize_activations(x, self.eps)
        return F.linear(x, self.quantized_weight_for_training(), self.bias)

    def _forward_packed(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused_group is not None:  # fuse.fuse_projections: one matmul shared with sibling layers
            fusion, index = self._fused_group
            if not fusion.intact(index):
                fusion.dissolve()  # this layer's weights changed since fusion: every member runs alone again
            elif x.dtype != torch.float64:  # (float64 serves exact checks through the dense path below)
                return fusion.member_output(index, x)
        if self.weight is not None and torch.compiler.is_compiling():
            # A compiled graph cannot branch on the weight's version counter, so it quantizes on the fly:
            # never stale. Drop the latent weights for compiled inference that reads only packed bytes.
            with torch.no_grad():
                codes, scale = self._quantize(self.weight.detach())
                packed, scale = bk.pack(codes, self.weight_bits), scale.reshape(self._scale_shape())
        else:
            packed, scale = self._current_packed()
        return packed_matmul(self, x, packed, scale, self.bias)

    # ------------------------------------------------------------------ torch.nn plumbing

    def _apply(self, fn, recurse=True):
        apply_keeping_float32_scale(self, super()._apply, fn, recurse)
        self._packed_key = None
        return self

    def _leave_fused_group(self) -> None:
        if self._fused_group is not None:
            self._fused_group[0].dissolve()

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._fused_group is not None:
            # fused buffers are views of one stacked tensor: save each as its own (safetensors refuses shared
            # storage, and the checkpoint format is per layer)
            for name in ("packed_weight", "weight_scale"):
                if prefix + name in destination and destination[prefix + name]._base is not None:
                    destination[prefix + name] = destination[prefix + name].clone()
        metadata = getattr(destination, "_metadata", None)
        if self.weight is None and metadata is not None and prefix[:-1] in metadata:
            metadata[prefix[:-1]][_META_FORMAT_VERSION] = bk.FORMAT_VERSION
            metadata[prefix[:-1]][_META_WEIGHT_BITS] = self.weight_bits

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors):
        packed_key, scale_key, weight_key = prefix + "packed_weight", prefix + "weight_scale", prefix + "weight"
        has_packed = packed_key in state_dict or scale_key in state_dict
        has_latent = weight_key in state_dict
        if has_packed:
            version = local_metadata.get(_META_FORMAT_VERSION)
            if version is not None and version not in bk.SUPPORTED_FORMAT_VERSIONS:
                errors.append(
                    f"{prefix}packed_weight: packed format version {version} is not supported by this "
                    f"bitmat-kernels (supports {bk.SUPPORTED_FORMAT_VERSIONS})"
                )
                return
            bits = local_metadata.get(_META_WEIGHT_BITS)
            if bits is not None and not math.isclose(bits, self.weight_bits):
                errors.append(
                    f"{prefix}packed_weight: the checkpoint holds weight_bits={bits} but the layer has "
                    f"weight_bits={self.weight_bits}"
                )
                return
        if self.weight is not None and has_packed:
            packed, scale = state_dict.pop(packed_key, None), state_dict.pop(scale_key, None)
            if not has_latent:
                if packed is None or scale is None:
                    missing_keys.append(scale_key if packed is not None else packed_key)
                else:
                    try:
                        packed, scale = _check_packed_pair(
                            "BitLinear.load_state_dict", packed, scale, self.in_features, self.weight_bits,
                            out_features=self.out_features, per_channel=self.per_channel,
                        )  # fmt: skip
                    except (TypeError, ValueError) as e:
                        errors.append(f"{prefix}packed_weight: {e}")
                        return
                    state_dict[weight_key] = self._latent_from_packed(packed, scale).to(self.weight.dtype)
                    logger.info(
                        "%s: loaded packed weights into a layer with latent weights; its latent weight is now the "
                        "dequantized %s weight (rescaled so that it requantizes to exactly the loaded codes and scale)",
                        prefix[:-1] or "BitLinear",
                        self._fmt,
                    )
        elif self.weight is None and has_latent:
            dense = state_dict.pop(weight_key)
            if not has_packed:
                expected = (self.out_features, self.in_features)
                if not isinstance(dense, torch.Tensor) or not dense.is_floating_point() or dense.shape != expected:
                    is_tensor = isinstance(dense, torch.Tensor)
                    got = f"shape {tuple(dense.shape)}, dtype {dense.dtype}" if is_tensor else type(dense).__name__
                    errors.append(f"{weight_key}: expected a floating weight of shape {list(expected)}, got {got}")
                    return
                codes, scale = self._quantize(dense.detach())
                state_dict[packed_key] = bk.pack(codes, self.weight_bits)
                state_dict[scale_key] = scale.reshape(self._scale_shape()).float()
                logger.info("%s: quantized a latent weight into an inference-only layer", prefix[:-1] or "BitLinear")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors)
        self._packed_key = None

    def extra_repr(self) -> str:
        parts = [
            f"in_features={self.in_features}",
            f"out_features={self.out_features}",
            f"bias={self.bias is not None}",
            f"weight_bits={self.weight_bits}",
            f"activation_bits={self.activation_bits}",
        ]
        if self.per_channel:
            parts.append("per_channel=True")
        if self.input_norm:
            parts.append("input_norm=True")
        if self.weight is None:
            parts.append("latent_weights=False")
        return ", ".join(parts)


def tensor_version(t: torch.Tensor) -> int | None:
    """t's version counter (it grows with every in-place change); None for inference tensors, which have none."""
    try:
        return t._version
    except RuntimeError:
        return None


QUANTIZED_ATTR = "_bitmat_quantized"
"""Attribute under which a norm fused by `fuse_norms` leaves (version, QuantizedActivations) on its output."""


def prequantized(x: torch.Tensor, eps: float) -> bk.QuantizedActivations | None:
    """The quantization of x that a fused norm made along with it (fuse.fuse_norms), if made with `eps` and x
    is unchanged since (its version counter; inference tensors have none and are taken as they are)."""
    tag = None if torch.compiler.is_compiling() else getattr(x, QUANTIZED_ATTR, None)
    if tag is None or tag[1].eps != eps or tag[0] != tensor_version(x):
        return None
    return tag[1]


def packed_matmul(layer, x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, bias) -> torch.Tensor:
    """x through packed weights with `layer`'s settings (in_features, weight_bits, activation_bits, eps): the
    Triton kernels (CUDA) or the reference, or a dense float64 product for exact checks. An A8 layer reuses
    the int8 activations that a fused norm computed with x (`fuse_norms`) instead of quantizing x again."""
    if bias is not None and bias.dtype != x.dtype:
        bias = bias.to(x.dtype)
    if x.dtype == torch.float64:  # the kernels stop at fp32; float64 serves exact checks
        if layer.activation_bits is not None:
            x = fake_quantize_activations(x, layer.eps)
        w = bk.dequantize(packed, scale, in_features=layer.in_features, weight_bits=layer.weight_bits)
        return F.linear(x, w.to(torch.float64), bias)
    quantized = prequantized(x, layer.eps) if layer.activation_bits == 8 else None
    return bk.bitmat_linear(
        x, packed, scale, in_features=layer.in_features, weight_bits=layer.weight_bits,
        activation_bits=layer.activation_bits, bias=bias, eps=layer.eps, quantized=quantized,
    )  # fmt: skip


def apply_keeping_float32_scale(module: nn.Module, apply, fn, recurse) -> None:
    """Module._apply (`apply`, the parent class's) for a module with a `weight_scale` buffer: .half() /
    .bfloat16() convert every floating buffer, but packed weights' scales stay float32."""
    scale = module._buffers.get("weight_scale")
    apply(fn, recurse)
    new = module._buffers.get("weight_scale")
    if scale is not None and new is not None and new.dtype != torch.float32:
        module._buffers["weight_scale"] = (
            torch.empty_like(new, dtype=torch.float32) if scale.is_meta else scale.to(new.device, torch.float32)
        )


def _check_packed_pair(
    fn: str,
    packed: object,
    scale: object,
    in_features: int,
    weight_bits: float,
    *,
    out_features: int | None = None,
    per_channel: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validates a (packed_weight, weight_scale) pair; returns them with the scale as float32."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.dim() != 2:
        got = f"dtype {packed.dtype}, shape {tuple(packed.shape)}" if isinstance(packed, torch.Tensor) else packed
        raise TypeError(f"{fn}: argument 'packed_weight' must be a 2-D uint8 tensor, got {got}")
    fmt = _TERNARY if weight_bits == 1.58 else _BINARY
    width = packed_width(in_features, fmt)
    n = packed.shape[0]
    if packed.shape[1] != width or n == 0 or (out_features is not None and n != out_features):
        rows = out_features if out_features is not None else "N>0"
        raise ValueError(
            f"{fn}: argument 'packed_weight' must have shape [{rows}, {width}] for in_features={in_features} "
            f"({fmt}), got {tuple(packed.shape)}"
        )
    if not isinstance(scale, torch.Tensor) or not scale.is_floating_point():
        got = f"dtype {scale.dtype}" if isinstance(scale, torch.Tensor) else type(scale).__name__
        raise TypeError(f"{fn}: argument 'weight_scale' must be a floating tensor, got {got}")
    allowed = {1: (1,), n: (n, 1)}
    if per_channel is not None:
        allowed = {n: (n, 1)} if per_channel else {1: (1,)}
    if scale.numel() not in allowed or scale.dim() > 2:
        raise ValueError(
            f"{fn}: argument 'weight_scale' must have shape {' or '.join(str(list(s)) for s in allowed.values())} "
            f"for {n} output rows, got {tuple(scale.shape)}"
        )
    if scale.device != packed.device:
        raise ValueError(f"{fn}: 'weight_scale' is on {scale.device} but 'packed_weight' is on {packed.device}")
    return packed, scale.to(torch.float32)
