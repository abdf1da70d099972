"""Tiny models built locally (no downloads) for the bitmat-hf tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import bitmat_hf  # noqa: F401  (registers the Auto classes and the quantizer)
import torch

ARCHS = ("llama", "mistral", "gemma", "qwen2")
VOCAB = 96


def make_config(arch: str, **overrides):
    from transformers import GemmaConfig, LlamaConfig, MistralConfig, Qwen2Config

    common = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    common.update(overrides)
    if arch == "llama":
        return LlamaConfig(**common)
    if arch == "mistral":
        return MistralConfig(**common)
    if arch == "gemma":
        return GemmaConfig(head_dim=8, **common)
    if arch == "qwen2":
        return Qwen2Config(**common)
    raise ValueError(arch)


def make_model(arch: str, seed: int = 0, **overrides):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(make_config(arch, **overrides))
    # Non-trivial norms and biases so a lost tensor would show in the logits.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def input_ids(batch: int = 2, length: int = 12, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, length), generator=g)


def logits(model, ids=None) -> torch.Tensor:
    ids = input_ids() if ids is None else ids
    model.eval()
    with torch.no_grad():
        return model(ids).logits


def folder_digest(folder: str | os.PathLike) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir()) if p.is_file()}
