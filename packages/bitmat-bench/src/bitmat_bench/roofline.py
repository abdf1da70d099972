"""The card's measured ceilings: copy bandwidth, bf16 and int8 matmul rates.

* copy bandwidth = (bytes read + bytes written) / time of `dst.copy_(src)` on a buffer far larger
  than L2, timed with CUDA-graph replays;
* bf16 rate = 2*M*N*K / time of `F.linear(x, w)` (cuBLAS) at 8192^3;
* int8 rate = 2*M*N*K / time of `torch._int_mm(a, b)` with b column-major (cuBLASLt's fast layout).

On the CPU the same measurements run on small sizes: they describe the CPU, nothing else.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from .timing import l2_cache_bytes, time_graph

log = logging.getLogger(__name__)


def copy_bandwidth(device: torch.device, nbytes: int | None = None, replays: int = 10) -> dict:
    """Device-to-device copy bandwidth in bytes/s (read + write), and how it was measured."""
    cuda = device.type == "cuda"
    if nbytes is None:
        nbytes = max(1 << 30, 8 * l2_cache_bytes()) if cuda else 32 << 20
        if cuda:
            free, _ = torch.cuda.mem_get_info(device)
            nbytes = int(min(nbytes, free // 4))
    n = max(1024, nbytes // 4)
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    t = time_graph(lambda: dst.copy_(src), replays=replays, warmup=2, device=device, eager=False)
    moved = 2 * src.nbytes
    out = {
        "bytes_per_s": moved / (t.median_us * 1e-6),
        "buffer_bytes": src.nbytes,
        "median_us": t.median_us,
        "p10_us": t.p10_us,
        "p90_us": t.p90_us,
        "method": t.method,
    }
    return out


def matmul_rate(device: torch.device, dtype: str, size: int | None = None, replays: int = 10) -> dict:
    """FLOP/s (ops/s for int8) of a size^3 matmul: dtype "bf16" (F.linear) or "int8" (torch._int_mm)."""
    cuda = device.type == "cuda"
    size = size or (8192 if cuda else 512)
    m = n = k = size
    if dtype == "bf16":
        x = torch.randn(m, k, device=device, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=device, dtype=torch.bfloat16)
        fn = lambda: F.linear(x, w)
    elif dtype == "int8":
        x = torch.randint(-127, 128, (m, k), device=device, dtype=torch.int8)
        w = torch.randint(-127, 128, (n, k), device=device, dtype=torch.int8)
        wt = w.t()  # column-major [K, N]: cuBLASLt's fast int8 layout
        fn = lambda: torch._int_mm(x, wt)
    else:
        raise ValueError(f"matmul_rate: argument 'dtype' must be 'bf16' or 'int8', got {dtype!r}")
    t = time_graph(fn, replays=replays, warmup=2, device=device, eager=False)
    return {
        "ops_per_s": 2.0 * m * n * k / (t.median_us * 1e-6),
        "size": size,
        "median_us": t.median_us,
        "p10_us": t.p10_us,
        "p90_us": t.p90_us,
        "method": t.method,
    }


def measure(device: torch.device, *, what: tuple[str, ...] = ("copy", "bf16", "int8"), replays: int = 10) -> dict:
    """The roofline block of a result: each entry measured, or its error (the run goes on)."""
    out: dict = {"device": device.type}
    if "copy" in what:
        try:
            out["copy"] = copy_bandwidth(device, replays=replays)
        except Exception as e:
            log.warning("copy bandwidth failed: %s: %s", type(e).__name__, e)
            out["copy"] = {"error": f"{type(e).__name__}: {e}"}
    for dt in ("bf16", "int8"):
        if dt in what:
            try:
                out[dt] = matmul_rate(device, dt, replays=replays)
            except Exception as e:
                log.warning("%s matmul rate failed: %s: %s", dt, type(e).__name__, e)
                out[dt] = {"error": f"{type(e).__name__}: {e}"}
    return out


def bandwidth(roof: dict | None) -> float | None:
    try:
        v = roof["copy"]["bytes_per_s"]  # type: ignore[index]
        return float(v) if v and v > 0 else None
    except Exception:
        return None


def rate(roof: dict | None, dtype: str) -> float | None:
    try:
        v = roof[dtype]["ops_per_s"]  # type: ignore[index]
        return float(v) if v and v > 0 else None
    except Exception:
        return None


def describe(roof: dict) -> list[str]:
    lines = []
    bw = bandwidth(roof)
    if bw:
        mb = roof["copy"]["buffer_bytes"] / 1e6
        lines.append(f"copy bandwidth: {bw / 1e12:.3f} TB/s (read + write, {mb:.0f} MB buffer)")
    elif "copy" in roof:
        lines.append(f"copy bandwidth: failed ({roof['copy'].get('error')})")
    for dt, unit in (("bf16", "TFLOP/s"), ("int8", "TOP/s")):
        r = rate(roof, dt)
        if r:
            scale, u = (1e12, unit) if r >= 1e12 else (1e9, unit.replace("T", "G", 1))
            lines.append(f"{dt} matmul {roof[dt]['size']}^3: {r / scale:.1f} {u}")
        elif dt in roof:
            lines.append(f"{dt} matmul: failed ({roof[dt].get('error')})")
    return lines


__all__ = ["bandwidth", "copy_bandwidth", "describe", "matmul_rate", "measure", "rate"]
