"""`bitmat-bench layers`: bitmat_nn's BitLinear, BitFFN and BitAttention against the same modules
built with nn.Linear: forward (eval, CUDA-graph time over rotated copies) and a training step
(forward + backward, eager time).

The counterpart of a Bit module is a deep copy of it with every BitLinear replaced by an nn.Linear
of the same shape, so both run the same code around their projections. bitmat_nn is imported
lazily: without it every bit measurement is "skipped: bitmat-nn not installed/not available" (the
nn.Linear baseline still runs).
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
import traceback
from pathlib import Path

import torch
import torch.nn as nn

from .env import CPU_NOTICE, environment
from .impls import tensor_bytes
from .report import ResultWriter, progress_bar
from .shapes import ModelPreset, model_preset, parse_ints
from .timing import rotation_copies, time_graph

log = logging.getLogger(__name__)

NN_MISSING = "bitmat-nn not installed/not available"
LAYER_KINDS = ("linear", "ffn", "attention")


def load_bitmat_nn():
    """The bitmat_nn module, or raise ImportError with the reason."""
    try:
        import bitmat_nn
    except Exception as e:
        raise ImportError(f"{NN_MISSING} ({type(e).__name__}: {e})") from e
    missing = [n for n in ("BitLinear",) if not hasattr(bitmat_nn, n)]
    if missing:
        raise ImportError(f"{NN_MISSING} (bitmat_nn lacks {', '.join(missing)})")
    return bitmat_nn


def _kwargs_for(cls, wanted: dict, aliases: dict[str, tuple[str, ...]]) -> dict:
    """Map concept -> value onto the constructor's parameter names (first alias that exists)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out = {}
    for concept, value in wanted.items():
        names = aliases.get(concept, (concept,))
        name = next((n for n in names if n in params), None)
        if name is None and has_var_kw:
            name = names[0]
        if name is not None:
            out[name] = value
    return out


_ALIASES = {
    "hidden_size": ("hidden_size", "d_model", "dim", "embed_dim", "in_features"),
    "intermediate_size": ("intermediate_size", "ffn_dim", "hidden_dim", "d_ff"),
    "num_heads": ("num_heads", "n_heads", "num_attention_heads"),
    "num_kv_heads": ("num_kv_heads", "num_key_value_heads", "n_kv_heads"),
    "bias": ("bias",),
}


def build_bit_module(nn_mod, kind: str, p: ModelPreset, device, dtype) -> nn.Module:
    if kind == "linear":
        return nn_mod.BitLinear(p.hidden_size, p.intermediate_size, bias=False, device=device, dtype=dtype)
    if kind == "ffn":
        cls = getattr(nn_mod, "BitFFN", None)
        if cls is None:
            raise ImportError(f"{NN_MISSING} (no BitFFN)")
        kw = _kwargs_for(
            cls, {"hidden_size": p.hidden_size, "intermediate_size": p.intermediate_size, "bias": False}, _ALIASES
        )
    elif kind == "attention":
        cls = getattr(nn_mod, "BitAttention", None)
        if cls is None:
            raise ImportError(f"{NN_MISSING} (no BitAttention)")
        kw = _kwargs_for(
            cls,
            {"hidden_size": p.hidden_size, "num_heads": p.num_heads, "num_kv_heads": p.num_kv_heads, "bias": False},
            _ALIASES,
        )
    else:
        raise ValueError(f"--layers: expected one of {LAYER_KINDS}, got {kind!r}")
    try:
        mod = cls(**kw, device=device, dtype=dtype)
    except TypeError:
        mod = cls(**kw).to(device=device, dtype=dtype)
    return mod.to(device=device, dtype=dtype)


def linear_counterpart(module: nn.Module, bit_linear_cls) -> nn.Module:
    """A deep copy of `module` with every `bit_linear_cls` replaced by an nn.Linear (same weights)."""

    def plain(m: nn.Linear) -> nn.Linear:
        w = m.weight
        lin = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w)
            if m.bias is not None:
                lin.bias.copy_(m.bias)
        return lin

    if isinstance(module, bit_linear_cls):
        return plain(module)
    twin = copy.deepcopy(module)
    for name, child in list(twin.named_modules()):
        if isinstance(child, bit_linear_cls):
            parent_name, _, attr = name.rpartition(".")
            parent = twin.get_submodule(parent_name) if parent_name else twin
            setattr(parent, attr, plain(child))
    return twin


def _out(y):
    if isinstance(y, (tuple, list)):
        return y[0]
    return y


def _x(kind: str, p: ModelPreset, tokens: int, device, dtype, seed: int) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed + tokens)
    x = torch.randn(1, tokens, p.hidden_size, generator=g)
    return x.to(device=device, dtype=dtype)


def _read_bytes(module: nn.Module, bit: bool) -> int:
    """Bytes a forward reads from the module: its buffers (packed weights) for a Bit module in eval,
    its parameters otherwise."""
    if bit:
        b = sum(t.numel() * t.element_size() for t in module.buffers())
        if b > 0:
            return b
    return tensor_bytes(module)


def _time_forward(modules: list[nn.Module], x: torch.Tensor, cfg) -> object:
    fns = [lambda m=m: _out(m(x)) for m in modules]
    with torch.no_grad():
        return time_graph(fns, replays=cfg["replays"], warmup=cfg["warmup"], device=x.device, use_graph=cfg["graph"])


def _time_train(module: nn.Module, x: torch.Tensor, cfg) -> object:
    xg = x.detach().clone().requires_grad_(True)

    def step():
        module.zero_grad(set_to_none=True)
        xg.grad = None
        y = _out(module(xg))
        y.float().square().mean().backward()

    return time_graph(step, replays=max(3, cfg["replays"] // 2), warmup=1, device=x.device, use_graph=False)


def run_layers(args, argv, device: torch.device, out_dir: Path) -> ResultWriter:
    t0 = time.monotonic()
    cpu = device.type != "cuda"
    if cpu:
        log.warning(CPU_NOTICE)
    dims = [model_preset(d) for d in (args.dims or ("tiny" if cpu else "llama3-8b,bitnet-2b")).split(",") if d.strip()]
    tokens = parse_ints(args.tokens, [1, 16] if cpu else [1, 16, 256, 2048], "--tokens")
    kinds = [k.strip().lower() for k in args.layers.split(",") if k.strip()]
    for k in kinds:
        if k not in LAYER_KINDS:
            raise ValueError(f"--layers: expected a subset of {','.join(LAYER_KINDS)}, got {k!r}")
    dtype = torch.bfloat16 if not cpu else torch.float32
    cfg = {"replays": args.replays, "warmup": args.warmup, "graph": not args.no_graph}
    env = environment(argv)
    env["settings"] = {
        "dims": [d.name for d in dims],
        "tokens": tokens,
        "layers": kinds,
        "dtype": str(dtype),
        "train": not args.no_train,
        **cfg,
    }
    writer = ResultWriter(out_dir, "layers", env)
    try:
        nn_mod = load_bitmat_nn()
        writer.impls["bitmat-nn"] = {"status": "ok", "version": getattr(nn_mod, "__version__", None)}
    except ImportError as e:
        nn_mod = None
        writer.impls["bitmat-nn"] = {"status": "skipped", "reason": str(e)}
        log.warning("%s", e)
    writer.impls["torch"] = {"status": "ok", "version": torch.__version__, "description": "nn.Linear counterparts"}
    phases = ["forward"] + ([] if args.no_train else ["train"])
    bar = progress_bar(len(dims) * len(kinds) * len(tokens) * 2 * len(phases), "layers", not args.no_progress)
    complete = False
    try:
        for p in dims:
            for kind in kinds:
                _run_layer(writer, nn_mod, kind, p, tokens, phases, device, dtype, cfg, args, bar, t0)
                writer.flush()
        complete = True
    except KeyboardInterrupt:
        log.warning("interrupted: writing the results so far")
    finally:
        bar.close()
        writer.extra["elapsed_s"] = round(time.monotonic() - t0, 2)
        writer.finish(complete=complete)
    return writer


def _run_layer(writer, nn_mod, kind, p, tokens, phases, device, dtype, cfg, args, bar, t0) -> None:
    shape = f"{kind} {p.name}"
    base = {"layer": kind, "dims": p.name, "shape": shape}
    bit = twin = None
    build_error = None
    if nn_mod is not None:
        try:
            bit = build_bit_module(nn_mod, kind, p, device, dtype)
            twin = linear_counterpart(bit, nn_mod.BitLinear)
        except Exception as e:
            build_error = f"{type(e).__name__}: {e}"[:500]
            log.warning("%s: building the bit module failed: %s", shape, build_error)
            log.debug("%s", traceback.format_exc())
    if twin is None and kind == "linear":
        twin = nn.Linear(p.hidden_size, p.intermediate_size, bias=False, device=device, dtype=dtype)
    for impl, module in (("torch", twin), ("bitmat-nn", bit)):
        for phase in phases:
            for t in tokens:
                rec = {**base, "impl": f"{impl} {phase}", "family": impl, "phase": phase, "m": t}
                if args.max_seconds is not None and time.monotonic() - t0 > args.max_seconds:
                    writer.add({**rec, "status": "not-run", "reason": "time budget"})
                    bar.update(1)
                    continue
                if module is None:
                    if impl == "bitmat-nn" and nn_mod is None:
                        why = {"status": "skipped", "reason": NN_MISSING}
                    elif build_error:
                        why = {"status": "failed", "error": f"build: {build_error}"}
                    else:
                        why = {"status": "skipped", "reason": "no nn.Linear counterpart without bitmat-nn"}
                    writer.add({**rec, **why})
                    bar.update(1)
                    continue
                writer.add(_measure_layer(rec, module, impl, phase, kind, p, t, device, dtype, cfg, args))
                bar.update(1)
    # speedups of the bit module over its counterpart
    recs = [r for r in writer.records if r.get("shape") == shape and r.get("status") == "ok"]
    for r in recs:
        if r["family"] != "bitmat-nn":
            continue
        c = next((x for x in recs if x["family"] == "torch" and x["phase"] == r["phase"] and x["m"] == r["m"]), None)
        if c:
            r["speedup_vs_counterpart"] = c["median_us"] / r["median_us"]
            if r.get("eager_us") and c.get("eager_us"):
                r["eager_speedup_vs_counterpart"] = c["eager_us"] / r["eager_us"]
    del bit, twin
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _measure_layer(rec, module, impl, phase, kind, p, tokens, device, dtype, cfg, args) -> dict:
    try:
        x = _x(kind, p, tokens, device, dtype, args.seed)
        if phase == "forward":
            module.eval()
            with torch.no_grad():
                y = _out(module(x))  # materializes packed weights
            if not bool(torch.isfinite(y).all()):
                return {**rec, "status": "wrong", "error": "non-finite output"}
            read = _read_bytes(module, impl == "bitmat-nn")
            copies = 1 if device.type != "cuda" else rotation_copies(read, max_copies=16)
            mods = [module] + [copy.deepcopy(module) for _ in range(copies - 1)]
            t = _time_forward(mods, x, cfg)
            del mods
            rec.update({"copies": copies, "weight_bytes": read})
        else:
            module.train()
            t = _time_train(module, x, cfg)
            module.zero_grad(set_to_none=True)
        rec.update(t.as_dict())
        rec["status"] = "ok"
        rec["tokens_per_s"] = tokens / (t.median_us * 1e-6)
        return rec
    except Exception as e:
        log.warning("%s %s %s T=%d failed: %s: %s", rec["shape"], impl, phase, tokens, type(e).__name__, e)
        log.debug("%s", traceback.format_exc())
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {**rec, "status": "failed", "error": f"{type(e).__name__}: {e}"[:500]}


__all__ = ["LAYER_KINDS", "NN_MISSING", "build_bit_module", "linear_counterpart", "load_bitmat_nn", "run_layers"]
