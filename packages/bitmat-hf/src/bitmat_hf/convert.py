"""Conversion of transformers models to BitLinear layers, keeping their pretrained weights.

`convert_hf_model(model)` swaps every `nn.Linear` (except the LM head, the output embeddings and
anything in `modules_to_not_convert`) for a `bitmat_nn.BitLinear` whose latent full-precision
weight IS the original weight (no copy). Embeddings and norms stay full precision. A Llama,
Mistral or Gemma causal LM becomes a `Llama158ForCausalLM` / `Mistral158ForCausalLM` /
`Gemma158ForCausalLM` (same object, same parameters, new class and config class); any other
model is converted in place and marked with a `quantization_config` (BitMatConfig), so
`save_pretrained` writes packed weights and `AutoModelForCausalLM.from_pretrained` rebuilds it.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .config import BitMatConfig
from .utils import progress

logger = logging.getLogger(__name__)


class BitMatConversionError(ValueError):
    """A model cannot be converted (nothing was changed)."""


def _bitlinear_cls():
    from bitmat_nn import BitLinear

    return BitLinear


def is_bitlinear(module: nn.Module) -> bool:
    return isinstance(module, _bitlinear_cls())


def bitlinear_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every BitLinear in the model."""
    cls = _bitlinear_cls()
    return [(n, m) for n, m in model.named_modules() if isinstance(m, cls)]


def has_latent_weights(module: nn.Module) -> bool:
    return getattr(module, "weight", None) is not None


def _matches(name: str, pattern: str) -> bool:
    """A module name matches a skip pattern when it is the pattern, ends with '.pattern' or lies under it."""
    return name == pattern or name.endswith("." + pattern) or name.startswith(pattern + ".") or f".{pattern}." in name


def is_skipped(name: str, patterns: Iterable[str]) -> bool:
    return any(_matches(name, p) for p in patterns)


def default_modules_to_not_convert(model: nn.Module) -> list[str]:
    """The LM head, the output embeddings and any linear tied to the input embeddings."""
    skip = {"lm_head"}
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    get_in = getattr(model, "get_input_embeddings", None)
    try:
        inp = get_in() if callable(get_in) else None
    except NotImplementedError:
        inp = None
    for name, module in model.named_modules():
        if out is not None and module is out and name:
            skip.add(name)
        if (
            isinstance(module, nn.Linear)
            and inp is not None
            and getattr(inp, "weight", None) is not None
            and getattr(module, "weight", None) is inp.weight
        ):
            skip.add(name)
    return sorted(skip)


def resolve_modules_to_not_convert(model: nn.Module, modules_to_not_convert: Sequence[str] | None) -> list[str]:
    """The LM head and output embeddings always stay full precision; `modules_to_not_convert` adds to them."""
    if modules_to_not_convert is None:
        return default_modules_to_not_convert(model)
    if isinstance(modules_to_not_convert, str) or not all(isinstance(m, str) for m in modules_to_not_convert):
        raise BitMatConversionError(
            f"convert_hf_model: argument 'modules_to_not_convert' must be a list of module names, got "
            f"{modules_to_not_convert!r}"
        )
    return sorted(set(modules_to_not_convert) | set(default_modules_to_not_convert(model)))


def target_linears(model: nn.Module, skip: Iterable[str]) -> list[tuple[str, nn.Linear]]:
    """The nn.Linear modules (BitLinear included) that conversion replaces, in module order."""
    skip = list(skip)
    return [
        (name, module)
        for name, module in model.named_modules()
        if name and (type(module) is nn.Linear or is_bitlinear(module)) and not is_skipped(name, skip)
    ]


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def latent_bitlinear(linear: nn.Linear, qc: BitMatConfig) -> nn.Module:
    """A BitLinear whose latent weight (and bias) are `linear`'s own parameters (shared, not copied)."""
    return _bitlinear_cls().from_linear(linear, **qc.layer_kwargs())


def packed_bitlinear_skeleton(linear: nn.Linear, qc: BitMatConfig, device: Any = "meta") -> nn.Module:
    """An inference-only BitLinear with empty packed buffers of the right shapes and dtypes (on the meta device by
    default), ready to receive a packed checkpoint. Its byte size is the real packed size (for device maps)."""
    from bitmat_kernels import packed_width
    from bitmat_kernels.formats import weight_format

    n, k = linear.out_features, linear.in_features
    fmt = weight_format(qc.weight_bits, "BitMatConfig")
    packed = torch.empty(n, packed_width(k, fmt), dtype=torch.uint8, device=device)
    scale = torch.empty(*((n, 1) if qc.per_channel else (1,)), dtype=torch.float32, device=device)
    bias = None
    if linear.bias is not None:
        bias = torch.empty(n, dtype=linear.bias.dtype, device=device)
    return _bitlinear_cls().from_packed(packed, scale, k, bias=bias, **qc.layer_kwargs())


def replace_linears(
    model: nn.Module,
    targets: Sequence[tuple[str, nn.Linear]],
    make: Any,
    *,
    desc: str = "Converting to BitLinear",
    show_progress: bool = True,
) -> None:
    """Builds every replacement first, then swaps them all: a failure leaves the model unchanged."""
    new_modules = []
    for name, linear in progress(targets, desc=desc, disable=not show_progress):
        try:
            new_modules.append((name, make(linear)))
        except Exception as e:
            raise BitMatConversionError(
                f"cannot convert layer {name!r} ({type(linear).__name__}, in_features={linear.in_features}, "
                f"out_features={linear.out_features}): {e}; the model was left unchanged"
            ) from e
    for name, module in new_modules:
        set_submodule(model, name, module)


def _check_model(model: Any, fn: str) -> None:
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        raise TypeError(
            f"{fn}: argument 'model' must be a transformers PreTrainedModel, got {type(model).__name__}; "
            "for a plain torch model use bitmat_nn.replace_linear_with_bitlinear"
        )


def convert_hf_model(
    model: Any,
    *,
    modules_to_not_convert: Sequence[str] | None = None,
    weight_bits: float = 1.58,
    activation_bits: int | None = 8,
    per_channel: bool = False,
    input_norm: bool = False,
    eps: float = 1e-5,
    show_progress: bool = True,
):
    """Converts a transformers model to BitLinear layers, keeping the pretrained weights as latent weights.

    Returns the converted model: for LlamaForCausalLM, MistralForCausalLM and GemmaForCausalLM the same object as
    an instance of Llama158ForCausalLM / Mistral158ForCausalLM / Gemma158ForCausalLM (its config becomes the
    matching 158 config); any other architecture is converted in place and carries a BitMatConfig as its
    `quantization_config`. Evaluation runs the packed kernels; training updates the latent weights
    (quantization-aware, straight-through). On error nothing is changed.
    """
    fn = "convert_hf_model"
    _check_model(model, fn)
    existing = getattr(model.config, "quantization_config", None)
    if existing is not None:
        method = existing.get("quant_method") if isinstance(existing, dict) else getattr(existing, "quant_method", None)
        if str(method) == "bitmat" or getattr(method, "value", None) == "bitmat":
            raise BitMatConversionError(f"{fn}: the model is already converted to BitMat (quant_method 'bitmat')")
        raise BitMatConversionError(
            f"{fn}: the model is already quantized with {method!r}; convert its full-precision original instead"
        )
    skip = resolve_modules_to_not_convert(model, modules_to_not_convert)
    qc = BitMatConfig(
        weight_bits=weight_bits,
        activation_bits=activation_bits,
        per_channel=per_channel,
        input_norm=input_norm,
        eps=eps,
        modules_to_not_convert=skip,
    )
    targets = [(n, m) for n, m in target_linears(model, skip) if not is_bitlinear(m)]
    if not targets and not bitlinear_modules(model):
        raise BitMatConversionError(f"{fn}: {type(model).__name__} has no nn.Linear layer to convert")
    target_cls = _target_158_class(model)
    replace_linears(model, targets, lambda lin: latent_bitlinear(lin, qc), show_progress=show_progress)
    if target_cls is not None:
        model.__class__ = target_cls
        # Sub-models hold the same config object, so this changes the config everywhere.
        model.config.__class__ = target_cls.config_class
        if "model_type" in vars(model.config):
            model.config.model_type = target_cls.config_class.model_type
    mark_bitmat(model, qc)
    logger.info(
        "converted %d linear layers of %s to BitLinear (%s bits); kept in full precision: %s",
        len(targets),
        type(model).__name__,
        qc.weight_bits,
        ", ".join(skip) or "nothing",
    )
    return model


def _target_158_class(model: nn.Module):
    from transformers import GemmaForCausalLM, LlamaForCausalLM, MistralForCausalLM

    from .modeling import Gemma158ForCausalLM, Llama158ForCausalLM, Mistral158ForCausalLM

    mapping = {
        LlamaForCausalLM: Llama158ForCausalLM,
        MistralForCausalLM: Mistral158ForCausalLM,
        GemmaForCausalLM: Gemma158ForCausalLM,
    }
    return mapping.get(type(model))


def mark_bitmat(model: nn.Module, qc: BitMatConfig) -> None:
    """Marks a converted model: quantization_config, a BitMat quantizer for save_pretrained and Trainer, and a
    train() that gives packed-only layers latent weights."""
    from .quantizer import BitMatHfQuantizer

    model.config.quantization_config = qc
    quantizer = getattr(model, "hf_quantizer", None)
    if not isinstance(quantizer, BitMatHfQuantizer):
        quantizer = BitMatHfQuantizer(qc, pre_quantized=True)
        model.hf_quantizer = quantizer
    quantizer.quantization_config = qc
    model.is_quantized = True
    model.quantization_method = "bitmat"
    if not getattr(type(model), "_bitmat_158", False) and "train" not in vars(model):
        model.train = types.MethodType(_bitmat_train, model)


def _bitmat_train(self, mode: bool = True):
    if mode:
        prepare_for_training(self)
    return type(self).train(self, mode)


def prepare_for_training(model: nn.Module, *, dtype: torch.dtype | None = None) -> int:
    """Gives every packed-only BitLinear (loaded from a packed checkpoint) latent weights again: its dequantized
    ternary (or binary) weights, so quantization-aware training can start from them. Logs a warning when it does.
    Returns the number of layers it materialized. Call it (or model.train()) before building an optimizer."""
    packed_only = [(n, m) for n, m in bitlinear_modules(model) if not has_latent_weights(m)]
    if not packed_only:
        return 0
    nbytes = 0
    for _, module in packed_only:
        module.restore_latent_weights(dtype=dtype)
        nbytes += module.weight.numel() * module.weight.element_size()
    logger.warning(
        "%d BitLinear layers had no latent weights (the model was loaded from a packed-only checkpoint): training "
        "starts from their dequantized %s weights (%.1f MB of latent weights created). Build the optimizer after "
        "this point; save with keep_latent_weights=True to resume training later without this step.",
        len(packed_only),
        "binary" if getattr(packed_only[0][1], "weight_bits", 1.58) == 1 else "ternary",
        nbytes / 2**20,
    )
    return len(packed_only)


def pack_and_drop_latent(model: nn.Module, *, show_progress: bool = True) -> int:
    """Packs every BitLinear and frees its latent weights (inference-only afterwards)."""
    mods = [(n, m) for n, m in bitlinear_modules(model) if has_latent_weights(m)]
    for _, m in progress(mods, desc="Packing BitLinear weights", disable=not show_progress):
        m.drop_latent_weights()
    return len(mods)


__all__ = [
    "BitMatConversionError",
    "bitlinear_modules",
    "convert_hf_model",
    "pack_and_drop_latent",
    "prepare_for_training",
]
