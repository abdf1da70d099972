"""`bitmat-bench model`: end-to-end generation speed of a decoder LM of a named shape with random weights (no
download), ternary (BitMat) against the same model in bf16, both with a static KV cache and CUDA graphs.

Per model shape (`--model llama3-8b,bitnet-2b`) and variant (`--impls`), one model is built on the device in
bf16 (random weights), converted, and its latent weights dropped at once (so memory holds the packed model only).
Variants:

* `bf16`: the transformers model as built: the baseline;
* `bitmat` (alias `bitmat-hf`): `bitmat_hf.convert_hf_model` + `prepare_for_fast_generation` (W1.58A8, packed,
  q/k/v and gate/up fused into one matmul each, norms and SiLU * up quantizing for the projections they feed);
* `bitmat-unfused`: the same with every projection its own matmul and its own quantization
  (`fuse_projections=False, fuse_quantization=False`);
* `bitmat-nn`: `bitmat_nn.replace_linear_with_bitlinear` on the decoder layers, latent weights dropped;
* `bitmat-kernels` / `bitmat-kernels-a16`: every decoder nn.Linear swapped for a bare packed layer calling
  `bitmat_kernels.bitmat_linear` (A8 / weight-only);
* `hf-bitnet`: transformers' own BitNet `BitLinear` layers (HF "bitnet" packed format, unpacked every call),
  for the `bitnet` architecture: transformers' BitNet model quantized its own way.

`--arch`: `llama` (transformers LlamaForCausalLM of the preset's sizes), `bitnet` (transformers
BitNetForCausalLM: subln, squared ReLU), `auto` (bitnet for bitnet-2b where transformers has it, else llama).
Embeddings, norms and the LM head stay bf16 in every variant.

Measurements (`--modes`), each a record:

* `prefill`: one forward of [1, --prefill-len] tokens into a static cache (eager, logits of the last token),
  tokens/s; its logits are checked finite;
* `graph`: `bitmat_hf.GraphGreedyDecoder`: a [B, --prompt-len] prompt, --new-tokens greedy tokens, the decode
  step (forward + argmax) captured in ONE CUDA graph, the step compiled whole (`--compile`). decode tokens/s =
  B x (new - 1) / decode time; also step_ms, the prompt's prefill time, end-to-end tokens/s, peak memory, and
  the LM head's own time per step (a CUDA graph of lm_head alone), the share of the step it takes;
* `generate`: `model.generate(...)` after `bitmat_hf.prepare_for_fast_generation` (static cache, transformers'
  own torch.compile "reduce-overhead", i.e. CUDA graphs): the user's path. One warm-up call (compilation), then a
  timed call; tokens/s = B x new / time (prefill included, as transformers users measure it), host_overhead_ms =
  its per-step time minus the graph mode's step.

Every generated token is checked to be a valid id; the BitMat model's tokens are compared with bf16's (agreement
is reported, not required: ternary weights change the model). `headline.md` holds the ratios against bf16.

`--isolate` (default on CUDA when there is more than one (preset, variant) to run): each (preset, variant) is
measured by a fresh `python -m bitmat_bench model` of its own (into `<out>/isolated/<preset>-<variant>/`), and the
parent merges the records, then computes the ratios and the token agreement. Models measured one after another in
one process are not independent: on an H100 whichever came second read slower, bf16 and BitMat alike.
"""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from .env import CPU_NOTICE, command_line, environment
from .impls import tensor_bytes
from .report import ResultWriter, load, progress_bar
from .shapes import ModelPreset, model_preset, parse_ints
from .timing import time_graph

log = logging.getLogger(__name__)

VARIANTS = ("bf16", "bitmat", "bitmat-unfused", "bitmat-nn", "bitmat-kernels", "bitmat-kernels-a16", "hf-bitnet")
_ALIASES = {"bitmat-hf": "bitmat", "bitmat-w158a8": "bitmat"}
MODES = ("prefill", "graph", "generate")
BASE = "bf16"


class PackedTernaryLinear(nn.Module):
    """An inference-only linear layer around bitmat_kernels: packed ternary weight + per-tensor scale."""

    def __init__(self, linear: nn.Linear, activation_bits: int | None = 8):
        super().__init__()
        import bitmat_kernels as bk

        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.activation_bits = activation_bits
        codes, scale = bk.ternarize(linear.weight.detach())
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
    """Replace every nn.Linear below `root` by make(linear), one at a time (the old weight is freed as it goes)."""
    names = [n for n, c in root.named_modules() if type(c) is nn.Linear]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        child = getattr(parent, attr)
        setattr(parent, attr, make(child))
        del child
    return len(names)


def resolve_arch(p: ModelPreset, arch: str) -> str:
    if arch not in ("auto", "llama", "bitnet"):
        raise ValueError(f"--arch: expected auto, llama or bitnet, got {arch!r}")
    if arch != "auto":
        return arch
    if p.name == "bitnet-2b":
        try:
            from transformers import BitNetForCausalLM  # noqa: F401

            return "bitnet"
        except ImportError:
            return "llama"
    return "llama"


def build_model(p: ModelPreset, arch: str, num_layers: int | None, device, dtype, seed: int):
    """A transformers causal LM of the preset's shape with random weights, built directly on `device` in `dtype`."""
    common = dict(
        vocab_size=p.vocab_size,
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=num_layers or p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_kv_heads,
        head_dim=p.head_dim or p.hidden_size // p.num_heads,
        max_position_embeddings=8192,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=None,
    )
    if arch == "bitnet":
        from transformers import BitNetConfig, BitNetForCausalLM

        common.pop("head_dim")
        cfg, cls = BitNetConfig(**common), BitNetForCausalLM
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg, cls = LlamaConfig(**common), LlamaForCausalLM
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = cls(cfg)
    finally:
        torch.set_default_dtype(previous)
    model = model.to(device=device, dtype=dtype)
    model.eval()
    model.requires_grad_(False)
    model.generation_config.eos_token_id = None  # no early stop: every run generates exactly --new-tokens
    model.generation_config.pad_token_id = 0
    return model, cfg


def _hf_bitnet_layer(linear: nn.Linear):
    """transformers' BitNet BitLinear (packed HF "bitnet" format) holding `linear`'s ternarized weight."""
    from transformers.integrations.bitnet import BitLinear as HFBitLinear
    from transformers.integrations.bitnet import pack_weights

    w = linear.weight.detach()
    n, k = w.shape
    if n % 4:
        raise ValueError(f"hf-bitnet needs out_features divisible by 4, got {n}")
    layer = HFBitLinear(k, n, bias=linear.bias is not None, device=w.device, dtype=w.dtype)
    scale = w.float().abs().mean().clamp(min=1e-5)
    codes = (w.float() / scale).round().clamp(-1, 1)
    layer.weight.copy_(pack_weights(codes.to(torch.int8)))
    layer.weight_scale.fill_(1.0 / scale.item())  # "bitlinear" checkpoints store 1 / mean|W| (the forward divides)
    if linear.bias is not None:
        layer.bias.copy_(linear.bias.detach())
    return layer


def convert(model, variant: str):
    """Turn the bf16 model into `variant` in place, latent weights dropped; returns (model, note)."""
    layers = model.model.layers
    if variant == "bf16":
        return model, "transformers model as built (bf16)"
    if variant in ("bitmat-kernels", "bitmat-kernels-a16"):
        ab = 8 if variant == "bitmat-kernels" else None
        n = swap_linears(layers, lambda lin: PackedTernaryLinear(lin, ab))
        return model, f"{n} linears packed (W1.58A{'8' if ab else '16'})"
    if variant == "bitmat-nn":
        try:
            import bitmat_nn
        except Exception as e:
            raise ImportError(f"bitmat-nn not installed/not available ({type(e).__name__}: {e})") from e
        bitmat_nn.replace_linear_with_bitlinear(layers)
        for m in layers.modules():
            if isinstance(m, bitmat_nn.BitLinear):
                m.drop_latent_weights()
        model.eval()
        return model, "bitmat_nn.replace_linear_with_bitlinear(model.model.layers), latent weights dropped"
    if variant in ("bitmat", "bitmat-unfused"):
        try:
            import bitmat_hf
            import bitmat_nn
        except Exception as e:
            raise ImportError(f"bitmat-hf not installed/not available ({type(e).__name__}: {e})") from e
        model = bitmat_hf.convert_hf_model(model, show_progress=False)
        bitmat_hf.pack_and_drop_latent(model, show_progress=False)
        model.eval()
        note = f"bitmat_hf.convert_hf_model -> {type(model).__name__}, latent weights dropped (W1.58A8)"
        if variant == "bitmat":  # what prepare_for_fast_generation does by default
            note += f", {bitmat_nn.fuse_projections(model)} projection groups fused (q/k/v, gate/up)"
            note += f", {bitmat_nn.fuse_norms(model)} norms and {bitmat_nn.fuse_gated_mlps(model)} gated MLPs "
            note += "quantize for their readers"
        return model, note
    if variant == "hf-bitnet":
        if type(model).__name__ != "BitNetForCausalLM":
            raise ImportError("hf-bitnet applies to the bitnet architecture only (--arch bitnet)")
        n = swap_linears(layers, _hf_bitnet_layer)
        return model, f"transformers.integrations.bitnet.BitLinear x {n} (packed HF format, unpacked per call)"
    raise ValueError(f"--impls: expected some of {','.join(VARIANTS)}, got {variant!r}")


def weight_stats(model) -> dict:
    """Bytes of the decoder layers' linear weights, the LM head, the embeddings and everything."""
    seen: set[int] = set()
    lin = 0
    for m in model.model.layers.modules():
        if isinstance(m, nn.Linear) or "Linear" in type(m).__name__:
            lin += sum(
                tensor_bytes(t, seen) for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False))
            )
    head = model.get_output_embeddings()
    emb = model.get_input_embeddings()
    return {
        "linear_weight_bytes": lin,
        "lm_head_bytes": tensor_bytes(head) if head is not None else 0,
        "embedding_bytes": tensor_bytes(emb) if emb is not None else 0,
        "weight_bytes": tensor_bytes(model),
    }


# ---------------------------------------------------------------------------------------------- measurements


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device) -> dict:
    if device.type != "cuda":
        return {}
    return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device)}


def _random_ids(vocab: int, batch: int, length: int, seed: int, device) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randint(3, vocab, (batch, length), generator=g).to(device)


def _check_tokens(tokens: torch.Tensor, vocab: int, what: str) -> None:
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab):
        raise RuntimeError(f"{what}: generated token ids outside [0, {vocab})")


@torch.no_grad()
def measure_prefill(model, vocab, length, device, seed, repeats=3) -> dict:
    from bitmat_hf.generation import cache_kwargs
    from transformers import StaticCache

    cache = StaticCache(config=model.config.get_text_config(decoder=True), max_cache_len=length)
    ids = _random_ids(vocab, 1, length, seed, device)

    def run():
        cache.reset()
        return model(input_ids=ids, use_cache=True, logits_to_keep=1, **cache_kwargs(model, cache)).logits

    _peak_reset(device)
    logits = run()
    finite = bool(torch.isfinite(logits.float()).all())
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    out = {"prefill_len": length, "prefill_ms": t * 1e3, "prefill_tokens_per_s": length / t, "logits_finite": finite}
    out.update(_peak(device))
    return out


@torch.no_grad()
def lm_head_ms(model, batch, device, replays) -> float | None:
    head = model.get_output_embeddings()
    if head is None:
        return None
    x = torch.randn(batch, 1, head.in_features, device=device, dtype=head.weight.dtype)
    t = time_graph(lambda: head(x), replays=replays, warmup=2, device=device, eager=False)
    return t.median_us / 1e3


def measure_graph(decoder, vocab, batch, prompt_len, new_tokens, device, seed) -> tuple[dict, torch.Tensor]:
    ids = _random_ids(vocab, batch, prompt_len, seed, device)
    _peak_reset(device)
    first = decoder.generate(ids, max_new_tokens=new_tokens)  # warm-up, compile, capture
    setup_s = decoder.stats.get("setup_s", 0.0)
    tokens = decoder.generate(ids, max_new_tokens=new_tokens)
    st = dict(decoder.stats)
    _check_tokens(tokens, vocab, "graph")
    steps = max(1, st["decode_steps"])
    out = {
        "prompt_len": prompt_len,
        "new_tokens": new_tokens,
        "decode_tokens_per_s": batch * steps / st["decode_s"],
        "step_ms": st["decode_s"] / steps * 1e3,
        "prompt_prefill_ms": st["prefill_s"] * 1e3,
        "e2e_tokens_per_s": batch * new_tokens / (st["prefill_s"] + st["decode_s"]),
        "setup_s": round(setup_s, 2),
        "method": st["method"],
        "compile": st["compile"],
        "pdl": st.get("pdl", False),
        "repeatable": bool(torch.equal(first, tokens)),
    }
    if st.get("note"):
        out["note"] = st["note"]
    out.update(_peak(device))
    return out, tokens[:, prompt_len:].cpu()


@torch.no_grad()
def measure_generate(
    model, vocab, batch, prompt_len, new_tokens, device, seed, pdl: bool | None = None
) -> tuple[dict, torch.Tensor]:
    from bitmat_hf import prepare_for_fast_generation

    # fusion is decided by the variant (convert); this call leaves an unfused model unfused
    prepare_for_fast_generation(
        model,
        max_cache_len=prompt_len + new_tokens,
        drop_latent_weights=True,
        fuse_projections=False,
        fuse_quantization=False,
        pdl=pdl,
    )
    ids = _random_ids(vocab, batch, prompt_len, seed, device)
    mask = torch.ones_like(ids)
    kw = dict(attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    _peak_reset(device)
    _sync(device)
    t0 = time.perf_counter()
    model.generate(ids, **kw)  # compiles for this batch size
    _sync(device)
    warm_s = time.perf_counter() - t0
    times = []
    for _ in range(2):
        _sync(device)
        t0 = time.perf_counter()
        tokens = model.generate(ids, **kw)
        _sync(device)
        times.append(time.perf_counter() - t0)
    t = min(times)
    _check_tokens(tokens, vocab, "generate")
    out = {
        "prompt_len": prompt_len,
        "new_tokens": new_tokens,
        "generate_tokens_per_s": batch * new_tokens / t,
        "generate_ms_per_step": t / new_tokens * 1e3,
        "first_call_s": round(warm_s, 2),
        "compile": "transformers CompileConfig(mode=reduce-overhead)" if device.type == "cuda" else "none (CPU)",
        "pdl": model._bitmat_fast_generation["pdl"],
    }
    out.update(_peak(device))
    return out, tokens[:, prompt_len:].cpu()


# ---------------------------------------------------------------------------------------------- driver


def parse_variants(spec: str, baseline_last: bool = False) -> list[str]:
    out = []
    for v in spec.split(","):
        v = _ALIASES.get(v.strip().lower(), v.strip().lower())
        if not v:
            continue
        if v not in VARIANTS:
            raise ValueError(f"--impls: expected some of {','.join(VARIANTS)} (or bitmat-hf), got {v!r}")
        if v not in out:
            out.append(v)
    if BASE in out:  # the baseline first, so every other variant can be compared as it finishes
        out.remove(BASE)
        out.insert(len(out) if baseline_last else 0, BASE)
    return out


def parse_modes(spec: str) -> list[str]:
    modes = [m.strip().lower() for m in spec.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            raise ValueError(f"--modes: expected some of {','.join(MODES)}, got {m!r}")
    return modes


def run_model(args, argv, device: torch.device, out_dir: Path) -> ResultWriter:
    t0 = time.monotonic()
    cpu = device.type != "cuda"
    if cpu:
        log.warning(CPU_NOTICE)
    names = [n.strip() for n in (args.model or ("tiny" if cpu else "llama3-8b,bitnet-2b")).split(",") if n.strip()]
    presets = [model_preset(n) for n in names]
    num_layers = args.num_layers or (2 if cpu else None)
    batches = parse_ints(args.batch, [1] if cpu else [1, 4, 16], "--batch")
    gen_batches = parse_ints(getattr(args, "generate_batch", None), batches if cpu else [1, 16], "--generate-batch")
    prompt_len = args.prompt_len or (8 if cpu else 32)
    new_tokens = getattr(args, "new_tokens", None) or (8 if cpu else 128)
    prefill_len = getattr(args, "prefill_len", None) or (16 if cpu else 2048)
    variants = parse_variants(args.impls, getattr(args, "baseline_last", False))
    modes = parse_modes(getattr(args, "modes", None) or "prefill,graph,generate")
    compile_mode = getattr(args, "compile", None) or "auto"
    pdl = {"auto": None, "on": True, "off": False}[getattr(args, "pdl", None) or "auto"]
    isolate = getattr(args, "isolate", None)
    if isolate is None:  # auto: order effects are a GPU matter, and one model alone has nothing to be second to
        isolate = not cpu and len(presets) * len(variants) > 1
    if pdl:
        from bitmat_hf.generation import compile_kwargs

        try:  # a clear error now, not a failed record per model
            compile_kwargs(device, None, pdl)
        except ValueError as e:
            raise ValueError(f"--pdl on: {e}") from e
    dtype = torch.bfloat16
    env = environment(argv)
    env["settings"] = {
        "models": [p.name for p in presets],
        "arch": getattr(args, "arch", "auto"),
        "num_layers": num_layers,
        "batches": batches,
        "generate_batches": gen_batches,
        "prompt_len": prompt_len,
        "new_tokens": new_tokens,
        "prefill_len": prefill_len,
        "variants": variants,
        "modes": modes,
        "compile": compile_mode,
        "pdl": getattr(args, "pdl", None) or "auto",
        "max_seconds": args.max_seconds,
        "isolate": isolate,
    }
    writer = ResultWriter(out_dir, "model", env)
    total = (
        len(presets)
        * len(variants)
        * (("prefill" in modes) + ("graph" in modes) * len(batches) + ("generate" in modes) * len(gen_batches))
    )
    bar = progress_bar(total, "model", not args.no_progress)
    complete = False
    ctx = dict(
        device=device,
        dtype=dtype,
        args=args,
        bar=bar,
        t0=t0,
        num_layers=num_layers,
        batches=batches,
        gen_batches=gen_batches,
        prompt_len=prompt_len,
        new_tokens=new_tokens,
        prefill_len=prefill_len,
        modes=modes,
        compile=compile_mode,
        pdl=pdl,
        tokens={},  # (mode, batch) -> generated tokens, for --tokens-file
    )
    try:
        if isolate:
            _run_isolated(writer, presets, variants, ctx, argv)
        else:
            for p in presets:
                arch = resolve_arch(p, getattr(args, "arch", "auto") or "auto")
                tokens_by: dict = {}
                for variant in variants:
                    _run_variant(writer, p, arch, variant, ctx, tokens_by)
                    _add_model_speedups(writer.records)
                    writer.flush()
        complete = True
    except KeyboardInterrupt:
        log.warning("interrupted: writing the results so far")
    finally:
        bar.close()
        if getattr(args, "tokens_file", None):
            try:
                torch.save(ctx["tokens"], args.tokens_file)
            except Exception as e:  # pragma: no cover
                log.warning("--tokens-file %s failed: %s: %s", args.tokens_file, type(e).__name__, e)
        _add_model_speedups(writer.records)
        writer.extra["elapsed_s"] = round(time.monotonic() - t0, 2)
        writer.extra["headline"] = headline(writer.records)
        writer.finish(complete=complete)
        try:
            (writer.out / "headline.md").write_text(headline_markdown(writer.records, env))
        except Exception as e:  # pragma: no cover
            log.warning("headline.md failed: %s: %s", type(e).__name__, e)
    return writer


def _remaining_s(ctx) -> float | None:
    limit = ctx["args"].max_seconds
    return None if limit is None else limit - (time.monotonic() - ctx["t0"])


def _over_budget(ctx) -> bool:
    left = _remaining_s(ctx)
    return left is not None and left < 0


def _plan(ctx) -> list[tuple[str, int]]:
    plan = []
    if "prefill" in ctx["modes"]:
        plan.append(("prefill", 1))
    if "graph" in ctx["modes"]:
        plan += [("graph", b) for b in ctx["batches"]]
    if "generate" in ctx["modes"]:
        plan += [("generate", b) for b in ctx["gen_batches"]]
    return plan


def _base(p, arch, variant, ctx) -> dict:
    layers = ctx["num_layers"] or p.num_layers
    return {"model": p.name, "shape": p.name, "arch": arch, "impl": variant, "layers": layers}


def _add_plan(writer, base, plan, bar, **fields) -> None:
    """One record per planned measurement, none of them measured (skipped, not run, failed)."""
    for mode, b in plan:
        writer.add({**base, "mode": mode, "m": b, "batch": b, **fields})
        bar.update(1)


def _run_variant(writer, p, arch, variant, ctx, tokens_by) -> None:
    device, args, bar = ctx["device"], ctx["args"], ctx["bar"]
    base = _base(p, arch, variant, ctx)
    plan = _plan(ctx)

    if _over_budget(ctx):
        return _add_plan(writer, base, plan, bar, status="not-run", reason="time budget (--max-seconds)")
    model = decoder = None
    try:
        _cleanup(device)
        _peak_reset(device)
        tb = time.monotonic()
        model, cfg = build_model(p, arch, ctx["num_layers"], device, ctx["dtype"], args.seed)
        model, note = convert(model, variant)
        _cleanup(device)
        stats = weight_stats(model)
        build_s = round(time.monotonic() - tb, 2)
    except ImportError as e:
        return _add_plan(writer, base, plan, bar, status="skipped", reason=str(e))
    except Exception as e:
        err = f"{type(e).__name__}: {e}"[:500]
        log.warning("model %s %s: build/convert failed: %s", p.name, variant, err)
        log.debug("%s", traceback.format_exc())
        del model
        _cleanup(device)
        return _add_plan(writer, base, plan, bar, status="failed", error=f"build: {err}")
    vocab = cfg.vocab_size
    base.update(stats, note=note, build_s=build_s)
    for mode, b in plan:
        rec = {**base, "mode": mode, "m": b, "batch": b}
        if _over_budget(ctx):
            writer.add({**rec, "status": "not-run", "reason": "time budget (--max-seconds)"})
            bar.update(1)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                if mode == "prefill":
                    rec.update(measure_prefill(model, vocab, ctx["prefill_len"], device, args.seed))
                elif mode == "graph":
                    if decoder is None:
                        from bitmat_hf import GraphGreedyDecoder

                        decoder = GraphGreedyDecoder(
                            model,
                            max_cache_len=ctx["prompt_len"] + ctx["new_tokens"],
                            compile=ctx["compile"],
                            pdl=ctx["pdl"],
                        )
                    r, toks = measure_graph(
                        decoder, vocab, b, ctx["prompt_len"], ctx["new_tokens"], device, args.seed + b
                    )
                    rec.update(r)
                    _keep_tokens(rec, tokens_by, (mode, b), variant, toks, ctx)
                    if device.type == "cuda":
                        head = lm_head_ms(model, b, device, args.replays)
                        if head is not None:
                            rec["lm_head_ms"] = head
                            rec["lm_head_share"] = head / rec["step_ms"]
                else:
                    if decoder is not None:
                        decoder.close()
                        decoder = None
                    r, toks = measure_generate(
                        model, vocab, b, ctx["prompt_len"], ctx["new_tokens"], device, args.seed + b, pdl=ctx["pdl"]
                    )
                    rec.update(r)
                    _keep_tokens(rec, tokens_by, (mode, b), variant, toks, ctx)
                    g = next(
                        (
                            x
                            for x in writer.records
                            if x.get("model") == p.name
                            and x.get("impl") == variant
                            and x.get("mode") == "graph"
                            and x.get("batch") == b
                            and x.get("status") == "ok"
                        ),
                        None,
                    )
                    if g is not None:
                        rec["host_overhead_ms"] = rec["generate_ms_per_step"] - g["step_ms"]
            rec["status"] = "ok"
        except Exception as e:
            err = f"{type(e).__name__}: {e}"[:500]
            log.warning("model %s %s %s batch %d failed: %s", p.name, variant, mode, b, err)
            log.debug("%s", traceback.format_exc())
            rec.update({"status": "failed", "error": err})
            if device.type == "cuda":
                try:
                    torch.cuda.synchronize(device)
                except Exception:  # a broken context: nothing else will run
                    log.error("the CUDA context is broken after this failure; stopping this variant")
                    writer.add(rec)
                    bar.update(1)
                    break
        writer.add(rec)
        bar.update(1)
        writer.flush()
    if decoder is not None:
        decoder.close()
    del decoder, model
    _reset_compiled()
    _cleanup(device)


def _keep_tokens(rec, tokens_by, key, variant, toks, ctx) -> None:
    """The baseline's tokens wait for the variants after it; the others are compared with them."""
    ctx["tokens"][key] = toks  # --tokens-file: a child's (mode, batch), for the parent's comparison
    if variant == BASE:
        tokens_by[key] = toks
    else:
        _agreement(rec, tokens_by.get(key), toks)


def _agreement(rec, ref, toks) -> None:
    """Agreement of a variant's greedy tokens with the baseline's `ref` for the same prompts (in one process, or
    read back from isolated runs)."""
    if ref is not None and toks is not None and ref.shape == toks.shape:
        rec["first_token_agreement_vs_bf16"] = float((ref[:, 0] == toks[:, 0]).float().mean())
        rec["token_agreement_vs_bf16"] = float((ref == toks).float().mean())


# ---------------------------------------------------------------------------------------------- --isolate

# Options each isolated run gets its own value of (or must not have): dropped from the parent's argv.
_CHILD_DROP_VALUE = ("--out", "--model", "--impls", "--max-seconds", "--tokens-file")
_CHILD_DROP_FLAG = ("--isolate", "--no-isolate", "--baseline-last")

# What the parent computes again over the merged records (with the ratios of _RATIO_KEYS and _MEM_KEYS).
_RECOMPUTED = ("first_token_agreement_vs_bf16", "token_agreement_vs_bf16", "peak_memory_vs_bf16", "t_s")


def child_argv(argv, preset: str, variant: str, out, remaining_s: float | None = None) -> list[str]:
    """The `bitmat-bench` argv of the isolated run of one (preset, variant): the parent's options less those the
    child gets its own of. Ours come last, so they also win over an abbreviation argparse took (`--max-sec 5`)."""
    args = list(argv or [])
    if not args or args[0] != "model":  # main's argv starts with the verb (the parser has no global options)
        args.insert(0, "model")
    kept, i = [], 0
    while i < len(args):
        a = args[i]
        name = a.split("=", 1)[0]
        if name in _CHILD_DROP_VALUE:
            i += 1 if "=" in a else 2
        elif name in _CHILD_DROP_FLAG:
            i += 1
        else:
            kept.append(a)
            i += 1
    out = Path(out)
    kept += ["--model", preset, "--impls", variant, "--out", str(out), "--tokens-file", str(out / "tokens.pt")]
    kept += ["--no-isolate", "--no-progress"]
    if remaining_s is not None:
        kept += ["--max-seconds", f"{remaining_s:.1f}"]
    return kept


def _child_command(child_args: list[str]) -> list[str]:
    """The command line of one isolated run (a seam for tests)."""
    return [sys.executable, "-m", "bitmat_bench", *child_args]


def _run_child(cmd: list[str]) -> tuple[int, bool]:
    """Run `cmd` on our stdout/stderr; returns (return code, interrupted). Interrupted, the child may still write
    what it measured: Ctrl-C reaches it too (same process group), a SIGTERM to us alone does not, so after a
    grace period it gets one."""
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait(), False
    except KeyboardInterrupt:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait(), True


def _run_isolated(writer, presets, variants, ctx, argv) -> None:
    """Every (preset, variant) in a fresh process of its own (no order effects between models), merged here."""
    args, bar = ctx["args"], ctx["bar"]
    plan = _plan(ctx)
    runs = writer.extra.setdefault("isolated_runs", [])
    tokens_files: dict[tuple[str, str], Path] = {}
    try:
        for p in presets:
            arch = resolve_arch(p, getattr(args, "arch", "auto") or "auto")
            for variant in variants:
                base = {**_base(p, arch, variant, ctx), "isolated": True}
                remaining = _remaining_s(ctx)
                if remaining is not None and remaining <= 0:
                    _add_plan(writer, base, plan, bar, status="not-run", reason="time budget (--max-seconds)")
                    continue
                out = writer.out / "isolated" / f"{p.name}-{variant}"
                for stale in ("results.json", "tokens.pt"):  # an earlier run's files are not this run's
                    (out / stale).unlink(missing_ok=True)
                child = child_argv(argv, p.name, variant, out, remaining)
                tokens_files[(p.name, variant)] = out / "tokens.pt"
                log.info("isolated run %s %s: %s", p.name, variant, command_line(child))
                t = time.monotonic()
                rc, interrupted = _run_child(_child_command(child))
                runs.append(
                    {
                        "preset": p.name,
                        "variant": variant,
                        "command": command_line(child),
                        "returncode": rc,
                        "elapsed_s": round(time.monotonic() - t, 2),
                    }
                )
                # interrupted: what it measured counts, the rest is left out (as in one process), not failed
                _merge_child(writer, out, base, [] if interrupted else plan, rc, bar)
                _add_model_speedups(writer.records)
                writer.flush()
                if interrupted:
                    raise KeyboardInterrupt
    finally:
        _isolated_agreement(writer.records, tokens_files)


def _merge_child(writer, out: Path, base: dict, plan, rc: int, bar) -> None:
    """Add an isolated run's records to `writer`; for a failed run, failed records for what it did not measure."""
    try:
        records, why = load(out).get("records", []), None
    except (OSError, ValueError) as e:
        records, why = [], f"no results.json ({type(e).__name__})"
    drop = {*_RECOMPUTED, *(k for _, k in _RATIO_KEYS + _MEM_KEYS)}
    for r in records:
        writer.add({**{k: v for k, v in r.items() if k not in drop}, "isolated": True})
    bar.update(len(records))
    done = {(r.get("mode"), r.get("batch")) for r in records}
    missing = [(mode, b) for mode, b in plan if (mode, b) not in done]
    if why is None and not missing:  # all there (a nonzero return code stays in isolated_runs)
        return
    err = f"isolated run exited with return code {rc}; {why or 'not measured there'}"
    log.warning("model %s %s: %s", base["model"], base["impl"], err)
    _add_plan(writer, base, missing, bar, status="failed", error=err)


def _isolated_agreement(records: list[dict], tokens_files: dict) -> None:
    """Token agreement of each isolated variant with the baseline run of the same preset; then the token files
    go (they are not results)."""
    tokens: dict[tuple[str, str], dict] = {}
    for key, path in tokens_files.items():
        try:
            if path.exists():
                tokens[key] = torch.load(path, weights_only=True)
        except Exception as e:
            log.warning("%s: %s: %s", path, type(e).__name__, e)
        finally:
            path.unlink(missing_ok=True)
    for r in records:
        if r.get("impl") == BASE or r.get("status") != "ok" or r.get("mode") not in ("graph", "generate"):
            continue
        key = (r.get("mode"), r.get("batch"))
        ref = tokens.get((r.get("model"), BASE), {}).get(key)
        _agreement(r, ref, tokens.get((r.get("model"), r.get("impl")), {}).get(key))


def _reset_compiled() -> None:
    try:
        torch._dynamo.reset()
    except Exception as e:  # pragma: no cover
        log.debug("torch._dynamo.reset failed: %s", e)


def _cleanup(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


_RATIO_KEYS = (
    ("decode_tokens_per_s", "decode_speedup_vs_bf16"),
    ("e2e_tokens_per_s", "e2e_speedup_vs_bf16"),
    ("generate_tokens_per_s", "generate_speedup_vs_bf16"),
    ("prefill_tokens_per_s", "prefill_speedup_vs_bf16"),
)


_MEM_KEYS = (("linear_weight_bytes", "linear_weight_memory_vs_bf16"), ("weight_bytes", "weight_memory_vs_bf16"))


def _add_model_speedups(records: list[dict]) -> None:
    base = {
        (r.get("model"), r.get("mode"), r.get("batch")): r
        for r in records
        if r.get("impl") == BASE and r.get("status") == "ok"
    }
    for r in records:
        b = base.get((r.get("model"), r.get("mode"), r.get("batch")))
        if b is None or r.get("status") != "ok":
            continue
        for k, out in _RATIO_KEYS:
            if r.get(k) and b.get(k):
                r[out] = r[k] / b[k]
        for k, out in _MEM_KEYS:
            if r.get(k) and b.get(k):
                r[out] = r[k] / b[k]
        if r.get("peak_memory_bytes") and b.get("peak_memory_bytes"):
            r["peak_memory_vs_bf16"] = r["peak_memory_bytes"] / b["peak_memory_bytes"]


# Targets of issue 9 (H100, Llama-3-8B shape): decode >= 3x bf16 at batch 1, >= 2x at batch 16; prefill >= 1.2x;
# linear-layer weight memory <= 0.25x.
TARGETS = {
    ("graph", 1): 3.0,
    ("graph", 16): 2.0,
    ("generate", 1): 3.0,
    ("generate", 16): 2.0,
    ("prefill", 1): 1.2,
}


def headline(records: list[dict]) -> list[dict]:
    rows = []
    for r in records:
        if r.get("impl") == BASE or r.get("status") != "ok":
            continue
        key = {"graph": "decode_speedup_vs_bf16", "generate": "generate_speedup_vs_bf16"}.get(
            r.get("mode"), "prefill_speedup_vs_bf16"
        )
        target = TARGETS.get((r.get("mode"), r.get("batch"))) if r.get("model") == "llama3-8b" else None
        rows.append(
            {
                "model": r.get("model"),
                "impl": r.get("impl"),
                "mode": r.get("mode"),
                "batch": r.get("batch"),
                "speedup_vs_bf16": r.get(key),
                "target": target,
                "meets_target": None if target is None or r.get(key) is None else r[key] >= target,
                "linear_weight_memory_vs_bf16": r.get("linear_weight_memory_vs_bf16"),
            }
        )
    return rows


def _f(v, spec=".1f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else ""


def headline_markdown(records: list[dict], env: dict) -> str:
    isolated = any(r.get("isolated") for r in records)
    lines = [
        "# bitmat-bench model: headline",
        "",
        f"GPU: {env.get('gpu') or env.get('device') or '?'}; command: `{env.get('command', '')}`",
        "",
        "tokens/s per mode (graph = GraphGreedyDecoder, one CUDA graph per decode step; generate = model.generate "
        "with a static cache and transformers' reduce-overhead compile, prefill included; prefill = one [1, L] "
        "forward). x = ratio to bf16 in the same mode; "
        + (
            "each variant measured in a process of its own."
            if isolated
            else "the variants measured one after another in one process."
        ),
        "",
        "| model | impl | mode | batch | tokens/s | x bf16 | step ms | LM head ms | host ms/step | peak GB | "
        "linear weights MB | x bf16 | status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        mode = r.get("mode")
        tps = {"graph": "decode_tokens_per_s", "generate": "generate_tokens_per_s"}.get(mode, "prefill_tokens_per_s")
        sp = {"graph": "decode_speedup_vs_bf16", "generate": "generate_speedup_vs_bf16"}.get(
            mode, "prefill_speedup_vs_bf16"
        )
        status = r.get("status", "")
        detail = r.get("error") or r.get("reason") or r.get("note") or ""
        lines.append(
            f"| {r.get('model')} | {r.get('impl')} | {mode} | {r.get('batch')} | {_f(r.get(tps), '.0f')} | "
            f"{_f(r.get(sp), '.2f')} | {_f(r.get('step_ms'), '.2f')} | {_f(r.get('lm_head_ms'), '.3f')} | "
            f"{_f(r.get('host_overhead_ms'), '.2f')} | {_f((r.get('peak_memory_bytes') or 0) / 1e9, '.1f')} | "
            f"{_f((r.get('linear_weight_bytes') or 0) / 1e6, '.0f')} | "
            f"{_f(r.get('linear_weight_memory_vs_bf16'), '.3f')}"
            f" | {status}{': ' + str(detail)[:120].replace('|', '/') if detail and status != 'ok' else ''} |"
        )
    lines.append("")
    return "\n".join(lines)


__all__ = [
    "MODES",
    "VARIANTS",
    "PackedTernaryLinear",
    "build_model",
    "convert",
    "headline",
    "run_model",
    "swap_linears",
    "weight_stats",
]
