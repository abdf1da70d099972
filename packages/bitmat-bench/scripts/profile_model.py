"""Where a model's time goes, kernel by kernel (CUDA GPU): a few layers of a preset shape, bf16 and BitMat, one eager
prefill and the compiled decode step (as GraphGreedyDecoder compiles it, without the graph so the profiler sees each
kernel), with CUDA time summed by kernel name per layer-forward. Complements `bitmat-bench model` (which times the
whole step) when deciding what to fuse or speed up next.

    python packages/bitmat-bench/scripts/profile_model.py --out $OUT/profile.txt [--layers 4] [--model llama3-8b]
"""

from __future__ import annotations

import argparse
import collections

import torch
from bitmat_bench.model import build_model, convert, resolve_arch
from bitmat_bench.shapes import model_preset
from torch.profiler import ProfilerActivity, profile


def kernel_table(prof, per: float, top: int = 25) -> tuple[str, float]:
    """Kernels by total CUDA time, divided by `per` (e.g. layers x steps)."""
    totals: dict[str, float] = collections.defaultdict(float)
    counts: dict[str, int] = collections.defaultdict(int)
    for evt in prof.events():
        if evt.device_type == torch.autograd.DeviceType.CUDA:
            totals[evt.name] += evt.device_time
            counts[evt.name] += 1
    total = sum(totals.values())
    rows = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    lines = [f"{'us':>9} {'share':>6} {'launches':>8}  kernel"]
    for name, us in rows:
        lines.append(f"{us / per:9.2f} {us / total:6.1%} {counts[name] / per:8.2f}  {name[:110]}")
    return "\n".join(lines), total / per


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="llama3-8b")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--prefill-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--impls", default="bf16,bitmat")
    args = ap.parse_args()
    from bitmat_hf import GraphGreedyDecoder
    from bitmat_hf.generation import cache_kwargs

    device = torch.device("cuda")
    p = model_preset(args.model)
    report = []
    for variant in args.impls.split(","):
        model, _ = build_model(p, resolve_arch(p, "auto"), args.layers, device, torch.bfloat16, seed=0)
        model, note = convert(model, variant)
        report.append(f"==== {args.model}, {args.layers} layers, {variant}: {note}")
        with torch.no_grad():
            from transformers import StaticCache

            cache = StaticCache(config=model.config.get_text_config(decoder=True), max_cache_len=args.prefill_len)
            ids = torch.randint(3, p.vocab_size, (1, args.prefill_len), device=device)
            for _ in range(2):  # warm-up: Triton compilation, cuBLAS heuristics
                cache.reset()
                model(input_ids=ids, use_cache=True, logits_to_keep=1, **cache_kwargs(model, cache))
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                cache.reset()
                model(input_ids=ids, use_cache=True, logits_to_keep=1, **cache_kwargs(model, cache))
                torch.cuda.synchronize()
            table, per_layer = kernel_table(prof, args.layers)
            report.append(f"-- eager prefill 1x{args.prefill_len}, CUDA us per layer (total {per_layer:.0f}):\n{table}")
            del cache
            dec = GraphGreedyDecoder(model, max_cache_len=64 + args.steps + 8, compile="full", cuda_graph=False)
            prompt = torch.randint(3, p.vocab_size, (args.batch, 32), device=device)
            dec.generate(prompt, max_new_tokens=4)  # compile
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(args.steps):  # decode steps only, continuing the cache of the call above
                    dec._step_fn()
                torch.cuda.synchronize()
            table, per_layer = kernel_table(prof, args.layers * args.steps)
            report.append(
                f"-- compiled decode step, batch {args.batch}, CUDA us per layer per step (the LM head and argmax "
                f"count once per step, spread over the layers; total {per_layer:.1f}):\n{table}"
            )
            dec.close()
        print("\n\n".join(report[-3:]), flush=True)
        del model, dec
        torch._dynamo.reset()
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        f.write("\n\n".join(report) + "\n")


if __name__ == "__main__":
    main()
