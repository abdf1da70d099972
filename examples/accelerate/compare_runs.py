#!/usr/bin/env python
"""Compares the JSON-lines logs of train_qat.py runs: loss curves and throughput.

    python examples/accelerate/compare_runs.py runs/single/log.jsonl runs/ddp/log.jsonl runs/fsdp/log.jsonl

The first log is the baseline (usually the one-GPU run). For every other log it prints, over the steps both logs
have: max and mean |loss - baseline loss|, the final losses, and the throughput (median tokens/s of the whole job
over the steps after --skip warm-up steps), per GPU (divided by the log's world size), and the scaling efficiency
(tokens/s per GPU of the run / tokens/s per GPU of the baseline). With the same global batch, a perfect 2-GPU run
doubles the job's tokens/s: efficiency 1.0. `--tolerance X` exits with status 1 when some max |delta loss| > X;
`--json FILE` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def read_log(path: str | Path) -> dict[int, dict]:
    """step -> record; a later record of the same step (a resumed run) replaces an earlier one."""
    records: dict[int, dict] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            records[int(r["step"])] = r
    if not records:
        raise ValueError(f"{path}: no records")
    return records


def throughput(records: dict[int, dict], skip: int) -> dict:
    steps = sorted(records)
    kept = [records[s] for s in steps if s > skip] or [records[s] for s in steps]
    world = int(kept[-1].get("world_size", 1))
    job = statistics.median(r["tokens_per_s"] for r in kept)
    return {"world_size": world, "tokens_per_s": job, "tokens_per_s_per_gpu": job / world}


def compare(baseline: dict[int, dict], run: dict[int, dict], skip: int = 3) -> dict:
    common = sorted(set(baseline) & set(run))
    if not common:
        raise ValueError("the logs have no step in common")
    deltas = [abs(run[s]["loss"] - baseline[s]["loss"]) for s in common]
    base_tp, run_tp = throughput(baseline, skip), throughput(run, skip)
    return {
        "steps_compared": len(common),
        "first_step": common[0],
        "last_step": common[-1],
        "max_abs_delta_loss": max(deltas),
        "mean_abs_delta_loss": sum(deltas) / len(deltas),
        "final_loss_baseline": baseline[common[-1]]["loss"],
        "final_loss": run[common[-1]]["loss"],
        "baseline": base_tp,
        "run": run_tp,
        "speedup": run_tp["tokens_per_s"] / base_tp["tokens_per_s"],
        "scaling_efficiency": run_tp["tokens_per_s_per_gpu"] / base_tp["tokens_per_s_per_gpu"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("logs", nargs="+", help="log.jsonl files; the first is the baseline")
    p.add_argument("--skip", type=int, default=3, help="warm-up steps left out of the throughput (default 3)")
    p.add_argument("--tolerance", type=float, default=None, help="fail when a max |delta loss| exceeds it")
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args(argv)
    if len(args.logs) < 2:
        p.error("give at least two logs")
    base = read_log(args.logs[0])
    results = {"baseline": args.logs[0], "runs": {}}
    bt = throughput(base, args.skip)
    print(f"baseline {args.logs[0]}: world {bt['world_size']}, {bt['tokens_per_s']:.0f} tokens/s")
    header = (
        f"{'run':<40} {'world':>5} {'steps':>5} {'max|dloss|':>10} {'mean|dloss|':>11} {'final loss':>17} "
        f"{'tokens/s':>10} {'per GPU':>9} {'speedup':>7} {'eff.':>5}"
    )
    print(header)
    print("-" * len(header))
    failed = False
    for path in args.logs[1:]:
        r = compare(base, read_log(path), args.skip)
        results["runs"][path] = r
        final = f"{r['final_loss']:.4f}/{r['final_loss_baseline']:.4f}"
        print(
            f"{path[-40:]:<40} {r['run']['world_size']:>5} {r['steps_compared']:>5} {r['max_abs_delta_loss']:>10.4g} "
            f"{r['mean_abs_delta_loss']:>11.4g} {final:>17} {r['run']['tokens_per_s']:>10.0f} "
            f"{r['run']['tokens_per_s_per_gpu']:>9.0f} {r['speedup']:>7.2f} {r['scaling_efficiency']:>5.2f}"
        )
        if args.tolerance is not None and r["max_abs_delta_loss"] > args.tolerance:
            failed = True
            print(f"  max |delta loss| {r['max_abs_delta_loss']:.4g} > tolerance {args.tolerance}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
