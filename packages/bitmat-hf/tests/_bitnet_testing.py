"""Tiny checkpoints in transformers' own "bitnet" format, built locally with transformers' classes and its own
packing function (transformers.integrations.bitnet.pack_weights); no downloads."""

from __future__ import annotations

import json
from pathlib import Path

import torch

VOCAB = 96


def bitnet_config(tie: bool = True, **overrides):
    from transformers import BitNetConfig

    kw = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention
        max_position_embeddings=128,
        tie_word_embeddings=tie,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    kw.update(overrides)
    return BitNetConfig(**kw)


def float_bitnet_model(seed: int = 0, tie: bool = True, **overrides):
    """A full-precision BitNetForCausalLM (subln norms, relu2 FFN, GQA, RoPE) with non-trivial norms."""
    from transformers import BitNetForCausalLM

    torch.manual_seed(seed)
    model = BitNetForCausalLM(bitnet_config(tie, **overrides))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.2)
            elif "embed" in name or "lm_head" in name:
                p.mul_(25.0)  # logits of order 1, not 0.01
    return model.eval()


def make_bitnet_checkpoint(
    folder,
    linear_class: str = "autobitlinear",
    dtype: torch.dtype = torch.float32,
    *,
    seed: int = 0,
    tie=True,
    legacy_config: bool = False,
) -> Path:
    """Quantizes a tiny float BitNet model the way BitNet b1.58 does (absmean ternary, per tensor), packs it with
    transformers' pack_weights and writes it as transformers' "bitnet" format: uint8 weight [out/4, in],
    weight_scale [1] = mean|W| ("autobitlinear") or 1/mean|W| ("bitlinear"), everything else in `dtype`.
    The float values are rounded to bf16 first, so checkpoints in different dtypes hold the same numbers.
    legacy_config writes config.json as microsoft/bitnet-b1.58-2B-4T's does (torch_dtype, rope_theta)."""
    from safetensors.torch import save_file
    from transformers.integrations.bitnet import pack_weights
    from transformers.utils.quantization_config import BitNetQuantConfig

    model = float_bitnet_model(seed, tie)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    linears = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"}
    for key, value in model.state_dict().items():
        owner = key.rpartition(".")[0]
        if key == "lm_head.weight" and tie:
            continue
        if owner in linears:
            w = value.float()
            gamma = w.abs().mean().clamp(min=1e-5)
            codes = (w / gamma).round().clamp(-1, 1)
            gamma = gamma.to(torch.bfloat16).float()
            state[key] = pack_weights(codes.clone())
            scale = gamma if linear_class == "autobitlinear" else 1.0 / gamma
            state[owner + ".weight_scale"] = scale.reshape(1).to(torch.bfloat16).to(dtype)
        else:
            state[key] = value.to(torch.bfloat16).to(dtype).contiguous()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config["dtype"] = str(dtype).replace("torch.", "")
    q = BitNetQuantConfig(linear_class=linear_class, quantization_mode="offline").to_dict()
    q["quant_method"] = "bitnet"
    config["quantization_config"] = q
    if legacy_config:
        config["torch_dtype"] = config.pop("dtype")
        config["rope_theta"] = config.pop("rope_parameters")["rope_theta"]
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def ids(batch: int = 2, length: int = 12, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, length), generator=g)


def hf_model(folder, **kw):
    """Stock transformers' BitNetForCausalLM with its own BitLinear/AutoBitLinear layers."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), **kw).eval()


def run(model, input_ids=None) -> torch.Tensor:
    with torch.no_grad():
        return model(ids() if input_ids is None else input_ids).logits.float()
