"""`bitmat-bench layers`, `model` and `roofline` on the CPU: small, quick, end to end."""

import json
import sys

import pytest
from bitmat_bench.cli import main
from bitmat_bench.layers import NN_MISSING


def test_bench_roofline_cpu(tmp_path):
    assert main(["roofline", "--cpu", "--out", str(tmp_path), "--replays", "3"]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["roofline"]["copy"]["bytes_per_s"] > 0
    assert doc["roofline"]["bf16"]["ops_per_s"] > 0
    assert "copy bandwidth" in (tmp_path / "summary.md").read_text()


def test_bench_layers_cpu(tmp_path):
    argv = ["layers", "--cpu", "--out", str(tmp_path), "--layers", "linear,ffn", "--tokens", "2"]
    assert main([*argv, "--replays", "2", "--warmup", "1", "--no-progress"]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    recs = doc["records"]
    assert {r["status"] for r in recs} <= {"ok", "skipped"}
    torch_ok = [r for r in recs if r["family"] == "torch" and r["status"] == "ok"]
    assert {(r["layer"], r["phase"]) for r in torch_ok} >= {("linear", "forward"), ("linear", "train")}
    if doc["impls"]["bitmat-nn"]["status"] == "ok":
        bit = [r for r in recs if r["family"] == "bitmat-nn"]
        assert bit and all(r["status"] == "ok" for r in bit)
        assert all(r["speedup_vs_counterpart"] > 0 for r in bit)
    assert (tmp_path / "summary.md").is_file()


def test_bench_layers_without_bitmat_nn(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitmat_nn", None)  # import fails
    argv = ["layers", "--cpu", "--out", str(tmp_path), "--layers", "linear,attention", "--tokens", "1"]
    assert main([*argv, "--replays", "2", "--no-train", "--no-progress"]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["impls"]["bitmat-nn"]["status"] == "skipped"
    assert NN_MISSING in doc["impls"]["bitmat-nn"]["reason"]
    bit = [r for r in doc["records"] if r["family"] == "bitmat-nn"]
    assert bit and all(r["status"] == "skipped" and r["reason"] == NN_MISSING for r in bit)
    lin = [r for r in doc["records"] if r["family"] == "torch" and r["layer"] == "linear"]
    assert lin and lin[0]["status"] == "ok"


@pytest.mark.slow
def test_bench_model_cpu(tmp_path):
    argv = ["model", "--cpu", "--out", str(tmp_path), "--impls", "bf16,bitmat-kernels", "--prompt-len", "4"]
    argv += ["--new-tokens", "3", "--prefill-len", "8", "--modes", "prefill,graph"]
    assert main([*argv, "--replays", "2", "--warmup", "1", "--no-progress", "--num-layers", "1"]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    by = {(r["impl"], r["mode"]): r for r in doc["records"]}
    for key, r in by.items():
        assert r["status"] == "ok", (key, r.get("error"))
    assert by[("bitmat-kernels", "graph")]["linear_weight_bytes"] < by[("bf16", "graph")]["linear_weight_bytes"]
    assert by[("bitmat-kernels", "graph")]["decode_tokens_per_s"] > 0
    assert "decode_speedup_vs_bf16" in by[("bitmat-kernels", "graph")]
    assert "prefill_speedup_vs_bf16" in by[("bitmat-kernels", "prefill")]


def test_tensor_bytes_counts_each_storage_once_and_whole():
    """Views into one storage (fused projections' members) count it once; a module's tensors are all counted."""
    import torch
    from bitmat_bench.impls import tensor_bytes

    base = torch.zeros(10, 4, dtype=torch.uint8)
    assert tensor_bytes([base[:3], base[3:7], base[7:]]) == 40
    assert tensor_bytes([torch.zeros(3), torch.zeros(5, dtype=torch.float64)]) == 12 + 40
