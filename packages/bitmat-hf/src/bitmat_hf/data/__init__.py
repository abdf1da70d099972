"""Offline demo data, so the demo and the tests never touch the network: an embedded English corpus (written for
BitMat, public domain), Python's own documentation topics (`pydoc_data`, shipped with CPython) when present, and a
tokenizer built from them locally."""

from __future__ import annotations

from importlib import resources

import torch


def demo_corpus() -> str:
    """The embedded corpus (about 6.5 KB of plain English prose)."""
    return resources.files(__package__).joinpath("corpus.txt").read_text(encoding="utf-8")


def split_corpus(text: str | None = None, validation_fraction: float = 0.15) -> tuple[str, str]:
    """(train, validation) split on paragraph boundaries; the last paragraphs are held out."""
    text = demo_corpus() if text is None else text
    paragraphs = [p for p in text.split("\n") if p.strip()]
    n_val = max(1, round(len(paragraphs) * validation_fraction))
    return "\n".join(paragraphs[:-n_val]) + "\n", "\n".join(paragraphs[-n_val:]) + "\n"


def python_doc_topics() -> list[str]:
    """The texts of Python's `help()` topics (about 450 KB of English documentation), or [] if not installed."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # pragma: no cover - stripped Python installs
        return []
    return [topics[k] for k in sorted(topics)]


def demo_texts(max_chars: int | None = None, validation_every: int = 10) -> tuple[str, str]:
    """(train, validation) texts of the demo: the embedded corpus (last paragraphs held out) plus Python's doc
    topics (every `validation_every`-th topic held out), each capped at `max_chars` characters."""
    train, val = split_corpus()
    topics = python_doc_topics()
    train_parts = [train] + [t for i, t in enumerate(topics) if i % validation_every != validation_every - 1]
    val_parts = [val] + [t for i, t in enumerate(topics) if i % validation_every == validation_every - 1]
    train_text, val_text = "\n".join(train_parts), "\n".join(val_parts)
    if max_chars is not None:
        train_text, val_text = train_text[:max_chars], val_text[: max(max_chars // 8, 2048)]
    return train_text, val_text


def build_tokenizer(text: str | None = None, vocab_size: int = 384):
    """A byte-level BPE tokenizer trained on `text` (the demo corpus by default), wrapped in
    transformers.PreTrainedTokenizerFast with <bos>, <eos> and <pad> tokens. Deterministic and offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = demo_corpus() if text is None else text
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([line for line in text.split("\n") if line], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def token_blocks(tokenizer, text: str, block_size: int) -> torch.Tensor:
    """The text as one token stream cut into rows of `block_size` tokens (the tail is dropped), int64 [B, T]."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    n = len(ids) // block_size
    if n == 0:
        raise ValueError(f"text of {len(ids)} tokens is shorter than one block of {block_size}")
    return torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)


__all__ = ["build_tokenizer", "demo_corpus", "demo_texts", "python_doc_topics", "split_corpus", "token_blocks"]
