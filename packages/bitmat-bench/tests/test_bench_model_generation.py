"""`bitmat-bench model` on the CPU: the bitmat-hf path, every mode, the bitnet architecture, budgets, headline,
--isolate (one process per variant)."""

import json
import sys

import pytest
from bitmat_bench import model as bench_model
from bitmat_bench.cli import main
from bitmat_bench.model import TARGETS, child_argv, headline, parse_modes, parse_variants

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
    assert _doc(tmp_path)["environment"]["settings"]["isolate"] is False  # auto: off on the CPU
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


def test_bench_model_child_argv():
    argv = ["model", "--cpu", "--out", "/r", "--model=llama3-8b,bitnet-2b", "--impls", "bf16,bitmat", "--isolate"]
    argv += ["--max-seconds=300", "--baseline-last", "--batch", "1,16", "--no-isolate", "--tokens-file", "t.pt"]
    got = child_argv(argv, "llama3-8b", "bitmat", "/r/isolated/llama3-8b-bitmat", 123.45)
    assert got == [
        "model",
        "--cpu",
        "--batch",
        "1,16",
        "--model",
        "llama3-8b",
        "--impls",
        "bitmat",
        "--out",
        "/r/isolated/llama3-8b-bitmat",
        "--tokens-file",
        "/r/isolated/llama3-8b-bitmat/tokens.pt",
        "--no-isolate",
        "--no-progress",
        "--max-seconds",
        "123.5",
    ]
    # no budget: no --max-seconds; the verb is put first when the argv lacks it
    got = child_argv(["--max-seconds", "9", "--out=/r", "-q"], "tiny", "bf16", "/o", None)
    assert got[:2] == ["model", "-q"] and "--max-seconds" not in got and "/r" not in got


def test_bench_model_isolate_end_to_end(tmp_path):
    argv = ["model", *_FAST, "--out", str(tmp_path), "--prefill-len", "8", "--modes", "prefill,graph"]
    assert main([*argv, "--impls", "bf16,bitmat", "--isolate", "--max-seconds", "600"]) == 0
    doc = _doc(tmp_path)
    assert doc["environment"]["settings"]["isolate"] is True
    assert sorted(d.name for d in (tmp_path / "isolated").iterdir()) == ["tiny-bf16", "tiny-bitmat"]
    assert [(r["variant"], r["returncode"]) for r in doc["isolated_runs"]] == [("bf16", 0), ("bitmat", 0)]
    assert all("--no-isolate" in r["command"] for r in doc["isolated_runs"])
    recs = {(r["impl"], r["mode"]): r for r in doc["records"]}
    assert set(recs) == {(i, m) for i in ("bf16", "bitmat") for m in ("prefill", "graph")}
    assert all(r["status"] == "ok" and r["isolated"] is True for r in recs.values()), doc["records"]
    bit = recs[("bitmat", "graph")]
    assert bit["decode_speedup_vs_bf16"] > 0 and 0 <= bit["token_agreement_vs_bf16"] <= 1
    assert recs[("bitmat", "prefill")]["prefill_speedup_vs_bf16"] > 0
    assert not list(tmp_path.rglob("tokens.pt"))  # the token files are not results
    assert "each variant measured in a process of its own" in (tmp_path / "headline.md").read_text()


def test_bench_model_isolate_failed_child_and_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_model, "_child_command", lambda args: [sys.executable, "-c", "import sys; sys.exit(3)"])
    argv = ["model", *_FAST, "--modes", "graph", "--batch", "1,2", "--impls", "bf16,bitmat", "--isolate"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    doc = _doc(tmp_path / "a")
    assert [r["returncode"] for r in doc["isolated_runs"]] == [3, 3]  # the second child ran after the first failed
    assert [(r["impl"], r["batch"], r["status"]) for r in doc["records"]] == [
        ("bf16", 1, "failed"),
        ("bf16", 2, "failed"),
        ("bitmat", 1, "failed"),
        ("bitmat", 2, "failed"),
    ]
    assert all("return code 3" in r["error"] for r in doc["records"])
    # a spent budget starts no child
    assert main([*argv, "--out", str(tmp_path / "b"), "--max-seconds", "0"]) == 0
    doc = _doc(tmp_path / "b")
    assert doc["isolated_runs"] == [] and {r["status"] for r in doc["records"]} == {"not-run"}
