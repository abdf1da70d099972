"""Summarise a gpu_sweep.py JSON-lines file: for each swept (N, K, M), cuBLAS, the rules' own time (path auto),
dequantize + cuBLAS where timed, then the fastest tiles with their speedup over cuBLAS.

    python packages/bitmat-kernels/scripts/sweep_summary.py results/<run>/sweep1.jsonl [--top 10]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def tile_name(cfg: dict) -> str:
    """BMxBNxBKPxWARPSxSTAGES and the split-K factor, as gpu_sweep.py --gemm-tiles spells a tile, and the weight
    decode (code pairs or bytes) where the record names it."""
    dims = (cfg["block_m"], cfg["block_n"], cfg["block_kp"], cfg["num_warps"], cfg["num_stages"])
    decode = {True: " pairs", False: " bytes"}.get(cfg.get("code_pairs"), "")
    return "x".join(str(d) for d in dims) + f" split {cfg['split_k']}" + decode


def summarise(lines: list[str], top: int) -> list[str]:
    records = [json.loads(line) for line in lines if line.strip()]
    points = {(r["n"], r["k"], r["m"], r["path"]): r for r in records if r["kind"] == "point"}
    swept = defaultdict(list)
    out = []
    for r in records:
        if r["kind"] == "sweep":
            swept[(r["n"], r["k"], r["m"])].append(r)
        elif r["kind"] == "sweep_error":
            out.append(f"error {r['n']}x{r['k']} M={r['m']} {tile_name(r['cfg'])}: {r['err'][:100]}")
    for (n, k, m), runs in swept.items():
        auto, dequant = points.get((n, k, m, "auto")), points.get((n, k, m, "dequant"))
        cublas = auto["cublas_us"] if auto else None
        head = f"{n}x{k} M={m}"
        if auto:
            head += f": cuBLAS {cublas:.1f} us, auto {auto['us']:.1f} (x{auto['speedup']:.2f})"
        if dequant:
            head += f", dequant {dequant['us']:.1f}"
        out.append(head)
        for r in sorted(runs, key=lambda r: r["us"])[:top]:
            ratio = f"  x{cublas / r['us']:.2f}" if cublas else ""
            flag = "" if r.get("repeat_equal", True) else "  NOT REPEATABLE"
            out.append(f"    {tile_name(r['cfg']):28s} {r['us']:9.1f} us{ratio}{flag}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl")
    ap.add_argument("--top", type=int, default=10, help="tiles listed per point")
    args = ap.parse_args()
    with open(args.jsonl) as f:
        print("\n".join(summarise(f.readlines(), args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
