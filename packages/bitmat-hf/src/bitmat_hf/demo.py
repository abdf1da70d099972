"""`bitmat demo`: the whole BitMat workflow on an embedded default, offline, in a few minutes on a laptop CPU.

1. build a byte-level BPE tokenizer and a small Mistral-architecture model locally;
2. pre-train it briefly (full precision) on the embedded corpus;
3. convert it to 1.58 bits with `convert_hf_model` (perplexity before and right after);
4. fine-tune it quantization-aware for a few steps (perplexity after);
5. save it packed, reload it with `Mistral158ForCausalLM.from_pretrained`, check the logits match;
6. generate a sample and report sizes, perplexities and tokens/s.

On a GPU the model runs there (packed Triton kernels in evaluation); on CPU the reference kernels run.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data import build_tokenizer, demo_texts, token_blocks
from .utils import progress

logger = logging.getLogger(__name__)


@dataclass
class DemoSettings:
    hidden_size: int = 96
    intermediate_size: int = 256
    num_layers: int = 2
    vocab_size: int = 1024
    max_chars: int | None = None
    block_size: int = 128
    batch_size: int = 16
    pretrain_steps: int = 400
    qat_steps: int = 200
    pretrain_lr: float = 3e-3
    qat_lr: float = 1e-3
    new_tokens: int = 40
    prompt: str = "The river"
    seed: int = 0
    device: str | None = None
    out: str | None = None


@dataclass
class DemoResult:
    rows: dict[str, Any] = field(default_factory=dict)
    sample: str = ""
    folder: str = ""


@torch.no_grad()
def perplexity(model, blocks: torch.Tensor, batch_size: int = 8) -> float:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        ids = blocks[i : i + batch_size].to(device)
        loss = model(ids, labels=ids).loss
        n = ids.numel() - ids.shape[0]
        total += loss.item() * n
        count += n
    model.train(was_training)
    return math.exp(total / count)


def _train(model, blocks: torch.Tensor, steps: int, lr: float, batch_size: int, desc: str, seed: int) -> float:
    device = next(model.parameters()).device
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.1, 1 - s / steps))
    g = torch.Generator().manual_seed(seed)
    loss = torch.tensor(float("nan"))
    for _ in progress(range(steps), desc=desc):
        idx = torch.randint(0, len(blocks), (batch_size,), generator=g)
        ids = blocks[idx].to(device)
        loss = model(ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    return float(loss.item())


def _folder_bytes(path: Path, suffix: str = ".safetensors") -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.name.endswith(suffix))


def _linear_bytes(model) -> tuple[int, int]:
    """(float32 bytes the converted linear weights had, bytes of their packed weights + scales)."""
    from .convert import bitlinear_modules

    float_bytes = packed_bytes = 0
    for _, m in bitlinear_modules(model):
        float_bytes += m.in_features * m.out_features * 4
        p, s = (m.packed_weight, m.weight_scale) if m.weight is None else m.pack_weights()
        packed_bytes += p.numel() + s.numel() * 4
    return float_bytes, packed_bytes


def run_demo(settings: DemoSettings | None = None) -> DemoResult:
    from transformers import MistralConfig, MistralForCausalLM

    from .convert import convert_hf_model
    from .modeling import Mistral158ForCausalLM

    s = settings or DemoSettings()
    torch.manual_seed(s.seed)
    device = torch.device(s.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result = DemoResult()
    t_start = time.perf_counter()

    train_text, val_text = demo_texts(s.max_chars)
    tokenizer = build_tokenizer(train_text, vocab_size=s.vocab_size)
    train_blocks = token_blocks(tokenizer, train_text, s.block_size)
    val_blocks = token_blocks(tokenizer, val_text, s.block_size)
    logger.info(
        "corpus: %d training and %d validation blocks of %d tokens", len(train_blocks), len(val_blocks), s.block_size
    )

    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=s.hidden_size,
        intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4 * s.block_size,
        sliding_window=None,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = MistralForCausalLM(config).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "model: Mistral architecture, %d layers, hidden %d, %.2fM parameters",
        s.num_layers,
        s.hidden_size,
        n_params / 1e6,
    )

    t0 = time.perf_counter()
    _train(model, train_blocks, s.pretrain_steps, s.pretrain_lr, s.batch_size, "Pre-training (float)", s.seed)
    ppl_float = perplexity(model, val_blocks)
    ppl_float_train = perplexity(model, train_blocks)
    t_pretrain = time.perf_counter() - t0

    out = Path(s.out) if s.out else Path(tempfile.mkdtemp(prefix="bitmat-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "float")
    float_file = _folder_bytes(out / "float")

    model = convert_hf_model(model, show_progress=False)
    ppl_converted = perplexity(model, val_blocks)

    t0 = time.perf_counter()
    _train(model, train_blocks, s.qat_steps, s.qat_lr, s.batch_size, "Quantization-aware fine-tuning", s.seed + 1)
    ppl_qat = perplexity(model, val_blocks)
    ppl_qat_train = perplexity(model, train_blocks)
    t_qat = time.perf_counter() - t0

    packed_dir = out / "bitmat-1.58"
    model.save_pretrained(packed_dir)
    tokenizer.save_pretrained(packed_dir)
    packed_file = _folder_bytes(packed_dir)
    linear_float, linear_packed = _linear_bytes(model)

    reloaded = Mistral158ForCausalLM.from_pretrained(packed_dir).to(device)
    probe = val_blocks[:2].to(device)
    with torch.no_grad():
        same = torch.equal(reloaded(probe).logits, model(probe).logits)
    if not same:
        raise RuntimeError("the reloaded packed model does not reproduce the in-memory model's logits")
    ppl_reloaded = perplexity(reloaded, val_blocks)

    enc = tokenizer(s.prompt, return_tensors="pt").to(device)
    gen_kwargs = dict(
        max_new_tokens=s.new_tokens, do_sample=False, repetition_penalty=1.2, pad_token_id=tokenizer.pad_token_id
    )
    reloaded.generate(**enc, max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.pad_token_id)  # warm-up
    t0 = time.perf_counter()
    generated = reloaded.generate(**enc, **gen_kwargs)
    dt = time.perf_counter() - t0
    new = generated.shape[1] - enc["input_ids"].shape[1]
    result.sample = tokenizer.decode(generated[0], skip_special_tokens=True)
    result.folder = str(packed_dir)
    result.rows = {
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "parameters": n_params,
        "float checkpoint (fp32)": float_file,
        "packed checkpoint": packed_file,
        "linear weights fp32 -> packed": (linear_float, linear_packed),
        "perplexity, float": ppl_float,
        "perplexity, right after conversion": ppl_converted,
        "perplexity, after QAT": ppl_qat,
        "perplexity, reloaded packed": ppl_reloaded,
        "train perplexity float / after QAT": (ppl_float_train, ppl_qat_train),
        "pre-training / QAT time (s)": (t_pretrain, t_qat),
        "generation tokens/s": new / dt if dt > 0 else float("inf"),
        "total time (s)": time.perf_counter() - t_start,
    }
    return result


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB"


def format_table(result: DemoResult) -> str:
    r = result.rows
    lf, lp = r["linear weights fp32 -> packed"]
    pt, qt = r["pre-training / QAT time (s)"]
    tf, tq = r["train perplexity float / after QAT"]
    rows = [
        ("device", r["device"]),
        ("parameters", f"{r['parameters'] / 1e6:.2f} M"),
        ("float checkpoint (fp32 safetensors)", _mb(r["float checkpoint (fp32)"])),
        ("packed checkpoint (1.58-bit safetensors)", _mb(r["packed checkpoint"])),
        ("linear weights: fp32 -> packed", f"{_mb(lf)} -> {_mb(lp)} ({lf / max(lp, 1):.1f}x smaller)"),
        ("perplexity, float (validation)", f"{r['perplexity, float']:.2f}"),
        ("perplexity, right after conversion", f"{r['perplexity, right after conversion']:.2f}"),
        ("perplexity, after QAT fine-tune", f"{r['perplexity, after QAT']:.2f}"),
        ("perplexity, reloaded packed model", f"{r['perplexity, reloaded packed']:.2f}"),
        ("train perplexity, float / after QAT", f"{tf:.2f} / {tq:.2f}"),
        ("pre-training / QAT time", f"{pt:.1f} s / {qt:.1f} s"),
        ("generation speed", f"{r['generation tokens/s']:.1f} tokens/s"),
        ("total time", f"{r['total time (s)']:.1f} s"),
    ]
    w = max(len(k) for k, _ in rows)
    v = max(len(str(x)) for _, x in rows)
    line = f"+-{'-' * w}-+-{'-' * v}-+"
    body = [line, f"| {'BitMat demo'.ljust(w)} | {''.ljust(v)} |", line]
    body += [f"| {k.ljust(w)} | {str(x).ljust(v)} |" for k, x in rows]
    body.append(line)
    body.append(f"saved to: {result.folder}")
    body.append(f"sample:   {result.sample!r}")
    return "\n".join(body)


__all__ = ["DemoResult", "DemoSettings", "format_table", "perplexity", "run_demo"]


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(format_table(run_demo()))
