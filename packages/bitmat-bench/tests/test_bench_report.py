"""Merging runs and re-rendering results with `bitmat-bench report`."""

import json

import pytest
from bitmat_bench.cli import main
from bitmat_bench.report import add_speedups, merge


def _kernels(tmp_path, name, impls):
    out = tmp_path / name
    argv = ["kernels", "--cpu", "--out", str(out), "--shapes", "32x32", "--batch", "1,2", "--impls", impls]
    assert main([*argv, "--replays", "2", "--no-progress", "--no-roofline"]) == 0
    return out


def test_bench_report_merges_runs(tmp_path):
    a = _kernels(tmp_path, "a", "bitmat-w158a8")
    b = _kernels(tmp_path, "b", "cublas-bf16,bitmat-w1a8")
    out = tmp_path / "merged"
    assert main(["report", str(a), str(b / "results.json"), "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    keys = [(r["impl"], r["m"]) for r in doc["records"]]
    assert len(keys) == len(set(keys)) == 6  # cuBLAS measured twice: kept once
    assert {"bitmat-w158a8", "bitmat-w1a8", "cublas-bf16"} == {k for k, _ in keys}
    assert all(r["speedup_vs_cublas"] > 0 for r in doc["records"])
    assert len(doc["merged_from"]) == 2 and " && " in doc["environment"]["command"]
    for name in (
        ("results.csv", "summary.md", "speedup.png", "roofline.png")
        if doc.get("roofline")
        else ("results.csv", "summary.md", "speedup.png")
    ):
        assert (out / name).is_file()


def test_bench_report_rejects_mixed_benches(tmp_path):
    with pytest.raises(ValueError, match="different benches"):
        merge([{"bench": "kernels", "records": []}, {"bench": "model", "records": []}])
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "o")])


def test_bench_add_speedups():
    recs = [
        {
            "bench": "kernels",
            "shape": "s",
            "m": 1,
            "impl": "cublas-bf16",
            "status": "ok",
            "median_us": 10.0,
            "eager_us": 20.0,
        },
        {"bench": "kernels", "shape": "s", "m": 1, "impl": "x", "status": "ok", "median_us": 5.0, "eager_us": 40.0},
        {"bench": "kernels", "shape": "s", "m": 2, "impl": "x", "status": "ok", "median_us": 5.0},
    ]
    add_speedups(recs)
    assert recs[1]["speedup_vs_cublas"] == 2.0 and recs[1]["eager_speedup_vs_cublas"] == 0.5
    assert "speedup_vs_cublas" not in recs[2]
