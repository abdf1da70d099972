"""One matmul for sibling BitLinear layers that read the same input (q/k/v, gate/up).

At one token a layer's matmul is a few microseconds of launch and latency whatever its size, and each W1.58A8
call also quantizes its input. A Llama decoder layer makes seven such calls; with q/k/v and gate/up fused it
makes four, each on a larger weight that reads closer to memory speed.

``fuse_projections(model)`` stacks the packed weights of each group row-wise into one
:class:`FusedBitLinear` (per-row scales, so members with different per-tensor scales fuse exactly). The members
stay in place, with the same names, state_dict keys and API; their packed buffers become views into the fused
weight (no extra memory), and their forward returns their slice of one shared product:

* the first member called with an input computes the whole product and keeps it until every member has taken
  its slice from the same input tensor (checked by identity and version counter), so a model that calls its
  projections in any order is served by one matmul; any other call computes afresh, so results never depend on
  the order (only the kernel's row blocks differ: outputs match the unfused layers to rounding);
* a member whose packed buffers were replaced (``pack_weights``, ``restore_latent_weights``, ``.to()``,
  assignment) dissolves its group at its next call, and every member runs on its own buffers again.

Inference only: members must be packed-only (``drop_latent_weights()``). ``unfuse_projections`` undoes it.

``fuse_norms(model)`` does the same for the step before: a Llama-style RMSNorm whose output feeds W1.58A8
layers computes their int8 activations in its own kernel (``bitmat_kernels.rms_norm_quantize``), and the
layers skip their quantize kernel. ``unfuse_norms`` undoes it. ``fuse_gated_mlps(model)`` does it for
SiLU(gate) * up before an A8 down projection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import bitmat_kernels as bk
import torch
import torch.nn.functional as F
from bitmat_kernels.backend import use_triton
from torch import nn

from ._checks import check_input
from .ffn import BitFFN
from .linear import QUANTIZED_ATTR, BitLinear, apply_keeping_float32_scale, packed_matmul, tensor_version
from .norm import RMSNorm

logger = logging.getLogger(__name__)

DEFAULT_GROUPS: tuple[tuple[str, ...], ...] = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))
"""Child names of sibling projections that read the same input (Llama, Mistral, Qwen, BitNet, bitmat-nn)."""

_FUSED_NAME = "bitmat_fused_{}"  # the FusedBitLinear's attribute name in the parent module


class FusedBitLinear(nn.Module):
    """The stacked packed weights of several packed-only BitLinear layers with one input; see the module doc."""

    def __init__(self, members: Sequence[BitLinear]):
        super().__init__()
        why = fusable(members)
        if why:
            raise ValueError(f"FusedBitLinear: cannot fuse these layers: {why}")
        first = members[0]
        self.in_features = first.in_features
        self.weight_bits, self.activation_bits, self.eps = first.weight_bits, first.activation_bits, first.eps
        self.out_features = sum(m.out_features for m in members)
        scales = [m.weight_scale.reshape(-1).expand(m.out_features) for m in members]
        biases = [m.bias for m in members]
        has_bias = any(b is not None for b in biases)
        bias_dtype = next((b.dtype for b in biases if b is not None), None)
        with torch.no_grad():
            packed = torch.cat([m.packed_weight for m in members], dim=0)
            scale = torch.cat(scales).to(torch.float32).contiguous()
            bias = None
            if has_bias:  # members without a bias add zeros (on the weights' device: cat needs one device)
                bias = torch.cat(
                    [
                        b.detach().to(packed.device, bias_dtype)
                        if b is not None
                        else torch.zeros(m.out_features, dtype=bias_dtype, device=packed.device)
                        for m, b in zip(members, biases)
                    ]
                )
        # non-persistent: the members' own state_dict entries stay the checkpoint format
        self.register_buffer("packed_weight", packed, persistent=False)
        self.register_buffer("weight_scale", scale, persistent=False)
        self.register_buffer("bias", bias, persistent=False)
        self.bounds: list[tuple[int, int]] = []
        self._members: list[BitLinear] = list(members)
        self._views: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._scale_versions: list[int] = []  # an in-place change of a copied per-tensor scale shows here
        self._pending: tuple | None = None
        lo = 0
        for i, m in enumerate(members):
            hi = lo + m.out_features
            self.bounds.append((lo, hi))
            m.packed_weight = packed[lo:hi]
            if m.weight_scale.numel() == m.out_features:  # per-channel: a view too
                m.weight_scale = scale[lo:hi].reshape(m.weight_scale.shape)
            # a per-tensor scale stays the member's own tensor, copied into the group's rows: loading or
            # assigning weights dissolves the group (BitLinear), so the copy cannot go stale unnoticed
            self._views.append((m.packed_weight, m.weight_scale))
            self._scale_versions.append(m.weight_scale._version)
            m._fused_group = (self, i)  # a tuple: not registered as a submodule (no cycle in the module tree)
            lo = hi

    def _apply(self, fn, recurse=True):
        apply_keeping_float32_scale(self, super()._apply, fn, recurse)
        return self

    def extra_repr(self) -> str:
        sizes = "+".join(str(hi - lo) for lo, hi in self.bounds)
        return f"in_features={self.in_features}, out_features={sizes}, weight_bits={self.weight_bits}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The whole product [..., sum of the members' out_features]."""
        return packed_matmul(self, x, self.packed_weight, self.weight_scale, self.bias)

    def intact(self, index: int) -> bool:
        """Whether member `index` still holds the views this group made (else its weights changed)."""
        m = self._members[index]
        packed, scale = self._views[index]
        if m.packed_weight is not packed or m.weight_scale is not scale or m.weight is not None:
            return False
        # (a compiled graph cannot branch on version counters: there the identity checks are the guard)
        return torch.compiler.is_compiling() or scale._version == self._scale_versions[index]

    def member_output(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Member `index`'s output for x: its slice of the shared product (computed by the first member to ask)."""
        compiling = torch.compiler.is_compiling()
        # (an inference tensor has no version counter: within one layer's calls, its identity is trusted)
        version = None if compiling else tensor_version(x)
        pending = self._pending
        if pending is not None and pending[0] is x and pending[1] == version and not pending[2][index]:
            y = pending[3]
            served = tuple(s or j == index for j, s in enumerate(pending[2]))
            self._pending = None if all(served) else (x, version, served, y)
        else:
            y = self(x)
            served = tuple(j == index for j in range(len(self.bounds)))
            self._pending = (x, version, served, y)
        lo, hi = self.bounds[index]
        return y[..., lo:hi]

    def dissolve(self) -> None:
        """Every member gets its own copy of its packed buffers back and runs alone; this module keeps no weights
        (it stays in the module tree, which may be under iteration now; unfuse_projections removes it)."""
        for i, m in enumerate(self._members):
            if m._fused_group is None or m._fused_group[0] is not self:
                continue
            packed, scale = self._views[i]
            with torch.no_grad():
                if m.packed_weight is packed:
                    m.packed_weight = packed.clone()
                if m.weight_scale is scale and scale.numel() > 1:
                    m.weight_scale = scale.clone()
            m._fused_group = None
        self._members, self._views, self._scale_versions, self._pending, self.bounds = [], [], [], None, []
        for name in ("packed_weight", "weight_scale"):  # new empty tensors: a [:0] view would keep the storage
            t = getattr(self, name)
            setattr(self, name, t.new_empty((0, *t.shape[1:])))
        self.bias = None


def fusable(members: Sequence[nn.Module]) -> str:
    """Why these layers cannot share one matmul ("" if they can)."""
    if len(members) < 2:
        return "fewer than two layers"
    for m in members:
        if not isinstance(m, BitLinear):
            return f"{type(m).__name__} is not a BitLinear"
        if m.weight is not None:
            return "a layer still has latent weights (call drop_latent_weights() first: fusion is for inference)"
        if m.norm is not None:
            return "a layer normalizes its own input"
        if getattr(m, "_fused_group", None) is not None:
            return "a layer is already fused"
        if m.packed_weight.is_meta:
            return "a layer's weights are on the meta device"
    first = members[0]
    for m in members[1:]:
        for attr in ("in_features", "weight_bits", "activation_bits", "eps"):
            if getattr(m, attr) != getattr(first, attr):
                return f"{attr} differs ({getattr(first, attr)} vs {getattr(m, attr)})"
        if m.packed_weight.device != first.packed_weight.device:
            return f"devices differ ({first.packed_weight.device} vs {m.packed_weight.device})"
    return ""


def fuse_projections(model: nn.Module, groups: Iterable[Sequence[str]] = DEFAULT_GROUPS) -> int:
    """Fuses every set of sibling packed-only BitLinear layers named as in one of `groups` (children of one
    module); returns how many groups were fused. Sets that cannot fuse (latent weights, different settings or
    devices, a layer with its own input norm) are left as they are and logged."""
    given = groups
    groups = [] if isinstance(given, str) else [g if isinstance(g, str) else tuple(g) for g in given]
    if not groups or any(isinstance(g, str) or len(g) < 2 or not all(isinstance(n, str) for n in g) for g in groups):
        raise TypeError(
            "fuse_projections: argument 'groups' must be a sequence of groups of at least two child names, "
            f"e.g. (('q_proj', 'k_proj', 'v_proj'),), got {given!r}"
        )
    fused = 0
    for parent_name, parent in list(model.named_modules()):
        for group in groups:
            members = [getattr(parent, name, None) for name in group]
            if any(m is None for m in members):
                continue
            why = fusable(members)
            if why:
                logger.debug("fuse_projections: %s %s not fused: %s", parent_name or "<model>", group, why)
                continue
            # (replaces a dissolved group of the same layers, if any)
            setattr(
                parent,
                _FUSED_NAME.format("_".join(name.removesuffix("_proj") for name in group)),
                FusedBitLinear(members),
            )
            fused += 1
    logger.info("fuse_projections: %d groups of sibling BitLinear layers now share one matmul each", fused)
    return fused


def unfuse_projections(model: nn.Module) -> int:
    """Undoes fuse_projections: every member owns its packed buffers again; returns how many groups dissolved."""
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, FusedBitLinear)
    ]
    live = 0
    for parent, name, child in found:
        live += bool(child.bounds)
        child.dissolve()
        delattr(parent, name)
    return live


# --------------------------------------------------------------------------------------- norm + quantization

DEFAULT_NORM_CONSUMERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),  # Llama, Mistral, Qwen2
    ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
    ("attn_sub_norm", ("o_proj",)),  # transformers' BitNet
    ("ffn_sub_norm", ("down_proj",)),
    ("mixer_norm", ("mixer.q_proj", "mixer.k_proj", "mixer.v_proj")),  # bitmat-nn's BitNetBlock
    ("ffn_norm", ("ffn.gate_proj", "ffn.up_proj")),
    ("sub_norm", ("o_proj",)),  # bitmat-nn's BitAttention / BitFFN with subln
    ("sub_norm", ("down_proj",)),
)
"""(norm, the layers that read its output), as paths under one module, for `fuse_norms`."""

# RMSNorms computing `weight * (x * rsqrt(mean(x^2) + eps)).to(x.dtype)` in float32 (not Gemma's 1 + weight)
_LLAMA_STYLE_NORMS = frozenset(
    {"LlamaRMSNorm", "MistralRMSNorm", "MixtralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "BitNetRMSNorm"}
)


class QuantizingNorm:
    """Mixed into a norm's class by `fuse_norms`: in eager inference on the Triton path, the norm and the A8
    quantization of its output run as one kernel (bitmat_kernels.rms_norm_quantize), and the output carries
    its int8 codes to the BitLinear layers that read it. Elsewhere (torch.compile, gradients, CPU) it is the
    original norm."""

    _bitmat_base: type
    _bitmat_quant_eps: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if (
            torch.compiler.is_compiling()  # inductor fuses the original norm with its neighbours
            or not use_triton(x)
            or (w is not None and w.dtype != x.dtype)  # the formulas differ there (promotion vs cast)
            or (torch.is_grad_enabled() and (x.requires_grad or (w is not None and w.requires_grad)))
        ):
            return super().forward(x)
        y, q = bk.rms_norm_quantize(x, w, eps=_norm_eps(self), quant_eps=self._bitmat_quant_eps)
        setattr(y, QUANTIZED_ATTR, (tensor_version(y), q))
        return y


class QuantizingGatedMLP:
    """Mixed into a gated MLP's class by `fuse_gated_mlps`: in eager inference on the Triton path, SiLU(gate) * up
    and the A8 quantization of the product for down_proj run as one kernel (bitmat_kernels.silu_mul_quantize,
    reading the two halves of a fused gate/up product in place). Elsewhere it is the original MLP."""

    _bitmat_base: type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling() or not use_triton(x):
            return super().forward(x)
        if isinstance(self, BitFFN):
            check_input("BitFFN.forward", "x", x, last_dim=self.hidden_size)
        gate, up = self.gate_proj(x), self.up_proj(x)
        if torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
            return self.down_proj(F.silu(gate) * up)
        h, q = bk.silu_mul_quantize(gate, up, quant_eps=self.down_proj.eps)
        setattr(h, QUANTIZED_ATTR, (tensor_version(h), q))
        return self.down_proj(h)


_QUANTIZING_CLASSES: dict[tuple[type, type], type] = {}


def _norm_eps(norm: nn.Module) -> float:
    return norm.eps if isinstance(norm, RMSNorm) else norm.variance_epsilon


def _swap_class(module: nn.Module, mixin: type) -> None:
    """module's class becomes a subclass of (mixin, its class): same parameters, keys and isinstance checks."""
    base = type(module)
    cls = _QUANTIZING_CLASSES.get((mixin, base))
    if cls is None:
        cls = type(f"Quantizing{base.__name__}", (mixin, base), {"_bitmat_base": base})
        _QUANTIZING_CLASSES[(mixin, base)] = cls
    module.__class__ = cls


def _restore_classes(model: nn.Module, mixin: type) -> int:
    restored = 0
    for m in model.modules():
        if isinstance(m, mixin):
            m.__class__ = m._bitmat_base
            m.__dict__.pop("_bitmat_quant_eps", None)
            restored += 1
    return restored


def _quantized_reader_problem(readers: Sequence[nn.Module]) -> str:
    """Why these layers cannot take int8 activations made for them ("" if they can)."""
    for m in readers:
        if not isinstance(m, BitLinear):
            return f"{type(m).__name__} is not a BitLinear"
        if m.activation_bits != 8:
            return "a layer does not quantize its activations (weight-only)"
        if m.norm is not None:
            return "a layer normalizes its own input"
        if m.eps != readers[0].eps:
            return f"eps differs ({readers[0].eps} vs {m.eps})"
    return ""


def _get_path(root: nn.Module, path: str) -> nn.Module | None:
    for name in path.split("."):
        root = getattr(root, name, None)
        if not isinstance(root, nn.Module):
            return None
    return root


def norm_fusable(norm: nn.Module, consumers: Sequence[nn.Module]) -> str:
    """Why `norm` cannot quantize its output for `consumers` ("" if it can)."""
    if isinstance(norm, QuantizingNorm):
        return "already fused"
    if not (isinstance(norm, RMSNorm) or type(norm).__name__ in _LLAMA_STYLE_NORMS):
        return f"{type(norm).__name__} is not a Llama-style RMSNorm"
    if getattr(norm, "weight", None) is not None and norm.weight.dim() != 1:
        return "its weight is not a vector"
    return _quantized_reader_problem(consumers)


def fuse_norms(model: nn.Module, consumers: Iterable[tuple[str, Sequence[str]]] = DEFAULT_NORM_CONSUMERS) -> int:
    """Makes every Llama-style RMSNorm whose output feeds W1.58A8 BitLinear layers (named as in `consumers`:
    (norm path, reader paths) under one module) compute the readers' int8 activations in the same kernel;
    returns how many norms it changed. Outputs are unchanged: the codes are the ones each layer would
    compute from the norm's output (which matches the original norm to its float32 rounding), and any other
    input still quantizes as before. Parameters, state_dict keys and isinstance checks stay the same;
    `unfuse_norms` undoes it. What it saves: one pass over the activations per norm (the layers' quantize
    kernels), and the original norm's several elementwise kernels in eager mode (prefill)."""
    fused = 0
    for parent_name, parent in list(model.named_modules()):
        for norm_path, reader_paths in consumers:
            norm = _get_path(parent, norm_path)
            readers = [_get_path(parent, p) for p in reader_paths]
            if norm is None or any(r is None for r in readers):
                continue
            why = norm_fusable(norm, readers)
            if why:
                logger.debug("fuse_norms: %s.%s not fused: %s", parent_name or "<model>", norm_path, why)
                continue
            _swap_class(norm, QuantizingNorm)
            norm._bitmat_quant_eps = readers[0].eps
            fused += 1
    logger.info("fuse_norms: %d norms now quantize their output for the BitLinear layers that read it", fused)
    return fused


def unfuse_norms(model: nn.Module) -> int:
    """Undoes fuse_norms; returns how many norms it restored."""
    return _restore_classes(model, QuantizingNorm)


# SiLU-gated MLPs computing down_proj(act_fn(gate_proj(x)) * up_proj(x))
_GATED_MLPS = frozenset({"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP"})


def _is_silu(act: object) -> bool:
    # transformers' ACT2FN["silu"] is its own SiLUActivation (F.silu), "swish" is nn.SiLU
    return isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation"


def gated_mlp_fusable(mlp: nn.Module) -> str:
    """Why `mlp` cannot compute SiLU(gate) * up and its quantization in one kernel ("" if it can)."""
    if isinstance(mlp, QuantizingGatedMLP):
        return "already fused"
    if isinstance(mlp, BitFFN):
        if mlp.activation != "swiglu" or mlp.sub_norm is not None:
            return "not a plain SwiGLU BitFFN (ReLU^2, or a sub-norm before down_proj: see fuse_norms)"
    elif type(mlp).__name__ not in _GATED_MLPS:
        return f"{type(mlp).__name__} is not a known SiLU-gated MLP"
    elif not _is_silu(getattr(mlp, "act_fn", None)):
        return f"its activation is {type(getattr(mlp, 'act_fn', None)).__name__}, not SiLU"
    if not all(isinstance(getattr(mlp, n, None), nn.Module) for n in ("gate_proj", "up_proj", "down_proj")):
        return "gate_proj, up_proj or down_proj missing"
    return _quantized_reader_problem([mlp.down_proj])


def fuse_gated_mlps(model: nn.Module) -> int:
    """Makes every SiLU-gated MLP (Llama, Mistral, Qwen2, bitmat-nn's SwiGLU BitFFN) whose down_proj is a W1.58A8
    BitLinear compute SiLU(gate) * up and down_proj's int8 activations in one kernel; returns how many it
    changed. Outputs are unchanged (the codes are the ones down_proj would compute from the product, which
    matches torch's to the exponential's rounding); `unfuse_gated_mlps` undoes it. What it saves, in eager mode
    (prefill): the SiLU and multiply kernels and down_proj's quantize kernel, two passes over the product."""
    fused = 0
    for name, mlp in list(model.named_modules()):
        why = gated_mlp_fusable(mlp)
        if why:
            if "not a known" not in why:
                logger.debug("fuse_gated_mlps: %s not fused: %s", name or "<model>", why)
            continue
        _swap_class(mlp, QuantizingGatedMLP)
        fused += 1
    logger.info("fuse_gated_mlps: %d MLPs now quantize SiLU(gate) * up for down_proj in one kernel", fused)
    return fused


def unfuse_gated_mlps(model: nn.Module) -> int:
    """Undoes fuse_gated_mlps; returns how many MLPs it restored."""
    return _restore_classes(model, QuantizingGatedMLP)


__all__ = [
    "DEFAULT_GROUPS",
    "DEFAULT_NORM_CONSUMERS",
    "FusedBitLinear",
    "QuantizingGatedMLP",
    "QuantizingNorm",
    "fusable",
    "fuse_gated_mlps",
    "fuse_norms",
    "fuse_projections",
    "gated_mlp_fusable",
    "norm_fusable",
    "unfuse_gated_mlps",
    "unfuse_norms",
    "unfuse_projections",
]
