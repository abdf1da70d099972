"""`bitmat-bench kernels`: bitmat_linear in each mode against cuBLAS bf16, torch int8 and peers.

For each shape (N x K), each implementation, each batch M: build the weights once per shape (R
copies rotated past L2), check the output against a float64 reference on a sample of rows (a wrong
result is recorded and not timed), then time it (`timing.time_graph`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import roofline as roof_mod
from .env import CPU_NOTICE, environment
from .impls import KernelImpl, Problem, Skip
from .report import ResultWriter, progress_bar
from .shapes import Shape
from .timing import l2_cache_bytes, rotation_copies, time_graph

log = logging.getLogger(__name__)


@dataclass
class KernelsConfig:
    shapes: list[Shape]
    batches: list[int]
    impls: list[KernelImpl]
    out_dir: Path
    device: torch.device
    replays: int = 10
    warmup: int = 2
    check_rows: int = 256
    roofline: bool = True
    max_seconds: float | None = None
    progress: bool = True
    seed: int = 0
    rotate_factor: float = 2.0
    max_copies: int = 64
    use_graph: bool = True
    budget_s: float | None = 0.25
    argv: list[str] | None = None
    extra_env: dict = field(default_factory=dict)


def _short_error(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".strip()
    msg = " ".join(msg.split())
    return msg[:600]


def sample_rows(m: int, count: int, device: torch.device) -> torch.Tensor:
    """All rows when m <= count, else `count` rows spread evenly (first and last included)."""
    if m <= count:
        return torch.arange(m, device=device)
    return torch.linspace(0, m - 1, count, device="cpu").round().long().unique().to(device)


def rel_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    y64 = y.to(torch.float64)
    ref64 = ref.to(torch.float64)
    denom = torch.linalg.vector_norm(ref64).item()
    num = torch.linalg.vector_norm(y64 - ref64).item()
    if denom == 0:
        return 0.0 if num == 0 else math.inf
    return num / denom


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        with contextlib.suppress(Exception):
            torch.cuda.synchronize()
        torch.cuda.empty_cache()


def check_impls(impls: list[KernelImpl], device: torch.device) -> dict[str, dict]:
    """Availability of each implementation: ok / skipped (with reason) / failed (with error)."""
    status: dict[str, dict] = {}
    for impl in impls:
        info = {"label": impl.label, "kind": impl.kind, "description": impl.description}
        try:
            impl.check_available(device)
            info["status"] = "ok"
        except Skip as e:
            info["status"], info["reason"] = "skipped", str(e)
        except Exception as e:
            info["status"], info["error"] = "failed", _short_error(e)
            log.warning("%s failed to load: %s", impl.name, info["error"])
            log.debug("%s", traceback.format_exc())
        try:
            info["version"] = impl.version()
        except Exception:
            info["version"] = None
        if info["status"] != "ok":
            log.info("%s: %s (%s)", impl.name, info["status"], info.get("reason") or info.get("error"))
        status[impl.name] = info
    return status


def run_kernels(cfg: KernelsConfig) -> ResultWriter:
    t_start = time.monotonic()
    device = cfg.device
    cpu = device.type != "cuda"
    if cpu:
        log.warning(CPU_NOTICE)
    env = environment(cfg.argv)
    env.update(cfg.extra_env)
    if cpu:
        env["notice"] = CPU_NOTICE
    env["settings"] = {
        "shapes": [s.name for s in cfg.shapes],
        "batches": cfg.batches,
        "impls": [i.name for i in cfg.impls],
        "replays": cfg.replays,
        "warmup": cfg.warmup,
        "check_rows": cfg.check_rows,
        "rotate_factor": cfg.rotate_factor,
        "l2_bytes": l2_cache_bytes() if not cpu else None,
        "use_graph": cfg.use_graph,
        "max_seconds": cfg.max_seconds,
        "seed": cfg.seed,
    }
    writer = ResultWriter(cfg.out_dir, "kernels", env)
    log.info("writing results to %s", writer.out)
    complete = False
    try:
        if cfg.roofline:
            log.info("measuring the roofline (copy bandwidth, bf16 and int8 matmul rates)")
            writer.roofline = roof_mod.measure(device, replays=max(5, cfg.replays))
            for line in roof_mod.describe(writer.roofline):
                log.info("  %s", line)
        writer.impls = check_impls(cfg.impls, device)
        active = [i for i in cfg.impls if writer.impls[i.name]["status"] == "ok"]
        writer.flush()
        total = len(cfg.shapes) * len(active) * len(cfg.batches)
        bar = progress_bar(total, "kernels", cfg.progress)
        out_of_time = False
        try:
            for shape in cfg.shapes:
                if out_of_time:
                    break
                out_of_time = _run_shape(cfg, writer, shape, active, bar, t_start)
                writer.flush()
        finally:
            bar.close()
        complete = not out_of_time
        if out_of_time:
            log.warning("stopped: the time budget (--max-seconds %s) ran out; results are partial", cfg.max_seconds)
    except KeyboardInterrupt:
        log.warning("interrupted: writing the results so far")
    finally:
        writer.extra["elapsed_s"] = round(time.monotonic() - t_start, 2)
        writer.finish(complete=complete)
    log.info("done in %.1f s: %s", time.monotonic() - t_start, writer.out)
    return writer


def _base_record(shape: Shape, m: int, impl: KernelImpl) -> dict:
    return {
        "shape": shape.name,
        "model": shape.model,
        "n": shape.n,
        "k": shape.k,
        "m": m,
        "impl": impl.name,
        "label": impl.label,
        "kind": impl.kind,
    }


def _run_shape(cfg: KernelsConfig, writer: ResultWriter, shape: Shape, active, bar, t_start: float) -> bool:
    """Returns True when the time budget ran out."""
    device = cfg.device
    cpu = device.type != "cuda"
    try:
        prob = Problem.random(shape.n, shape.k, device, cfg.seed)
    except Exception as e:
        for impl in active:
            for m in cfg.batches:
                writer.add({**_base_record(shape, m, impl), "status": "failed", "error": f"problem: {_short_error(e)}"})
            bar.update(len(cfg.batches))
        _free(device)
        return False
    xs: dict[int, torch.Tensor] = {}
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed + shape.n + 7 * shape.k)

    def x_for(m: int) -> torch.Tensor:
        if m not in xs:
            xs[m] = torch.randn(m, shape.k, generator=gen, dtype=torch.float32).to(device=device, dtype=torch.bfloat16)
        return xs[m]

    out_of_time = False
    try:
        for impl in active:
            if out_of_time:
                break
            bar.set_postfix_str(f"{shape.name} {impl.name}", refresh=False)
            weights: list = []
            try:
                w0 = impl.build(prob)
                _sync(device)
                wbytes = int(impl.weight_bytes(w0))
                copies = 1 if cpu else rotation_copies(wbytes, factor=cfg.rotate_factor, max_copies=cfg.max_copies)
                weights = [w0] + [impl.copy(w0) for _ in range(copies - 1)]
                _sync(device)
            except Skip as e:
                for m in cfg.batches:
                    writer.add({**_base_record(shape, m, impl), "status": "skipped", "reason": str(e)})
                bar.update(len(cfg.batches))
                continue
            except Exception as e:
                err = _short_error(e)
                log.warning("%s %s: build failed: %s", shape.name, impl.name, err)
                log.debug("%s", traceback.format_exc())
                for m in cfg.batches:
                    writer.add({**_base_record(shape, m, impl), "status": "failed", "error": f"build: {err}"})
                bar.update(len(cfg.batches))
                weights = []
                _free(device)
                continue
            try:
                for m in cfg.batches:
                    if cfg.max_seconds is not None and time.monotonic() - t_start > cfg.max_seconds:
                        out_of_time = True
                        break
                    rec = _measure(cfg, impl, prob, shape, m, x_for(m), weights, wbytes, writer.roofline)
                    writer.add(rec)
                    bar.update(1)
            finally:
                del weights
                _free(device)
    finally:
        xs.clear()
        del prob
        _free(device)
    return out_of_time


def _measure(cfg, impl: KernelImpl, prob: Problem, shape: Shape, m: int, x, weights, wbytes, roof) -> dict:
    device = cfg.device
    rec = _base_record(shape, m, impl)
    rec["copies"] = len(weights)
    rec["weight_bytes"] = wbytes
    try:
        impl.check_shape(shape.n, shape.k, m, device)
    except Skip as e:
        return {**rec, "status": "skipped", "reason": str(e)}
    stage = "inputs"
    try:
        inp = impl.inputs(x, weights[0])
        stage = "first call"
        y = impl.run(inp, weights[0])
        _sync(device)
        stage = "check"
        if tuple(y.shape) != (m, shape.n):
            return {**rec, "status": "wrong", "error": f"output shape {tuple(y.shape)}, expected {(m, shape.n)}"}
        finite = bool(torch.isfinite(y).all().item())
        rows = sample_rows(m, cfg.check_rows, device)
        ref = impl.reference(prob, inp, weights[0], rows)
        err = rel_error(impl.output_rows(y, rows), ref)
        del y, ref
        rec.update({"rel_err": err, "tol": impl.tol, "rows_checked": len(rows)})
        if not finite or not (err <= impl.tol):
            why = "non-finite output" if not finite else f"relative error {err:.3g} > tolerance {impl.tol:g}"
            log.warning("%s M=%d %s: wrong result (%s); not timed", shape.name, m, impl.name, why)
            return {**rec, "status": "wrong", "error": why}
        stage = "timing"
        fns = [functools.partial(impl.run, inp, w) for w in weights]
        t = time_graph(
            fns,
            replays=cfg.replays,
            warmup=cfg.warmup,
            device=device,
            use_graph=cfg.use_graph,
            budget_s=cfg.budget_s,
        )
    except Skip as e:
        return {**rec, "status": "skipped", "reason": str(e)}
    except Exception as e:
        err = _short_error(e)
        log.warning("%s M=%d %s: %s failed: %s", shape.name, m, impl.name, stage, err)
        log.debug("%s", traceback.format_exc())
        _free(device)
        return {**rec, "status": "failed", "error": f"{stage}: {err}"}
    rec.update(t.as_dict())
    rec["status"] = "ok"
    flops = 2.0 * m * shape.n * shape.k
    moved = wbytes + m * shape.k * impl.act_bytes + m * shape.n * impl.out_bytes
    rec["flops"] = flops
    rec["bytes_moved"] = moved
    rec["tflops"] = flops / (t.median_us * 1e-6) / 1e12
    rec["gbps"] = moved / (t.median_us * 1e-6) / 1e9
    bw = roof_mod.bandwidth(roof)
    if bw:
        mem_us = moved / bw * 1e6
        rec["mem_roofline_us"] = mem_us
        rec["mem_roofline_pct"] = 100.0 * mem_us / t.median_us
        rate = roof_mod.rate(roof, impl.compute)
        if rate:
            roof_us = max(mem_us, flops / rate * 1e6)
            rec["roofline_us"] = roof_us
            rec["roofline_pct"] = 100.0 * roof_us / t.median_us
    return rec


__all__ = ["KernelsConfig", "check_impls", "rel_error", "run_kernels", "sample_rows"]
