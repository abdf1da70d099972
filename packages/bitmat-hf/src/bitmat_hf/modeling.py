"""The 1.58-bit causal LM classes: Llama158ForCausalLM, Mistral158ForCausalLM, Gemma158ForCausalLM.

Each subclasses its transformers original; its __init__ builds the original and swaps the linear
layers (all but the LM head) for BitLinear, using the config's `quantization_config` (a BitMatConfig,
defaults when absent). `from_pretrained` accepts

* a BitMat checkpoint of the same architecture (packed or latent; checked before loading),
* a full-precision checkpoint of the base architecture ("mistral" for Mistral158ForCausalLM...):
  its weights become the latent weights, i.e. conversion while loading;

and refuses any other architecture with a clear error. `save_pretrained` writes packed weights
(safetensors, format version in the metadata); `keep_latent_weights=True` writes the latent weights
instead, to resume training.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from torch import nn
from transformers import GemmaForCausalLM, LlamaForCausalLM, MistralForCausalLM, PretrainedConfig

from .checkpoint import inspect_checkpoint
from .config import BitMatConfig, BitMatConfigError, Gemma158Config, Llama158Config, Mistral158Config
from .convert import (
    latent_bitlinear,
    mark_bitmat,
    prepare_for_training,
    replace_linears,
    resolve_modules_to_not_convert,
    target_linears,
)

logger = logging.getLogger(__name__)


def config_dict(path: str | os.PathLike | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The config a from_pretrained(path, **kwargs) call will use, as a dict: kwargs' `config` object, or the
    config file at kwargs' `config` path or at `path` (with the hub arguments of kwargs)."""
    config = kwargs.get("config")
    if config is not None and not isinstance(config, (str, os.PathLike)):
        return config.to_dict()
    hub = {k: kwargs[k] for k in ("cache_dir", "local_files_only", "revision", "subfolder", "token") if k in kwargs}
    return PretrainedConfig.get_config_dict(config or path, **hub)[0]


class BitMatArchitectureError(ValueError):
    """A checkpoint's architecture is not the one the class builds."""


def _quantization_config_of(config: PretrainedConfig) -> BitMatConfig:
    q = getattr(config, "quantization_config", None)
    try:
        return BitMatConfig.coerce(q)
    except BitMatConfigError as e:
        raise BitMatConfigError(f"{type(config).__name__}.quantization_config: {e}") from None


class BitMat158Mixin:
    """Shared behaviour of the 158 classes (put before the transformers class in the bases)."""

    _bitmat_158 = True
    _bitmat_base_model_type: str = ""

    def _bitmat_init(self) -> None:
        qc = _quantization_config_of(self.config)
        skip = resolve_modules_to_not_convert(self, qc.modules_to_not_convert)
        qc.modules_to_not_convert = skip
        targets = target_linears(self, skip)
        replace_linears(self, targets, lambda lin: latent_bitlinear(lin, qc), show_progress=False)
        mark_bitmat(self, qc)

    @classmethod
    def _bitmat_accepted_model_types(cls) -> tuple[str, ...]:
        return (cls.config_class.model_type, cls._bitmat_base_model_type)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None, *model_args: Any, **kwargs: Any):
        """Loads a BitMat checkpoint of this architecture, or converts a full-precision one of the base
        architecture while loading. Raises BitMatArchitectureError for other architectures and
        BitMatCheckpointError for missing, truncated, tampered or future-format files."""
        config = kwargs.get("config")
        path = pretrained_model_name_or_path
        cfg_dict = config_dict(path, kwargs)
        model_type = cfg_dict.get("model_type")
        if model_type not in cls._bitmat_accepted_model_types():
            raise BitMatArchitectureError(
                f"{cls.__name__} loads '{cls.config_class.model_type}' (BitMat) or '{cls._bitmat_base_model_type}' "
                f"(full-precision) checkpoints, but {str(path)!r} is a {model_type!r} model; use "
                "Auto158ModelForCausalLM or AutoModelForCausalLM for other architectures"
            )
        q = cfg_dict.get("quantization_config")
        if isinstance(q, dict) and q.get("quant_method") not in (None, "bitmat"):
            raise BitMatArchitectureError(
                f"{cls.__name__}: {str(path)!r} is quantized with {q.get('quant_method')!r}, not BitMat; load its "
                "full-precision original instead"
            )
        if q is None and model_type == cls._bitmat_base_model_type and config is None:
            # A full-precision checkpoint of the base architecture: read its config as our 158 config.
            fields = {k: v for k, v in cfg_dict.items() if k not in ("model_type", "transformers_version")}
            kwargs["config"] = cls.config_class.from_dict(fields)
        if q is not None and path is not None and os.path.isdir(path):
            inspect_checkpoint(os.path.join(path, kwargs.get("subfolder", "")))  # headers + format version
        model = super().from_pretrained(path, *model_args, **kwargs)
        if q is None:
            logger.info(
                "%s: converted the full-precision '%s' checkpoint %s to BitLinear while loading",
                cls.__name__,
                model_type,
                path,
            )
        mark_bitmat(model, _quantization_config_of(model.config))
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, keep_latent_weights: bool = False, **kw):
        """save_pretrained, safetensors only: packed weights, scales and the format version; with
        keep_latent_weights=True the full-precision latent weights instead (to resume training)."""
        return save_pretrained(self, save_directory, *args, keep_latent_weights=keep_latent_weights, **kw)

    def train(self, mode: bool = True):
        if mode:
            prepare_for_training(self)
        return super().train(mode)


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, *args: Any, keep_latent_weights=False, **kw):
    """Saves any BitMat model (158 class or converted in place) with save_pretrained, safetensors only.
    keep_latent_weights=True writes the latent full-precision weights (for resuming training)."""
    from .quantizer import BitMatHfQuantizer

    quantizer = getattr(model, "hf_quantizer", None)
    if not isinstance(quantizer, BitMatHfQuantizer):
        raise TypeError(f"save_pretrained: {type(model).__name__} is not a BitMat model; convert it first")
    if kw.pop("safe_serialization", True) is False:
        raise ValueError("save_pretrained: BitMat checkpoints are safetensors only (safe_serialization=False refused)")
    quantizer.save_latent_weights = bool(keep_latent_weights)
    try:
        base = super(BitMat158Mixin, model) if isinstance(model, BitMat158Mixin) else model
        return base.save_pretrained(save_directory, *args, **kw)
    finally:
        quantizer.save_latent_weights = False


class Llama158ForCausalLM(BitMat158Mixin, LlamaForCausalLM):
    """LlamaForCausalLM with BitLinear layers (model_type "llama158")."""

    config_class = Llama158Config
    _bitmat_base_model_type = "llama"

    def __init__(self, config: Llama158Config, *args: Any, **kwargs: Any):
        super().__init__(config, *args, **kwargs)
        self._bitmat_init()


class Mistral158ForCausalLM(BitMat158Mixin, MistralForCausalLM):
    """MistralForCausalLM with BitLinear layers (model_type "mistral158")."""

    config_class = Mistral158Config
    _bitmat_base_model_type = "mistral"

    def __init__(self, config: Mistral158Config, *args: Any, **kwargs: Any):
        super().__init__(config, *args, **kwargs)
        self._bitmat_init()


class Gemma158ForCausalLM(BitMat158Mixin, GemmaForCausalLM):
    """GemmaForCausalLM with BitLinear layers (model_type "gemma158")."""

    config_class = Gemma158Config
    _bitmat_base_model_type = "gemma"

    def __init__(self, config: Gemma158Config, *args: Any, **kwargs: Any):
        super().__init__(config, *args, **kwargs)
        self._bitmat_init()


MODEL_158_FOR_MODEL_TYPE = {
    "llama": Llama158ForCausalLM,
    "llama158": Llama158ForCausalLM,
    "mistral": Mistral158ForCausalLM,
    "mistral158": Mistral158ForCausalLM,
    "gemma": Gemma158ForCausalLM,
    "gemma158": Gemma158ForCausalLM,
}


__all__ = [
    "BitMatArchitectureError",
    "Gemma158ForCausalLM",
    "Llama158ForCausalLM",
    "Mistral158ForCausalLM",
    "save_pretrained",
]
