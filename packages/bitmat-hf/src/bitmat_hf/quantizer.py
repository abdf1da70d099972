"""The "bitmat" quantization method for transformers.

Registered at import (`register_quantization_config("bitmat")` / `register_quantizer("bitmat")`), so

* `AutoModelForCausalLM.from_pretrained(bitmat_folder)` rebuilds BitLinear layers from the config's
  `quantization_config` (the skeleton holds the real packed buffers, so device_map="auto" plans
  with packed sizes) after checking every file header, shape, dtype and the format version;
* `from_pretrained(float_folder, quantization_config=BitMatConfig())` loads the float weights
  straight into BitLinear latent weights (one copy of the model), then packs them layer by layer and
  frees the float weights (unless `keep_latent_weights=True`, for quantization-aware training);
* `save_pretrained` writes packed weights, scales and the format version (see checkpoint.py).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers.quantizers import HfQuantizer, register_quantization_config, register_quantizer
from transformers.quantizers.auto import AUTO_QUANTIZATION_CONFIG_MAPPING, AUTO_QUANTIZER_MAPPING

from .checkpoint import BitMatCheckpointError, check_against_model, inspect_files, safetensors_metadata
from .config import LATENT, PACKED, QUANT_METHOD, BitMatConfig
from .convert import (
    bitlinear_modules,
    has_latent_weights,
    is_bitlinear,
    latent_bitlinear,
    mark_bitmat,
    pack_and_drop_latent,
    packed_bitlinear_skeleton,
    replace_linears,
    resolve_modules_to_not_convert,
    target_linears,
)

logger = logging.getLogger(__name__)


class BitMatHfQuantizer(HfQuantizer):
    """transformers quantizer of BitMat's 1.58-bit / 1-bit BitLinear layers (quant_method "bitmat")."""

    requires_calibration = False
    requires_parameters_quantization = False

    def __init__(self, quantization_config: BitMatConfig | dict, **kwargs: Any):
        super().__init__(BitMatConfig.coerce(quantization_config), **kwargs)
        self.save_latent_weights = False

    # -- environment ---------------------------------------------------------------------------------------
    def validate_environment(self, *args: Any, **kwargs: Any) -> None:
        device_map = kwargs.get("device_map")
        if isinstance(device_map, dict) and "disk" in device_map.values():
            logger.warning("BitMat: disk offload keeps packed layers on disk; generation will be slow")

    def update_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return dtype

    # -- loading -------------------------------------------------------------------------------------------
    def _process_model_before_weight_loading(self, model, **kwargs: Any):
        qc: BitMatConfig = self.quantization_config
        keep = getattr(model, "_keep_in_fp32_modules", None) or []
        skip = resolve_modules_to_not_convert(model, qc.modules_to_not_convert)
        skip = sorted(set(skip) | set(keep))
        qc.modules_to_not_convert = skip
        targets = target_linears(model, skip)
        if self.pre_quantized and qc.checkpoint_format == PACKED:
            # Empty packed buffers of the real sizes: device_map="auto" plans with packed bytes.
            replace_linears(model, targets, lambda lin: packed_bitlinear_skeleton(lin, qc), show_progress=False)
        else:
            # Latent weights are loaded straight into the BitLinear layers (one copy of the model).
            targets = [(n, m) for n, m in targets if not is_bitlinear(m)]
            replace_linears(model, targets, lambda lin: latent_bitlinear(lin, qc), show_progress=False)
        if self.pre_quantized:
            files = kwargs.get("checkpoint_files")
            if files:
                self._validate_files(model, files)
        return model

    def _validate_files(self, model, files) -> None:
        qc: BitMatConfig = self.quantization_config
        config = {"quantization_config": qc.to_dict()}
        info = inspect_files(files, config)
        expected = model.state_dict()
        prefix = getattr(model, "base_model_prefix", "") or ""
        rename = {}
        if prefix:
            for k in info.tensors:
                if k not in expected and f"{prefix}.{k}" in expected:
                    rename[k] = f"{prefix}.{k}"
                elif k.startswith(prefix + ".") and k not in expected and k[len(prefix) + 1 :] in expected:
                    rename[k] = k[len(prefix) + 1 :]
        required = (".packed_weight", ".weight_scale") if qc.checkpoint_format == PACKED else ()
        check_against_model(info, expected, required_suffixes=required, rename=rename)
        if qc.checkpoint_format == LATENT:
            for name, _ in bitlinear_modules(model):
                if f"{name}.weight" not in expected:
                    continue
                if not any(rename.get(k, k) == f"{name}.weight" for k in info.tensors):
                    raise BitMatCheckpointError(
                        f"checkpoint has no tensor {name + '.weight'!r} although its config says it holds latent "
                        "weights (missing or truncated checkpoint)"
                    )

    def _process_model_after_weight_loading(self, model, **kwargs: Any):
        qc: BitMatConfig = self.quantization_config
        for _, module in bitlinear_modules(model):
            scale = getattr(module, "weight_scale", None)
            if isinstance(scale, torch.Tensor) and scale.dtype != torch.float32 and scale.device.type != "meta":
                module.weight_scale = scale.float()
        if not self.pre_quantized and not qc.keep_latent_weights:
            n = pack_and_drop_latent(model)
            logger.info("BitMat: quantized %d layers while loading and freed their float weights", n)
        mark_bitmat(model, qc)
        return model

    # -- saving --------------------------------------------------------------------------------------------
    def is_serializable(self, safe_serialization: bool = True) -> bool:
        return True

    def get_state_dict_and_metadata(self, model, *args: Any, **kwargs: Any):
        """The state dict that save_pretrained writes: packed weights and scales (or the latent weights when
        save_latent_weights is set), and the safetensors metadata with the format version."""
        qc: BitMatConfig = self.quantization_config
        latent = bool(self.save_latent_weights)
        state_dict = model.state_dict()
        for name, module in bitlinear_modules(model):
            prefix = f"{name}." if name else ""
            if latent:
                if not has_latent_weights(module):
                    raise BitMatCheckpointError(
                        f"cannot save latent weights: layer {name!r} has none (the model was loaded from a packed "
                        "checkpoint); call model.train() or bitmat_hf.prepare_for_training(model) first, or save packed"
                    )
                state_dict.pop(prefix + "packed_weight", None)
                state_dict.pop(prefix + "weight_scale", None)
                continue
            if has_latent_weights(module):
                packed, scale = module.pack_weights()
            else:
                packed, scale = module.packed_weight, module.weight_scale
            state_dict.pop(prefix + "weight", None)
            state_dict[prefix + "packed_weight"] = packed.contiguous()
            state_dict[prefix + "weight_scale"] = scale.to(torch.float32).contiguous()
        qc.checkpoint_format = LATENT if latent else PACKED
        return state_dict, safetensors_metadata(qc)

    # -- training ------------------------------------------------------------------------------------------
    @property
    def is_trainable(self) -> bool:
        return True

    @property
    def is_qat_trainable(self) -> bool:
        return True

    @property
    def is_compileable(self) -> bool:
        return True

    def _dequantize(self, model, dtype=None):
        """Replaces every BitLinear by an nn.Linear holding its dequantized weight."""
        from .convert import set_submodule

        for name, module in bitlinear_modules(model):
            w = module.dequantized_weight(dtype=dtype or torch.float32)
            lin = torch.nn.Linear(module.in_features, module.out_features, module.bias is not None, device=w.device)
            lin = lin.to(w.dtype)
            with torch.no_grad():
                lin.weight.copy_(w)
                if module.bias is not None:
                    lin.bias.copy_(module.bias)
            set_submodule(model, name, lin)
        if "train" in vars(model):
            del model.train
        return model


def register() -> None:
    """Registers BitMatConfig and BitMatHfQuantizer with transformers under "bitmat" (idempotent)."""
    if AUTO_QUANTIZATION_CONFIG_MAPPING.get(QUANT_METHOD) is not BitMatConfig:
        AUTO_QUANTIZATION_CONFIG_MAPPING.pop(QUANT_METHOD, None)
        register_quantization_config(QUANT_METHOD)(BitMatConfig)
    if AUTO_QUANTIZER_MAPPING.get(QUANT_METHOD) is not BitMatHfQuantizer:
        AUTO_QUANTIZER_MAPPING.pop(QUANT_METHOD, None)
        register_quantizer(QUANT_METHOD)(BitMatHfQuantizer)


__all__ = ["BitMatHfQuantizer", "register"]
