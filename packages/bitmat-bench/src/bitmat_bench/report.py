"""Writing results: results.jsonl (appended record by record while the run goes), then results.json,
results.csv, summary.md and PNG plots (rewritten as the run goes, and once more at the end)."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import roofline as _roof

log = logging.getLogger(__name__)

SCHEMA = "bitmat-bench/1"
BASELINE = "cublas-bf16"

_CSV_FIRST = [
    "bench",
    "shape",
    "model",
    "n",
    "k",
    "m",
    "impl",
    "label",
    "kind",
    "status",
    "median_us",
    "p10_us",
    "p90_us",
    "min_us",
    "max_us",
    "eager_us",
    "speedup_vs_cublas",
    "eager_speedup_vs_cublas",
    "mem_roofline_pct",
    "roofline_pct",
    "tflops",
    "gbps",
    "rel_err",
    "tol",
    "weight_bytes",
    "bytes_moved",
    "copies",
    "replays",
    "method",
    "note",
    "reason",
    "error",
]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def add_speedups(records: list[dict], baseline: str = BASELINE, key: tuple[str, ...] = ("bench", "shape", "m")) -> None:
    """speedup_vs_cublas = baseline median / this median, for records of the same (bench, shape, M)."""
    base: dict[tuple, dict] = {}
    for r in records:
        if r.get("impl") == baseline and r.get("status") == "ok":
            base[tuple(r.get(k) for k in key)] = r
    for r in records:
        b = base.get(tuple(r.get(k) for k in key))
        if r.get("status") != "ok" or b is None:
            continue
        if _finite(r.get("median_us")) and r["median_us"] > 0 and _finite(b.get("median_us")):
            r["speedup_vs_cublas"] = b["median_us"] / r["median_us"]
        if _finite(r.get("eager_us")) and r["eager_us"] > 0 and _finite(b.get("eager_us")):
            r["eager_speedup_vs_cublas"] = b["eager_us"] / r["eager_us"]


def _fmt(v: Any, spec: str = ".1f", none: str = "") -> str:
    if v is None:
        return none
    if _finite(v):
        return format(v, spec)
    return str(v)


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


class ResultWriter:
    """Collects records of one run and writes them out; safe to call `flush` at any time."""

    def __init__(self, out_dir: str | os.PathLike, bench: str, environment: dict):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.bench = bench
        self.environment = environment
        self.roofline: dict | None = None
        self.impls: dict[str, dict] = {}
        self.records: list[dict] = []
        self.extra: dict[str, Any] = {}
        self.complete = False
        self._t0 = time.monotonic()
        self._jsonl = self.out / "results.jsonl"
        self._jsonl.write_text("")

    # ------------------------------------------------------------------ collecting

    def add(self, record: dict) -> dict:
        record = {"bench": self.bench, **record}
        if "t_s" not in record:
            record["t_s"] = round(time.monotonic() - self._t0, 2)
        self.records.append(record)
        try:
            with self._jsonl.open("a") as f:
                f.write(json.dumps(record, default=str) + "\n")
                f.flush()
        except OSError as e:  # pragma: no cover
            log.warning("could not append to %s: %s", self._jsonl, e)
        return record

    # ------------------------------------------------------------------ writing

    def document(self) -> dict:
        add_speedups(self.records)
        return {
            "schema": SCHEMA,
            "bench": self.bench,
            "complete": self.complete,
            "environment": self.environment,
            "roofline": self.roofline,
            "impls": self.impls,
            **self.extra,
            "records": self.records,
        }

    def flush(self, plots: bool = False) -> None:
        doc = self.document()
        _atomic_write(self.out / "results.json", json.dumps(doc, indent=2, default=str))
        self._write_csv()
        try:
            _atomic_write(self.out / "summary.md", summary_markdown(doc))
        except Exception as e:
            log.warning("summary.md failed: %s: %s", type(e).__name__, e)
        if plots:
            try:
                self.plots(doc)
            except Exception as e:
                log.warning("plots failed: %s: %s", type(e).__name__, e)

    def finish(self, complete: bool = True) -> None:
        self.complete = complete
        self.flush(plots=True)

    def _write_csv(self) -> None:
        cols = list(_CSV_FIRST)
        for r in self.records:
            for k in r:
                if k not in cols:
                    cols.append(k)
        cols = [c for c in cols if any(c in r for r in self.records)] or _CSV_FIRST[:10]
        tmp = self.out / "results.csv.tmp"
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in self.records:
                w.writerow({k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()})
        tmp.replace(self.out / "results.csv")

    def plots(self, doc: dict) -> list[Path]:
        if self.bench == "kernels":
            return plot_kernels(doc, self.out)
        if self.bench == "layers":
            return plot_layers(doc, self.out)
        return []


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------- markdown


def _header(doc: dict) -> list[str]:
    env = doc.get("environment", {})
    v = env.get("versions", {}) or {}
    dev = env.get("gpu") or f"CPU ({env.get('cpu', '')})"
    lines = [f"# bitmat-bench {doc.get('bench')}: {dev}", ""]
    if env.get("cpu_mode"):
        lines += [f"> **{env.get('notice')}**", ""]
    if not doc.get("complete"):
        lines += ["> **incomplete run**: the records below are what finished before it stopped.", ""]
    lines += [
        f"- command: `{env.get('command')}`",
        f"- date: {env.get('date')}; git: {env.get('git_commit')}",
        f"- torch {env.get('torch')}, CUDA {env.get('cuda')}, driver {env.get('driver')}, triton {v.get('triton')}, "
        f"transformers {v.get('transformers')}",
        f"- bitmat-kernels {v.get('bitmat-kernels')}, bitmat-nn {v.get('bitmat-nn')}, bitmat-hf {v.get('bitmat-hf')}, "
        f"bitmat-bench {v.get('bitmat-bench')}; gemlite {v.get('gemlite')}, bitmat-tl {v.get('bitmat-tl')}",
    ]
    roof = doc.get("roofline")
    if roof:
        lines += [f"- measured: {'; '.join(_roof.describe(roof))}"]
    lines.append("")
    return lines


def _impl_table(doc: dict) -> list[str]:
    impls = doc.get("impls") or {}
    if not impls:
        return []
    lines = ["## Implementations", "", "| impl | status | version | what |", "| --- | --- | --- | --- |"]
    for name, info in impls.items():
        status = info.get("status", "")
        if info.get("reason"):
            status += f": {info['reason']}"
        if info.get("error"):
            status += f": {info['error']}"
        lines.append(
            f"| {name} | {_md_escape(status)} | {_md_escape(info.get('version') or '')} | "
            f"{_md_escape(info.get('description', ''))} |"
        )
    lines.append("")
    return lines


def _cell_status(r: dict) -> str:
    st = r.get("status")
    if st == "ok":
        return ""
    return {"skipped": "skip", "failed": "FAIL", "wrong": "WRONG", "not-run": "n/r"}.get(st, st or "")


def summary_markdown(doc: dict) -> str:
    bench = doc.get("bench")
    lines = _header(doc)
    if bench == "kernels":
        lines += _kernels_md(doc)
    elif bench == "roofline":
        lines += ["Nothing else: the measured ceilings are above.", ""]
    else:
        lines += _impl_table(doc)
        lines += _generic_md(doc)
    return "\n".join(lines) + "\n"


def _kernels_md(doc: dict) -> list[str]:
    records = doc.get("records", [])
    lines = _impl_table(doc)
    by_shape: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_shape[r.get("shape")].append(r)
    impl_order = [n for n in (doc.get("impls") or {}) if (doc["impls"][n].get("status") == "ok")]
    lines += [
        "## Speedup over cuBLAS bf16",
        "",
        "Per-call time from CUDA-graph replays over weight copies rotated past L2 (median); cells are "
        "cuBLAS time / impl time (> 1 is faster than cuBLAS), the cuBLAS column is microseconds. "
        "skip = not supported for this shape, FAIL = error, WRONG = failed the correctness check.",
        "",
    ]
    for shape, rs in by_shape.items():
        present = [i for i in impl_order if any(r.get("impl") == i for r in rs)]
        if not present:
            continue
        model = next((r.get("model") for r in rs if r.get("model")), "")
        lines += [f"### {model + ' ' if model else ''}{shape} (N x K)", ""]
        head = ["M"] + [("cuBLAS us" if i == BASELINE else i) for i in present]
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        ms = sorted({r.get("m") for r in rs if r.get("m") is not None})
        for m in ms:
            row = [str(m)]
            for i in present:
                r = next((x for x in rs if x.get("impl") == i and x.get("m") == m), None)
                if r is None:
                    row.append("")
                elif r.get("status") != "ok":
                    row.append(_cell_status(r))
                elif i == BASELINE:
                    row.append(_fmt(r.get("median_us"), ".1f"))
                else:
                    row.append(_fmt(r.get("speedup_vs_cublas"), ".2f", "?") + "x")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += [
        "## All results",
        "",
        "| shape | M | impl | us (median) | p10-p90 us | eager us | speedup vs cuBLAS | % mem roofline | "
        "% roofline | rel err | status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        status = r.get("status", "")
        detail = r.get("reason") or r.get("error") or r.get("note") or ""
        if detail:
            status = f"{status}: {detail}"
        spread = f"{_fmt(r.get('p10_us'))}-{_fmt(r.get('p90_us'))}" if _finite(r.get("p10_us")) else ""
        lines.append(
            f"| {r.get('shape')} | {r.get('m')} | {r.get('impl')} | {_fmt(r.get('median_us'), '.2f')} | {spread} | "
            f"{_fmt(r.get('eager_us'), '.2f')} | {_fmt(r.get('speedup_vs_cublas'), '.2f')} | "
            f"{_fmt(r.get('mem_roofline_pct'), '.0f')} | {_fmt(r.get('roofline_pct'), '.0f')} | "
            f"{_fmt(r.get('rel_err'), '.1e')} | {_md_escape(status)[:200]} |"
        )
    lines.append("")
    return lines


def _generic_md(doc: dict) -> list[str]:
    records = doc.get("records", [])
    if not records:
        return ["No records.", ""]
    skip = {"bench", "environment", "samples_us", "label", "kind", "description"}
    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in cols and k not in skip and not isinstance(r[k], (dict, list)):
                cols.append(k)
    lines = ["## Results", "", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for r in records:
        cells = []
        for c in cols:
            v = r.get(c)
            if isinstance(v, float):
                cells.append(_fmt(v, ".4g"))
            else:
                cells.append(_md_escape("" if v is None else v)[:160])
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


# ---------------------------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, max(1, n))
    return math.ceil(n / cols), cols


def _subtitle(doc: dict) -> str:
    env = doc.get("environment", {})
    dev = env.get("gpu") or "CPU (reference path, not GPU performance)"
    return f"{dev} | {env.get('date', '')} | torch {env.get('torch')}"


def _series(records: list[dict], shape: str, metric: str) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, tuple[list[int], list[float]]] = {}
    for r in records:
        if r.get("shape") != shape or r.get("status") != "ok" or not _finite(r.get(metric)):
            continue
        xs, ys = out.setdefault(r["impl"], ([], []))
        xs.append(r["m"])
        ys.append(r[metric])
    for impl, (xs, ys) in out.items():
        order = sorted(range(len(xs)), key=lambda i: xs[i])
        out[impl] = ([xs[i] for i in order], [ys[i] for i in order])
    return out


def _line_plots(doc: dict, path: Path, metric: str, ylabel: str, title: str, *, exclude=(), hline=None, logy=False):
    plt = _pyplot()
    records = doc.get("records", [])
    shapes = list(dict.fromkeys(r.get("shape") for r in records if r.get("status") == "ok"))
    if not shapes:
        return None
    rows, cols = _grid(len(shapes))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    impls = [i for i in dict.fromkeys(r.get("impl") for r in records) if i not in exclude]
    cmap = plt.get_cmap("tab10")
    colors = {impl: cmap(i % 10) for i, impl in enumerate(impls)}
    for ax, shape in zip(axes.flat, shapes):
        series = _series(records, shape, metric)
        for impl in impls:
            if impl in series:
                xs, ys = series[impl]
                style = "-" if impl.startswith("bitmat-w") else "--"
                ax.plot(xs, ys, style, marker="o", ms=3, lw=1.4, label=impl, color=colors[impl])
        if hline is not None:
            ax.axhline(hline, color="black", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        model = next((r.get("model") for r in records if r.get("shape") == shape and r.get("model")), "")
        ax.set_title(f"{model} {shape}".strip(), fontsize=9)
        ax.set_xlabel("M (tokens)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(shapes) :]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(6, max(1, len(labels))), fontsize=8, frameon=False)
    fig.suptitle(f"{title}\n{_subtitle(doc)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * math.ceil(len(labels) / 6), 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_kernels(doc: dict, out: Path) -> list[Path]:
    paths = []
    p = _line_plots(
        doc,
        out / "speedup.png",
        "speedup_vs_cublas",
        "speedup over cuBLAS bf16",
        "bitmat-bench kernels: speedup over cuBLAS bf16 (CUDA-graph per-call time, >1 is faster)",
        exclude=(BASELINE,),
        hline=1.0,
        logy=True,
    )
    if p:
        paths.append(p)
    p = _line_plots(
        doc,
        out / "roofline.png",
        "mem_roofline_pct",
        "% of memory roofline",
        "bitmat-bench kernels: % of the memory roofline ((weights + x + y bytes) / copy bandwidth / time)",
        hline=100.0,
    )
    if p:
        paths.append(p)
    return paths


def plot_layers(doc: dict, out: Path) -> list[Path]:
    p = _line_plots(
        doc,
        out / "speedup.png",
        "speedup_vs_counterpart",
        "speedup over nn.Linear counterpart",
        "bitmat-bench layers: speedup over the nn.Linear counterpart (>1 is faster)",
        hline=1.0,
        logy=True,
    )
    return [p] if p else []


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A tqdm bar (on stderr), or a silent stand-in when disabled or tqdm is missing."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except Exception:
        log.info("tqdm not installed: no progress bar")
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="run", mininterval=1.0, dynamic_ncols=True)


def load(path: str | os.PathLike) -> dict:
    """Read a results.json back (a folder holding one, or the file)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    with open(p) as f:
        return json.load(f)


_KEY = ("bench", "shape", "m", "impl")


def merge(docs: list[dict], sources: list[str] | None = None) -> dict:
    """One result from several runs of the same bench (e.g. a run without gemlite and a gemlite run):
    records of the same (shape, M, impl) keep the first run's; implementation statuses prefer "ok";
    the environment is the first run's, with every run's command and date under `merged_from`."""
    if not docs:
        raise ValueError("merge: no results to merge")
    benches = {d.get("bench") for d in docs}
    if len(benches) != 1:
        raise ValueError(f"merge: results of different benches cannot be merged: {sorted(map(str, benches))}")
    out = {k: v for k, v in docs[0].items() if k != "records"}
    out["environment"] = dict(docs[0].get("environment") or {})
    out["merged_from"] = [
        {
            "source": (sources[i] if sources else None),
            "command": (d.get("environment") or {}).get("command"),
            "date": (d.get("environment") or {}).get("date"),
            "gpu": (d.get("environment") or {}).get("gpu"),
            "complete": d.get("complete"),
        }
        for i, d in enumerate(docs)
    ]
    gpus = {m["gpu"] for m in out["merged_from"]}
    if len(gpus) > 1:
        log.warning("merging results from different devices: %s", sorted(map(str, gpus)))
    out["environment"]["command"] = " && ".join(str(m["command"]) for m in out["merged_from"])
    impls: dict[str, dict] = {}
    for d in docs:
        for name, info in (d.get("impls") or {}).items():
            if name not in impls or (impls[name].get("status") != "ok" and info.get("status") == "ok"):
                impls[name] = info
    out["impls"] = impls
    out["roofline"] = next((d.get("roofline") for d in docs if d.get("roofline")), None)
    out["complete"] = all(bool(d.get("complete")) for d in docs)
    seen: set[tuple] = set()
    records = []
    for d in docs:
        for r in d.get("records", []):
            key = tuple(r.get(k) for k in _KEY)
            if key in seen:
                continue
            seen.add(key)
            r = dict(r)
            r.pop("speedup_vs_cublas", None)
            r.pop("eager_speedup_vs_cublas", None)
            records.append(r)
    order = {name: i for i, name in enumerate(impls)}
    shapes = list(dict.fromkeys(r.get("shape") for r in records))
    records.sort(key=lambda r: (shapes.index(r.get("shape")), order.get(r.get("impl"), 999), r.get("m") or 0))
    out["records"] = records
    return out


def write_document(doc: dict, out_dir: str | os.PathLike) -> ResultWriter:
    """Write a (merged or loaded) result as results.json/.jsonl/.csv, summary.md and plots."""
    w = ResultWriter(out_dir, doc.get("bench", "kernels"), doc.get("environment") or {})
    w.roofline = doc.get("roofline")
    w.impls = doc.get("impls") or {}
    w.extra = {
        k: v
        for k, v in doc.items()
        if k not in ("schema", "bench", "complete", "environment", "roofline", "impls", "records")
    }
    for r in doc.get("records", []):
        w.add({k: v for k, v in r.items() if k != "bench"})
    w.finish(complete=bool(doc.get("complete", True)))
    return w


__all__ = [
    "SCHEMA",
    "ResultWriter",
    "add_speedups",
    "load",
    "merge",
    "plot_kernels",
    "summary_markdown",
    "write_document",
]
