"""PEFT LoRA on BitMat models: LoRA attaches to BitLinear (it subclasses nn.Linear) and trains as usual;
`merge_lora` folds the adapters back into the BitLinear layers without ever writing into packed bytes:

* a layer with latent weights gets W_latent + B·A (peft's own merge), and requantizes from it;
* a packed-only layer is dequantized, gets + B·A, and is requantized into new packed codes and scale.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def merge_lora(peft_model, *, adapter_names: list[str] | None = None):
    """Merges the LoRA adapters of a PEFT model built on a BitMat model into its BitLinear layers and returns the
    base model (the PEFT wrappers removed). Adapters on other layers (e.g. full-precision ones) merge normally."""
    import bitmat_kernels as bk
    from peft.tuners.lora import LoraLayer

    from .convert import has_latent_weights, is_bitlinear

    merged = 0
    for _, module in peft_model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        base = module.get_base_layer()
        names = adapter_names or [a for a in module.active_adapters if a in module.lora_A]
        if not names:
            continue
        if not is_bitlinear(base) or has_latent_weights(base):
            module.merge(adapter_names=names)  # W_latent += B·A (peft writes through .data)
            if is_bitlinear(base):
                base.pack_weights()  # .data writes do not bump the version counter the packed cache watches
            merged += 1
            continue
        with torch.no_grad():
            w = base.dequantized_weight(dtype=torch.float32)
            for name in names:
                w += module.get_delta_weight(name).to(torch.float32)
            if base.weight_bits == 1:
                codes, scale = bk.binarize(w, per_channel=base.per_channel)
            else:
                codes, scale = bk.ternarize(w, per_channel=base.per_channel, eps=base.eps)
            base.packed_weight = bk.pack(codes, base.weight_bits)
            base.weight_scale = scale.reshape(base.weight_scale.shape).to(torch.float32)
        module.merged_adapters.extend(names)
        merged += 1
    logger.info("merged LoRA adapters into %d layers", merged)
    return peft_model.unload()


__all__ = ["merge_lora"]
