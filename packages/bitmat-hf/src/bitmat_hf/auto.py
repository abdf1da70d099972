"""Auto158ModelForCausalLM and the registration of the 158 configs and models with the transformers Auto classes."""

from __future__ import annotations

import os
from typing import Any

from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from .config import Gemma158Config, Llama158Config, Mistral158Config
from .modeling import (
    MODEL_158_FOR_MODEL_TYPE,
    BitMatArchitectureError,
    Gemma158ForCausalLM,
    Llama158ForCausalLM,
    Mistral158ForCausalLM,
    config_dict,
)

_PAIRS = (
    (Llama158Config, Llama158ForCausalLM),
    (Mistral158Config, Mistral158ForCausalLM),
    (Gemma158Config, Gemma158ForCausalLM),
)


def register() -> None:
    """Registers llama158 / mistral158 / gemma158 with AutoConfig and AutoModelForCausalLM (idempotent)."""
    for config_cls, model_cls in _PAIRS:
        AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
        AutoModelForCausalLM.register(config_cls, model_cls, exist_ok=True)


class Auto158ModelForCausalLM:
    """Picks the 158 class for a checkpoint: llama/llama158 -> Llama158ForCausalLM, mistral/mistral158 ->
    Mistral158ForCausalLM, gemma/gemma158 -> Gemma158ForCausalLM (a full-precision checkpoint is converted while
    loading). A BitMat checkpoint of another architecture loads through AutoModelForCausalLM; a full-precision
    checkpoint of another architecture is refused (use AutoModelForCausalLM with BitMatConfig, or
    convert_hf_model)."""

    def __init__(self, *args: Any, **kwargs: Any):
        raise OSError("Auto158ModelForCausalLM is used through from_pretrained(...) or from_config(...)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        cfg = config_dict(pretrained_model_name_or_path, kwargs)
        model_type = cfg.get("model_type")
        model_cls = MODEL_158_FOR_MODEL_TYPE.get(model_type)
        if model_cls is not None:
            return model_cls.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        q = cfg.get("quantization_config")
        if isinstance(q, dict) and q.get("quant_method") == "bitmat":
            return AutoModelForCausalLM.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        raise BitMatArchitectureError(
            f"Auto158ModelForCausalLM: no 158 class for model_type {model_type!r} (known: "
            f"{', '.join(sorted(MODEL_158_FOR_MODEL_TYPE))}); for other architectures use "
            "AutoModelForCausalLM.from_pretrained(folder, quantization_config=BitMatConfig()) or convert_hf_model"
        )

    @classmethod
    def from_config(cls, config: PretrainedConfig, **kwargs: Any):
        model_cls = MODEL_158_FOR_MODEL_TYPE.get(getattr(config, "model_type", None))
        if model_cls is None:
            raise BitMatArchitectureError(
                f"Auto158ModelForCausalLM: no 158 class for model_type {getattr(config, 'model_type', None)!r}"
            )
        if not isinstance(config, model_cls.config_class):
            config = model_cls.config_class(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
        return model_cls(config, **kwargs)


__all__ = ["Auto158ModelForCausalLM", "register"]
