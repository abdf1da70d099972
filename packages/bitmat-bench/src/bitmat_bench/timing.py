"""The timing harness: per-call GPU time from CUDA-graph replays over rotated weight copies.

Method (DESIGN §6):

* the caller builds R copies of the weights, so that R * bytes > 2 x L2 (see `rotation_copies`), and
  hands `time_graph` one callable per copy;
* `time_graph` warms the callables up on a side stream, captures ONE CUDA graph that calls each of
  them in turn (R calls), replays it `warmup` times, then times `replays` replays with CUDA events;
  per-call time = replay time / R. Median and spread (p10/p90, min/max) are over the replays;
* it also times the same calls eagerly (a Python loop, CUDA events around it): the time a user sees
  without graphs, launch overhead included;
* on the CPU it falls back to wall-clock timing of eager calls (the reference path: numbers that say
  nothing about GPU performance).

Usable on its own, e.g. to time kernel variants::

    from bitmat_bench.timing import time_graph, rotation_copies
    r = rotation_copies(packed.nbytes)
    ws = [packed.clone() for _ in range(r)]
    t = time_graph([lambda w=w: bitmat_linear(x, w, s, in_features=k) for w in ws])
    print(t.median_us, t.p10_us, t.p90_us, t.eager_us)
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

log = logging.getLogger(__name__)

DEFAULT_L2_BYTES = 50 * 1024 * 1024
"""Used when the device does not say (H100's L2 is 50 MB)."""


@dataclass
class Timing:
    """Per-call times in microseconds. `median_us`/`p10_us`/`p90_us`/`min_us`/`max_us` are over the
    timed replays (CUDA-graph replays on a GPU); `eager_us` is the per-call time of the same calls
    in a plain Python loop (None when not measured). `method` says how: "cuda-graph",
    "cuda-eager" (graph capture failed: `note` says why, and the spread is over eager loops) or
    "cpu-wallclock"."""

    median_us: float
    p10_us: float
    p90_us: float
    min_us: float
    max_us: float
    eager_us: float | None
    replays: int
    calls_per_replay: int
    method: str
    note: str = ""
    samples_us: list[float] = field(default_factory=list)

    def as_dict(self, samples: bool = False) -> dict:
        d = asdict(self)
        if not samples:
            d.pop("samples_us")
        return d


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return math.nan
    v = sorted(values)
    if len(v) == 1:
        return float(v[0])
    pos = (len(v) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return float(v[lo] + (v[hi] - v[lo]) * (pos - lo))


def summarize(per_call_us: Sequence[float], **kw) -> Timing:
    """A Timing from per-call samples (one per replay)."""
    s = [float(x) for x in per_call_us]
    return Timing(
        median_us=float(statistics.median(s)),
        p10_us=percentile(s, 10),
        p90_us=percentile(s, 90),
        min_us=min(s),
        max_us=max(s),
        samples_us=s,
        **kw,
    )


def l2_cache_bytes(device: torch.device | int | None = None) -> int:
    """The device's L2 size, or 50 MB where the device does not say."""
    try:
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(device if device is not None else torch.cuda.current_device())
            size = int(getattr(props, "L2_cache_size", 0) or 0)
            if size > 0:
                return size
    except Exception as e:  # pragma: no cover - depends on the driver
        log.debug("no L2 size from the device: %s", e)
    return DEFAULT_L2_BYTES


def rotation_copies(
    bytes_per_copy: int,
    *,
    l2_bytes: int | None = None,
    factor: float = 2.0,
    max_copies: int = 64,
    max_total_bytes: int = 4 << 30,
) -> int:
    """How many weight copies make R * bytes_per_copy > factor x L2, capped by `max_copies` and
    `max_total_bytes` (at least 1)."""
    l2 = l2_cache_bytes() if l2_bytes is None else l2_bytes
    if bytes_per_copy <= 0:
        return 1
    r = math.floor(factor * l2 / bytes_per_copy) + 1
    r = min(r, max_copies, max(1, max_total_bytes // bytes_per_copy))
    return max(1, int(r))


def _as_list(fn: Callable[[], object] | Sequence[Callable[[], object]]) -> list[Callable[[], object]]:
    fns = [fn] if callable(fn) else list(fn)
    if not fns or not all(callable(f) for f in fns):
        raise ValueError("time_graph: argument 'fn' must be a callable or a non-empty sequence of callables")
    return fns


def _is_cuda(device: torch.device | str | None) -> bool:
    if device is None:
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def time_graph(
    fn: Callable[[], object] | Sequence[Callable[[], object]],
    *,
    replays: int = 10,
    warmup: int = 2,
    eager: bool = True,
    eager_calls: int | None = None,
    device: torch.device | str | None = None,
    use_graph: bool = True,
    budget_s: float | None = None,
) -> Timing:
    """Per-call time of `fn` (one callable, or one per rotated weight copy: the graph calls each in
    turn). On CUDA: one CUDA graph of all the calls, `warmup` untimed replays, then `replays` timed
    ones (CUDA events); per call = replay time / len(fn). Falls back to eager timing (method
    "cuda-eager", with `note`) when the calls cannot be captured. On the CPU: wall-clock time of
    eager calls (method "cpu-wallclock")."""
    fns = _as_list(fn)
    replays = max(1, int(replays))
    warmup = max(0, int(warmup))
    if not _is_cuda(device):
        return _time_cpu(fns, replays=replays, warmup=warmup)
    return _time_cuda(
        fns,
        replays=replays,
        warmup=warmup,
        eager=eager,
        eager_calls=eager_calls,
        use_graph=use_graph,
        budget_s=budget_s,
    )


def _time_cpu(fns: list[Callable[[], object]], *, replays: int, warmup: int) -> Timing:
    for _ in range(max(1, warmup)):
        for f in fns:
            f()
    samples = []
    for _ in range(replays):
        t0 = time.perf_counter()
        for f in fns:
            f()
        samples.append((time.perf_counter() - t0) * 1e6 / len(fns))
    t = summarize(samples, eager_us=None, replays=replays, calls_per_replay=len(fns), method="cpu-wallclock")
    t.eager_us = t.median_us
    return t


def time_eager_cuda(fns: Sequence[Callable[[], object]], calls: int) -> float:
    """Per-call microseconds of `calls` eager calls (cycling over `fns`), events around the loop."""
    calls = max(1, calls)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for i in range(calls):
        fns[i % len(fns)]()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / calls


def _time_cuda(
    fns: list[Callable[[], object]],
    *,
    replays: int,
    warmup: int,
    eager: bool,
    eager_calls: int | None,
    use_graph: bool,
    budget_s: float | None = None,
) -> Timing:
    r = len(fns)
    # Warm up on a side stream (what capture needs: lazy inits, autotuning, workspace allocation).
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    passes = max(1, warmup)
    with torch.cuda.stream(side):
        for i in range(passes):
            t0 = time.perf_counter()
            for f in fns:
                f()
            if budget_s is not None and i == 0:
                torch.cuda.current_stream().synchronize()
                if time.perf_counter() - t0 > budget_s / 4:
                    break  # slow op: one pass is warm enough
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()

    if budget_s is not None:
        # One eager pass over the copies: the eager time, and the cost of a replay.
        pass_us = time_eager_cuda(fns, r) * r
        eager_us = pass_us / r if eager else None
        fit = int(budget_s * 1e6 / max(pass_us, 1e-3))
        replays = max(min(3, replays), min(replays, fit))
        warmup = min(warmup, 1 if fit < 2 * replays else warmup)
    else:
        n_eager = eager_calls if eager_calls is not None else max(r, 10)
        eager_us = time_eager_cuda(fns, n_eager) if eager else None

    note = ""
    graph = None
    if use_graph:
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for f in fns:
                    f()
            torch.cuda.synchronize()
        except Exception as e:
            note = f"CUDA-graph capture failed, eager timing instead: {type(e).__name__}: {e}"[:500]
            log.warning("%s", note)
            graph = None
            _recover_after_capture()
    else:
        note = "graphs disabled"

    if graph is None:
        samples = [time_eager_cuda(fns, max(r, 3)) for _ in range(replays)]
        t = summarize(samples, eager_us=eager_us, replays=replays, calls_per_replay=r, method="cuda-eager", note=note)
        return t

    try:
        for _ in range(warmup):
            graph.replay()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(replays)]
        torch.cuda.synchronize()
        for start, end in events:
            start.record()
            graph.replay()
            end.record()
        torch.cuda.synchronize()
        samples = [s.elapsed_time(e) * 1e3 / r for s, e in events]
    finally:
        del graph
    return summarize(samples, eager_us=eager_us, replays=replays, calls_per_replay=r, method="cuda-graph", note=note)


def _recover_after_capture() -> None:
    """After a failed capture: make sure no capture is left open and the device is usable."""
    try:
        torch.cuda.synchronize()
    except Exception as e:  # pragma: no cover - GPU only
        log.warning("device not usable after a failed capture: %s", e)


def cuda_sync(device: torch.device | str | None = None) -> None:
    if _is_cuda(device):
        torch.cuda.synchronize()


__all__ = [
    "DEFAULT_L2_BYTES",
    "Timing",
    "cuda_sync",
    "l2_cache_bytes",
    "percentile",
    "rotation_copies",
    "summarize",
    "time_eager_cuda",
    "time_graph",
]
