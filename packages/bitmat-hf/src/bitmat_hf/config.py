"""Configurations: the quantization config `BitMatConfig` (quant_method "bitmat") and the configs
of the 1.58-bit model classes (`Llama158Config`, `Mistral158Config`, `Gemma158Config`).

`BitMatConfig` is what a saved checkpoint's `config.json` carries under `quantization_config`:
the bits, the skipped modules, the packed-format version and whether the files hold packed
weights or latent (full-precision) weights. Its constructor refuses values it cannot honour,
so a config from a newer BitMat (a format version from the future) fails before any model is
built.
"""

from __future__ import annotations

import math
from typing import Any

from bitmat_kernels import FORMAT_VERSION, SUPPORTED_FORMAT_VERSIONS
from transformers import GemmaConfig, LlamaConfig, MistralConfig
from transformers.utils.quantization_config import QuantizationConfigMixin

QUANT_METHOD = "bitmat"

PACKED = "packed"
LATENT = "latent"
CHECKPOINT_FORMATS = (PACKED, LATENT)

DEFAULT_MODULES_TO_NOT_CONVERT = ("lm_head",)


class BitMatConfigError(ValueError):
    """A BitMat quantization config holds a value this version of bitmat-hf cannot honour."""


def normalize_weight_bits(weight_bits: Any, where: str = "BitMatConfig") -> float:
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, (int, float)):
        raise BitMatConfigError(f"{where}: 'weight_bits' must be 1.58 (ternary) or 1 (binary), got {weight_bits!r}")
    if math.isclose(float(weight_bits), 1.58, abs_tol=1e-6):
        return 1.58
    if weight_bits == 1:
        return 1
    raise BitMatConfigError(f"{where}: 'weight_bits' must be 1.58 (ternary) or 1 (binary), got {weight_bits!r}")


def normalize_activation_bits(activation_bits: Any, where: str = "BitMatConfig") -> int | None:
    if activation_bits is None:
        return None
    if isinstance(activation_bits, bool) or activation_bits != 8:
        raise BitMatConfigError(
            f"{where}: 'activation_bits' must be 8 (W1.58A8) or None (weight-only), got {activation_bits!r}"
        )
    return 8


def check_format_version(version: Any, where: str) -> int:
    """Refuses a packed-format version this bitmat-hf cannot read (for example one from a newer release)."""
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise BitMatConfigError(f"{where}: packed-format version must be an integer, got {version!r}") from None
    if str(v) != str(version).strip():
        raise BitMatConfigError(f"{where}: packed-format version must be an integer, got {version!r}")
    if v not in SUPPORTED_FORMAT_VERSIONS:
        newer = v > max(SUPPORTED_FORMAT_VERSIONS)
        hint = (
            "it was written by a newer BitMat: upgrade bitmat-hf and bitmat-kernels to read it"
            if newer
            else "this bitmat-hf no longer reads it"
        )
        raise BitMatConfigError(
            f"{where}: packed-format version {v} is not supported (this bitmat-hf reads "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}); {hint}"
        )
    return v


class BitMatConfig(QuantizationConfigMixin):
    """Quantization config of BitMat's 1.58-bit / 1-bit layers (quant_method "bitmat").

    Args:
        weight_bits: 1.58 (ternary, absmean) or 1 (binary).
        activation_bits: 8 (per-token int8 activations, BitNet's W1.58A8) or None (weight-only).
        per_channel: one weight scale per output row instead of one per tensor.
        input_norm: add the b1.58 recipe's RMSNorm at the input of every BitLinear.
        eps: the quantizers' floor.
        modules_to_not_convert: module names (or name suffixes) kept in full precision; None means
            the LM head (and any module tied to the input embeddings).
        keep_latent_weights: when quantizing a float checkpoint while loading
            (`from_pretrained(float_folder, quantization_config=BitMatConfig())`), keep the full-precision
            latent weights for quantization-aware training; by default they are packed and dropped layer by
            layer, so only the packed model stays in memory.
        checkpoint_format: written by `save_pretrained`: "packed" (packed codes and scales) or "latent"
            (full-precision latent weights, for resuming training).
        format_version: the packed-format version of the checkpoint (bitmat_kernels.FORMAT_VERSION).
    """

    def __init__(
        self,
        weight_bits: float = 1.58,
        activation_bits: int | None = 8,
        per_channel: bool = False,
        input_norm: bool = False,
        eps: float = 1e-5,
        modules_to_not_convert: list[str] | None = None,
        keep_latent_weights: bool = False,
        checkpoint_format: str = PACKED,
        format_version: int = FORMAT_VERSION,
        **kwargs: Any,
    ):
        self.quant_method = QUANT_METHOD
        self.weight_bits = normalize_weight_bits(weight_bits)
        self.activation_bits = normalize_activation_bits(activation_bits)
        for name, value in (("per_channel", per_channel), ("input_norm", input_norm)):
            if not isinstance(value, bool):
                raise BitMatConfigError(f"BitMatConfig: '{name}' must be True or False, got {value!r}")
        self.per_channel = per_channel
        self.input_norm = input_norm
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (eps > 0 and math.isfinite(eps)):
            raise BitMatConfigError(f"BitMatConfig: 'eps' must be a positive finite float, got {eps!r}")
        self.eps = float(eps)
        if modules_to_not_convert is not None:
            if isinstance(modules_to_not_convert, str) or not all(isinstance(m, str) for m in modules_to_not_convert):
                raise BitMatConfigError(
                    f"BitMatConfig: 'modules_to_not_convert' must be a list of module names, got "
                    f"{modules_to_not_convert!r}"
                )
            modules_to_not_convert = list(modules_to_not_convert)
        self.modules_to_not_convert = modules_to_not_convert
        self.keep_latent_weights = bool(keep_latent_weights)
        if checkpoint_format not in CHECKPOINT_FORMATS:
            raise BitMatConfigError(
                f"BitMatConfig: 'checkpoint_format' must be one of {CHECKPOINT_FORMATS}, got {checkpoint_format!r}"
            )
        self.checkpoint_format = checkpoint_format
        self.format_version = check_format_version(format_version, "BitMatConfig")
        # Unknown keys (from a newer minor release) are kept so a round trip does not lose them.
        kwargs.pop("quant_method", None)
        for key, value in kwargs.items():
            setattr(self, key, value)

    @classmethod
    def coerce(cls, value: BitMatConfig | dict | None) -> BitMatConfig:
        """A BitMatConfig from a config, a dict (as stored in config.json) or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, BitMatConfig):
            return value
        if isinstance(value, dict):
            method = value.get("quant_method", QUANT_METHOD)
            if str(method) != QUANT_METHOD:
                raise BitMatConfigError(
                    f"expected a quantization_config with quant_method '{QUANT_METHOD}', got {method!r}"
                )
            return cls(**{k: v for k, v in value.items() if k != "quant_method"})
        method = getattr(value, "quant_method", None)
        raise BitMatConfigError(
            f"expected a BitMatConfig (quant_method '{QUANT_METHOD}'), got {type(value).__name__} "
            f"(quant_method {method!r})"
        )

    def layer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for bitmat_nn.BitLinear."""
        return {
            "weight_bits": self.weight_bits,
            "activation_bits": self.activation_bits,
            "per_channel": self.per_channel,
            "input_norm": self.input_norm,
            "eps": self.eps,
        }

    def to_dict(self) -> dict[str, Any]:
        d = dict(super().to_dict())
        d["quant_method"] = QUANT_METHOD
        return d

    def is_trainable(self) -> bool:  # pragma: no cover - informational
        return True


class Llama158Config(LlamaConfig):
    """LlamaConfig of a model whose linear layers are BitLinear (model_type "llama158")."""

    model_type = "llama158"


class Mistral158Config(MistralConfig):
    """MistralConfig of a model whose linear layers are BitLinear (model_type "mistral158")."""

    model_type = "mistral158"


class Gemma158Config(GemmaConfig):
    """GemmaConfig of a model whose linear layers are BitLinear (model_type "gemma158")."""

    model_type = "gemma158"


CONFIG_158_FOR_BASE = {"llama": Llama158Config, "mistral": Mistral158Config, "gemma": Gemma158Config}
"""model_type of the float architecture -> its 158 config class."""


def base_model_type(model_type: str) -> str:
    return model_type[:-3] if model_type.endswith("158") else model_type


__all__ = [
    "BitMatConfig",
    "BitMatConfigError",
    "Gemma158Config",
    "Llama158Config",
    "Mistral158Config",
]
