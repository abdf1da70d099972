"""`bitmat-bench model`: prefill and decode tokens/s and memory of a Llama-style model of a named
shape with random weights, in bf16 and with ternary weights.

Variants (`--impls`):

* `bf16`: the transformers LlamaForCausalLM as built (the baseline);
* `bitmat-kernels`: every nn.Linear of the decoder layers swapped for a packed ternary layer that
  calls `bitmat_kernels.bitmat_linear` (W1.58A8; `bitmat-kernels-a16` for weight-only): works with
  bitmat-kernels alone;
* `bitmat-nn`: bitmat_nn.replace_linear_with_bitlinear on the decoder layers, in eval mode;
* `bitmat-hf`: bitmat_hf.convert_hf_model, when it is installed.

Prefill: one forward of [B, prompt_len] tokens into a static KV cache. Decode: one step of [B, 1]
tokens at position prompt_len, captured in a CUDA graph and replayed (static cache), tokens/s = B /
step time. Embeddings, norms and the LM head stay bf16 in every variant.
"""

from __future__ import annotations

import gc
import logging
import time
import traceback
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from .env import CPU_NOTICE, environment
from .impls import tensor_bytes
from .report import ResultWriter, progress_bar
from .shapes import ModelPreset, model_preset, parse_ints
from .timing import time_graph

log = logging.getLogger(__name__)

VARIANTS = ("bf16", "bitmat-kernels", "bitmat-kernels-a16", "bitmat-nn", "bitmat-hf")


class PackedTernaryLinear(nn.Module):
    """An inference-only linear layer around bitmat_kernels: packed ternary weight + per-tensor scale."""

    def __init__(self, linear: nn.Linear, activation_bits: int | None = 8):
        super().__init__()
        import bitmat_kernels as bk

        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.activation_bits = activation_bits
        codes, scale = bk.ternarize(linear.weight.detach().float())
        self.register_buffer("packed", bk.pack(codes, weight_bits=1.58))
        self.register_buffer("scale", scale.to(torch.float32))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import bitmat_kernels as bk

        return bk.bitmat_linear(
            x,
            self.packed,
            self.scale,
            in_features=self.in_features,
            weight_bits=1.58,
            activation_bits=self.activation_bits,
            bias=self.bias,
        )


def swap_linears(root: nn.Module, make) -> int:
    """Replace every nn.Linear below `root` by make(linear); returns how many."""
    count = 0
    for name, child in list(root.named_modules()):
        if isinstance(child, nn.Linear) and not isinstance(child, PackedTernaryLinear):
            parent_name, _, attr = name.rpartition(".")
            parent = root.get_submodule(parent_name) if parent_name else root
            setattr(parent, attr, make(child))
            del child
            count += 1
    return count


def build_llama(p: ModelPreset, num_layers: int | None, device: torch.device, dtype: torch.dtype, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=p.vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=num_layers or p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        head_dim=p.head_dim or p.hidden_size // p.num_heads,
        max_position_embeddings=8192,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    model = model.to(device=device, dtype=dtype)
    model.eval()
    model.requires_grad_(False)
    return model, cfg


def convert(model, variant: str):
    """Turn the bf16 model into `variant` in place; returns (model, note)."""
    layers = model.model.layers
    if variant == "bf16":
        return model, ""
    if variant in ("bitmat-kernels", "bitmat-kernels-a16"):
        ab = 8 if variant == "bitmat-kernels" else None
        n = swap_linears(layers, lambda lin: PackedTernaryLinear(lin, ab))
        return model, f"{n} linears packed (W1.58A{'8' if ab else '16'})"
    if variant == "bitmat-nn":
        try:
            import bitmat_nn
        except Exception as e:
            raise ImportError(f"bitmat-nn not installed/not available ({type(e).__name__}: {e})") from e
        fn = getattr(bitmat_nn, "replace_linear_with_bitlinear", None)
        if fn is None:
            raise ImportError("bitmat-nn not installed/not available (no replace_linear_with_bitlinear)")
        fn(layers)
        model.eval()
        return model, "bitmat_nn.replace_linear_with_bitlinear(model.model.layers), eval"
    if variant == "bitmat-hf":
        try:
            import bitmat_hf
        except Exception as e:
            raise ImportError(f"bitmat-hf not installed/not available ({type(e).__name__}: {e})") from e
        fn = getattr(bitmat_hf, "convert_hf_model", None)
        if fn is None:
            raise ImportError("bitmat-hf not installed/not available (no convert_hf_model)")
        out = fn(model)
        model = out if isinstance(out, nn.Module) else model
        model.eval()
        return model, "bitmat_hf.convert_hf_model(model), eval"
    raise ValueError(f"--impls: expected some of {VARIANTS}, got {variant!r}")


def _static_cache(model, cfg, batch: int, max_len: int, device, dtype):
    from transformers import StaticCache

    attempts = (
        lambda: StaticCache(config=cfg, max_cache_len=max_len),
        lambda: StaticCache(config=cfg, max_batch_size=batch, max_cache_len=max_len, device=device, dtype=dtype),
    )
    err = None
    for make in attempts:
        try:
            return make()
        except TypeError as e:
            err = e
    raise RuntimeError(f"cannot build a StaticCache: {err}")


def _reset(cache) -> None:
    reset = getattr(cache, "reset", None)
    if callable(reset):
        reset()


def _bench_variant(model, cfg, p, batch, prompt_len, device, dtype, args) -> dict:
    out: dict = {}
    # Some transformers versions advance the static cache on every call (graph replays included):
    # leave room for every decode call this measurement makes.
    decode_calls = 2 * max(1, args.warmup) + args.replays + 10
    cache = _static_cache(model, cfg, batch, prompt_len + decode_calls + 32, device, dtype)
    g = torch.Generator(device="cpu").manual_seed(args.seed)
    ids = torch.randint(0, p.vocab_size, (batch, prompt_len), generator=g).to(device)
    pos = torch.arange(prompt_len, device=device)
    tok = torch.randint(0, p.vocab_size, (batch, 1), generator=g).to(device)
    step_pos = torch.tensor([prompt_len], device=device)

    def prefill():
        _reset(cache)
        return model(input_ids=ids, past_key_values=cache, cache_position=pos, use_cache=True).logits

    def decode():
        return model(input_ids=tok, past_key_values=cache, cache_position=step_pos, use_cache=True).logits

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        logits = prefill()
        if not bool(torch.isfinite(logits.float()).all()):
            out["warning"] = "non-finite prefill logits (random weights)"
        del logits
        tp = time_graph(prefill, replays=max(3, args.replays // 2), warmup=1, device=device, use_graph=False)
        out["prefill_ms"] = tp.median_us / 1e3
        out["prefill_p10_ms"], out["prefill_p90_ms"] = tp.p10_us / 1e3, tp.p90_us / 1e3
        out["prefill_tokens_per_s"] = batch * prompt_len / (tp.median_us * 1e-6)
        prefill()  # a fresh cache holding the prompt, then the decode steps
        td = time_graph(
            decode,
            replays=args.replays,
            warmup=args.warmup,
            device=device,
            use_graph=not args.no_graph,
            eager_calls=10,
        )
        out["decode_ms"] = td.median_us / 1e3
        out["decode_p10_ms"], out["decode_p90_ms"] = td.p10_us / 1e3, td.p90_us / 1e3
        out["decode_eager_ms"] = (td.eager_us or float("nan")) / 1e3
        out["decode_tokens_per_s"] = batch / (td.median_us * 1e-6)
        out["decode_method"] = td.method
        if td.note:
            out["note"] = td.note
    return out


def run_model(args, argv, device: torch.device, out_dir: Path) -> ResultWriter:
    t0 = time.monotonic()
    cpu = device.type != "cuda"
    if cpu:
        log.warning(CPU_NOTICE)
    p = model_preset(args.model or ("tiny" if cpu else "llama3-8b"))
    num_layers = args.num_layers or (2 if cpu else None)
    batches = parse_ints(args.batch, [1] if cpu else [1, 16], "--batch")
    prompt_len = args.prompt_len or (16 if cpu else 512)
    variants = [v.strip().lower() for v in args.impls.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"--impls: expected some of {','.join(VARIANTS)}, got {v!r}")
    dtype = torch.bfloat16
    env = environment(argv)
    env["settings"] = {
        "model": p.name,
        "preset": p.__dict__,
        "num_layers": num_layers or p.num_layers,
        "batches": batches,
        "prompt_len": prompt_len,
        "variants": variants,
        "replays": args.replays,
    }
    writer = ResultWriter(out_dir, "model", env)
    bar = progress_bar(len(variants) * len(batches), "model", not args.no_progress)
    complete = False
    try:
        for variant in variants:
            _run_variant(writer, variant, p, num_layers, batches, prompt_len, device, dtype, args, bar, t0)
            writer.flush()
        complete = True
    except KeyboardInterrupt:
        log.warning("interrupted: writing the results so far")
    finally:
        bar.close()
        _add_model_speedups(writer.records)
        writer.extra["elapsed_s"] = round(time.monotonic() - t0, 2)
        writer.finish(complete=complete)
    return writer


def _run_variant(writer, variant, p, num_layers, batches, prompt_len, device, dtype, args, bar, t0) -> None:
    base = {"model": p.name, "shape": p.name, "impl": variant, "layers": num_layers or p.num_layers}
    model = None
    try:
        if args.max_seconds is not None and time.monotonic() - t0 > args.max_seconds:
            for b in batches:
                writer.add({**base, "m": b, "batch": b, "status": "not-run", "reason": "time budget"})
                bar.update(1)
            return
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model, cfg = build_llama(p, num_layers, device, dtype, args.seed)
        model, note = convert(model, variant)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        weight_bytes = tensor_bytes(model)
    except ImportError as e:
        for b in batches:
            writer.add({**base, "m": b, "batch": b, "status": "skipped", "reason": str(e)})
            bar.update(1)
        return
    except Exception as e:
        err = f"{type(e).__name__}: {e}"[:500]
        log.warning("model %s: build/convert failed: %s", variant, err)
        log.debug("%s", traceback.format_exc())
        for b in batches:
            writer.add({**base, "m": b, "batch": b, "status": "failed", "error": f"build: {err}"})
            bar.update(1)
        del model
        _cleanup(device)
        return
    for b in batches:
        rec = {**base, "m": b, "batch": b, "prompt_len": prompt_len, "weight_bytes": weight_bytes, "note": note}
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            rec.update(_bench_variant(model, cfg, p, b, prompt_len, device, dtype, args))
            if device.type == "cuda":
                rec["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
            rec["status"] = "ok"
        except Exception as e:
            err = f"{type(e).__name__}: {e}"[:500]
            log.warning("model %s batch %d failed: %s", variant, b, err)
            log.debug("%s", traceback.format_exc())
            rec.update({"status": "failed", "error": err})
        writer.add(rec)
        bar.update(1)
    del model
    _cleanup(device)


def _cleanup(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _add_model_speedups(records: list[dict]) -> None:
    base = {r["batch"]: r for r in records if r.get("impl") == "bf16" and r.get("status") == "ok"}
    for r in records:
        b = base.get(r.get("batch"))
        if b is None or r.get("status") != "ok":
            continue
        for k in ("decode_tokens_per_s", "prefill_tokens_per_s"):
            if r.get(k) and b.get(k):
                r[k.replace("_tokens_per_s", "_speedup_vs_bf16")] = r[k] / b[k]
        if r.get("weight_bytes") and b.get("weight_bytes"):
            r["weight_memory_vs_bf16"] = r["weight_bytes"] / b["weight_bytes"]


__all__ = ["VARIANTS", "PackedTernaryLinear", "build_llama", "convert", "run_model", "swap_linears"]
