"""`bitmat-bench model` on the CPU: the bitmat-hf path, every mode, the bitnet architecture, budgets, headline."""

import json

import pytest
from bitmat_bench.cli import main
from bitmat_bench.model import TARGETS, headline, parse_modes, parse_variants

pytest.importorskip("bitmat_hf")

_FAST = ["--cpu", "--no-progress", "--num-layers", "1", "--prompt-len", "4", "--new-tokens", "3"]


def _doc(path):
    return json.loads((path / "results.json").read_text())


def test_bench_model_bitmat_vs_bf16_all_modes(tmp_path):
    argv = ["model", *_FAST, "--out", str(tmp_path), "--prefill-len", "8", "--batch", "1,2"]
    assert main([*argv, "--generate-batch", "2"]) == 0
    doc = _doc(tmp_path)
    recs = {(r["impl"], r["mode"], r["batch"]): r for r in doc["records"]}
    assert set(recs) == {
        (i, m, b) for i in ("bf16", "bitmat") for m, b in (("prefill", 1), ("graph", 1), ("graph", 2), ("generate", 2))
    }
    assert all(r["status"] == "ok" for r in recs.values()), [r.get("error") for r in recs.values()]
    bit = recs[("bitmat", "graph", 2)]
    assert bit["linear_weight_memory_vs_bf16"] < 0.25  # packed 2-bit weights
    assert bit["decode_speedup_vs_bf16"] > 0 and bit["repeatable"]
    assert 0 <= bit["token_agreement_vs_bf16"] <= 1
    assert recs[("bitmat", "prefill", 1)]["logits_finite"]
    gen = recs[("bitmat", "generate", 2)]
    assert gen["generate_tokens_per_s"] > 0 and "generate_speedup_vs_bf16" in gen and "host_overhead_ms" in gen
    assert doc["headline"] and all(row["impl"] == "bitmat" for row in doc["headline"])
    text = (tmp_path / "headline.md").read_text()
    assert "| tiny | bitmat | graph | 2 |" in text


def test_bench_model_bitnet_arch_and_hf_bitnet(tmp_path):
    argv = ["model", *_FAST, "--out", str(tmp_path), "--arch", "bitnet", "--modes", "graph"]
    assert main([*argv, "--impls", "bitmat-hf,bf16,hf-bitnet"]) == 0
    doc = _doc(tmp_path)
    assert [r["impl"] for r in doc["records"]] == ["bf16", "bitmat", "hf-bitnet"]  # baseline first
    assert all(r["arch"] == "bitnet" and r["status"] == "ok" for r in doc["records"]), doc["records"]


def test_bench_model_time_budget_and_bad_args(tmp_path, capsys):
    argv = ["model", *_FAST, "--out", str(tmp_path), "--modes", "graph", "--max-seconds", "0"]
    assert main([*argv, "--pdl", "off"]) == 0
    assert {r["status"] for r in _doc(tmp_path)["records"]} == {"not-run"}
    assert _doc(tmp_path)["environment"]["settings"]["pdl"] == "off"
    with pytest.raises(SystemExit):  # inductor's programmatic dependent launch needs a Hopper GPU
        main([*argv, "--pdl", "on"])
    assert "--pdl on: pdl=True needs a CUDA GPU" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--impls"):
        parse_variants("bf16,fast")
    with pytest.raises(ValueError, match="--modes"):
        parse_modes("graph,warp")
    assert parse_variants("bitmat,bf16,bitmat-hf") == ["bf16", "bitmat"]
    assert parse_variants("bf16,bitmat", baseline_last=True) == ["bitmat", "bf16"]


def test_bench_model_headline_targets():
    recs = [
        {
            "model": "llama3-8b",
            "impl": "bitmat",
            "mode": "graph",
            "batch": 1,
            "status": "ok",
            "decode_speedup_vs_bf16": 3.2,
        },
        {
            "model": "llama3-8b",
            "impl": "bitmat",
            "mode": "graph",
            "batch": 16,
            "status": "ok",
            "decode_speedup_vs_bf16": 1.5,
        },
        {"model": "llama3-8b", "impl": "bf16", "mode": "graph", "batch": 1, "status": "ok"},
    ]
    rows = headline(recs)
    assert [r["meets_target"] for r in rows] == [True, False]
    assert rows[0]["target"] == TARGETS[("graph", 1)] == 3.0
