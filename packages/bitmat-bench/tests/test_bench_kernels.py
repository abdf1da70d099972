"""`bitmat-bench kernels` end to end on the CPU (the reference path), peers skipped or failing."""

import csv
import json

import pytest
import torch
from bitmat_bench import impls as impls_mod
from bitmat_bench.cli import main
from bitmat_bench.env import CPU_NOTICE
from bitmat_bench.impls import CublasBF16, KernelImpl, Skip, pack_bitmat_tl, select_impls
from bitmat_bench.kernels import rel_error, sample_rows


def _run(tmp_path, *extra):
    out = tmp_path / "res"
    rc = main(["kernels", "--cpu", "--out", str(out), "--replays", "2", "--warmup", "1", "--no-progress", *extra])
    return rc, out


def test_bench_kernels_cpu_end_to_end(tmp_path, caplog):
    rc, out = _run(tmp_path, "--shapes", "64x48,32x40", "--batch", "1,5")
    assert rc == 0
    for name in ("results.json", "results.csv", "summary.md", "results.jsonl", "speedup.png", "roofline.png"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is True and doc["bench"] == "kernels"
    env = doc["environment"]
    for key in ("date", "command", "torch", "cuda", "versions", "gpu_slug", "argv"):
        assert key in env
    assert env["cpu_mode"] is True and env["command"].startswith("bitmat-bench kernels")
    assert env["versions"]["bitmat-kernels"]
    assert doc["roofline"]["copy"]["bytes_per_s"] > 0
    recs = doc["records"]
    ok = {(r["shape"], r["m"], r["impl"]) for r in recs if r["status"] == "ok"}
    for shape in ("64x48", "32x40"):
        for m in (1, 5):
            for impl in ("cublas-bf16", "bitmat-w158a8", "bitmat-w158a16", "bitmat-w1a8", "bitmat-w1a16"):
                assert (shape, m, impl) in ok
    for r in recs:
        if r["status"] == "ok":
            assert r["rel_err"] <= r["tol"]
            assert r["median_us"] > 0 and r["method"] == "cpu-wallclock"
            assert r["speedup_vs_cublas"] > 0
            assert r["mem_roofline_pct"] > 0
    # the peers need CUDA: skipped, with the reason, and the run went on
    for peer in ("gemlite-a8w158", "gemlite-a16w158", "bitmat-tl", "hf-bitlinear", "hf-autobitlinear"):
        assert doc["impls"][peer]["status"] == "skipped"
        assert doc["impls"][peer]["reason"]
    md = (out / "summary.md").read_text()
    assert CPU_NOTICE in md and "skipped" in md and "Speedup over cuBLAS" in md
    assert CPU_NOTICE in caplog.text
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == len(recs) and {"shape", "m", "impl", "median_us", "speedup_vs_cublas"} <= set(rows[0])
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(recs)


class _Failing(KernelImpl):
    name, label, description = "failing-peer", "a peer that raises", "raises on build"

    def build(self, prob):
        raise RuntimeError("boom in build")


class _Broken(KernelImpl):
    name, label, description = "broken-peer", "a peer that cannot import", "raises on import"

    def check_available(self, device):
        raise ImportError("cannot import name 'kernel' from 'brokenlib'")


class _Missing(KernelImpl):
    name, label, description = "missing-peer", "a peer not installed", ""

    def check_available(self, device):
        raise Skip("missinglib not installed")


class _Wrong(CublasBF16):
    name, label, kind = "wrong-peer", "a peer with wrong results", "peer"

    def run(self, inp, weights):
        return super().run(inp, weights) * 1.5


class _CallFails(CublasBF16):
    name, label, kind = "callfail-peer", "a peer whose call raises", "peer"

    def run(self, inp, weights):
        if inp.shape[0] > 1:
            raise RuntimeError("kernel launch failed for M > 1")
        return super().run(inp, weights)


def test_bench_kernels_failing_peers_recorded(tmp_path, monkeypatch):
    extra = [_Failing(), _Broken(), _Missing(), _Wrong(), _CallFails()]
    monkeypatch.setattr(impls_mod, "all_impls", lambda: [CublasBF16(), *extra])
    rc, out = _run(tmp_path, "--shapes", "32x32", "--batch", "1,3", "--no-roofline")
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["impls"]["broken-peer"]["status"] == "failed"
    assert "brokenlib" in doc["impls"]["broken-peer"]["error"]
    assert doc["impls"]["missing-peer"] == {
        **doc["impls"]["missing-peer"],
        "status": "skipped",
        "reason": "missinglib not installed",
    }
    by = {(r["impl"], r["m"]): r for r in doc["records"]}
    assert by[("failing-peer", 1)]["status"] == "failed" and "boom in build" in by[("failing-peer", 1)]["error"]
    assert by[("wrong-peer", 1)]["status"] == "wrong" and by[("wrong-peer", 1)]["rel_err"] == pytest.approx(
        0.5, rel=0.05
    )
    assert "median_us" not in by[("wrong-peer", 1)]  # not timed
    assert by[("callfail-peer", 1)]["status"] == "ok"
    assert by[("callfail-peer", 3)]["status"] == "failed" and "M > 1" in by[("callfail-peer", 3)]["error"]
    assert by[("cublas-bf16", 3)]["status"] == "ok"  # the run went on
    md = (out / "summary.md").read_text()
    assert "boom in build" in md and "WRONG" in md and "missinglib not installed" in md


def test_bench_select_impls():
    names = [i.name for i in select_impls("bitmat,-bitmat-w1a16")]
    assert names == ["cublas-bf16", "bitmat-w158a8", "bitmat-w158a16", "bitmat-w1a8"]
    assert next(i.name for i in select_impls("peers")) == "cublas-bf16"
    assert len(select_impls(None)) == 11
    with pytest.raises(ValueError, match="unknown"):
        select_impls("cublas,xyz")


def test_bench_helpers():
    assert sample_rows(5, 256, torch.device("cpu")).tolist() == [0, 1, 2, 3, 4]
    rows = sample_rows(10000, 16, torch.device("cpu"))
    assert rows[0] == 0 and rows[-1] == 9999 and len(rows) == 16
    y = torch.ones(4, 3)
    assert rel_error(y, y) == 0.0 and rel_error(2 * y, y) == pytest.approx(1.0)
    # bitmat-tl's layout: 4 consecutive columns per byte, -1 stored as 2
    codes = torch.tensor([[1, 0, -1, 1, -1, -1, 0, 0]], dtype=torch.int8)
    packed = pack_bitmat_tl(codes).view(torch.uint8)
    assert packed.tolist() == [[1 | (0 << 2) | (2 << 4) | (1 << 6), 2 | (2 << 2)]]


def test_bench_bitmat_tl_quantizer_matches_original_semantics():
    x = torch.tensor([[1.0, -0.5, 0.25, 0.0]])
    xq, s = impls_mod.bitmat_tl_quantize_activations(x)
    assert xq.dtype == torch.int8 and xq.tolist() == [[127, -63, 31, 0]]  # truncation, as in bitmat-tl
    assert s.item() == pytest.approx(127.0)
