"""The `bitmat` command line, through subprocess."""

import json
import os
import subprocess
import sys

import pytest
import torch
from _hf_testing import folder_digest, logits, make_model
from bitmat_hf import Llama158ForCausalLM
from bitmat_hf.data import build_tokenizer


def bitmat(*args, check=True):
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-m", "bitmat_hf.cli", "--no-progress", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"bitmat {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def float_llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "llama-float"
    make_model("llama", vocab_size=384).save_pretrained(path)
    build_tokenizer().save_pretrained(path)
    return path


def test_help():
    out = bitmat("--help").stdout
    for verb in ("demo", "convert", "generate", "info"):
        assert verb in out
    assert "--per-channel" in bitmat("convert", "--help").stdout


def test_convert_info_generate(float_llama, tmp_path):
    out = tmp_path / "packed"
    res = bitmat("convert", float_llama, out)
    assert "Llama158ForCausalLM" in res.stdout and "14 BitLinear layers" in res.stdout
    assert (out / "tokenizer.json").exists()
    # Same model as converting in Python and evaluating.
    loaded = Llama158ForCausalLM.from_pretrained(out)
    from bitmat_hf import convert_hf_model

    expected = convert_hf_model(make_model("llama", vocab_size=384), show_progress=False)
    assert torch.equal(logits(loaded), logits(expected))

    info = json.loads(bitmat("info", out, "--json").stdout)
    assert info["format_version"] == 1 and info["weight_bits"] == 1.58 and info["bitlinear_layers"] == 14
    assert info["layers"][0]["in_features"] in (32, 64)
    text = bitmat("info", out, "--layers").stdout
    assert "format version:       1" in text and "model.layers.0.mlp.down_proj" in text

    gen = bitmat("generate", out, "--prompt", "The river", "--max-new-tokens", "6")
    assert gen.stdout.startswith("The river")


def test_convert_flags(float_llama, tmp_path):
    out = tmp_path / "binary"
    bitmat(
        "convert", float_llama, out, "--weight-bits", "1", "--activation-bits", "none", "--per-channel", "--skip", "mlp"
    )
    info = json.loads(bitmat("info", out, "--json").stdout)
    assert info["weight_bits"] == 1 and info["activation_bits"] is None and info["per_channel"]
    assert info["bitlinear_layers"] == 8  # attention only
    assert "mlp" in info["modules_to_not_convert"]


def test_errors_are_one_line(float_llama, tmp_path):
    cases = [
        (("info", tmp_path / "nowhere"), "missing file"),
        (("convert", tmp_path / "nowhere", tmp_path / "x"), "does not exist"),
        (("convert", float_llama, float_llama), "not empty"),
        (("convert", float_llama, tmp_path / "y", "--weight-bits", "3"), "1.58"),
        (("generate", float_llama, "--prompt", "a", "--max-new-tokens", "0"), "at least 1"),
    ]
    before = folder_digest(float_llama)
    for args, match in cases:
        res = bitmat(*args, check=False)
        assert res.returncode != 0, args
        assert match in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr
    assert folder_digest(float_llama) == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_truncated_checkpoint_error(float_llama, tmp_path):
    out = tmp_path / "packed"
    bitmat("convert", float_llama, out)
    f = out / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-64])
    res = bitmat("info", out, check=False)
    assert res.returncode == 1 and "truncated" in res.stderr and res.stderr.count("\n") == 1


def test_demo_small(tmp_path):
    res = bitmat(
        "demo", "--out", tmp_path, "--pretrain-steps", 8, "--qat-steps", 4, "--max-chars", 20000, "--hidden-size", 32,
        "--new-tokens", 5,
    )  # fmt: skip
    for row in ("perplexity, float", "right after conversion", "after QAT", "packed checkpoint", "tokens/s"):
        assert row in res.stdout
    assert (tmp_path / "bitmat-1.58" / "model.safetensors").exists()
    assert json.loads((tmp_path / "bitmat-1.58" / "config.json").read_text())["model_type"] == "mistral158"


def test_tune_help_and_errors(float_llama, tmp_path):
    assert "tune" in bitmat("--help").stdout
    assert "--batch-sizes" in bitmat("tune", "--help").stdout
    res = bitmat("tune", float_llama, "--out", tmp_path / "t.json", "--batch-sizes", "0,4", check=False)
    assert res.returncode == 2 and "positive integers" in res.stderr
    (tmp_path / "old.json").write_text("{}")
    res = bitmat("tune", float_llama, "--out", tmp_path / "old.json", check=False)
    assert res.returncode == 1 and "pass --force" in res.stderr
    if not torch.cuda.is_available():
        res = bitmat("tune", float_llama, "--out", tmp_path / "t.json", check=False)
        assert res.returncode == 1 and "needs a CUDA device" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "old.json").read_text() == "{}" and not (tmp_path / "t.json").exists()


def test_tune_runs_tune_kernels_on_the_fused_model_and_saves(tmp_path, monkeypatch, capsys):
    """In process, with the GPU parts replaced: the model is loaded, fused, tuned once per layer shape, saved."""
    import bitmat_nn
    from bitmat_hf import cli, convert_hf_model
    from bitmat_kernels.ops.linear import configs
    from bitmat_kernels.ops.linear.configs import GemmConfig
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "packed"
    convert_hf_model(make_model("llama", vocab_size=384), show_progress=False).save_pretrained(folder)
    seen = {}

    def fake_tune(model, batch_sizes, dtype, budget_ms, progress):
        shapes = {(m.out_features, m.in_features) for m in model.modules() if isinstance(m, bitmat_nn.FusedBitLinear)}
        seen.update(shapes=shapes, batch_sizes=batch_sizes, dtype=dtype, shape_count=len(list(progress([1, 2], 2))))
        configs.TUNED_GEMM[("Fake GPU", "ternary", True, 16, 96, 32, 1)] = GemmConfig(16, 64, 128)
        record = dict(m=16, path="gemm", config=GemmConfig(16, 64, 128), us=3.5, rule_us=4.0, candidates=5)
        return {(96, 32, 1.58, 8): [record]}

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(cli, "_load_causal_lm", lambda f, d, b, v: AutoModelForCausalLM.from_pretrained(str(f)).eval())
    monkeypatch.setattr(bitmat_nn, "tune_kernels", fake_tune)
    out = tmp_path / "tuned.json"
    try:
        assert cli.main(["--no-progress", "tune", str(folder), "--out", str(out), "--batch-sizes", "1,16"]) == 0
    finally:
        configs.clear_tuned_configs()
    assert seen["batch_sizes"] == [1, 16] and seen["dtype"] == torch.bfloat16 and seen["shape_count"] == 2
    assert seen["shapes"]  # q/k/v and gate/up fused before tuning
    text = capsys.readouterr().out
    assert "96x32 W1.58A8" in text and "3.5" in text and "1 configs for 1 layer shapes on Fake GPU" in text
    assert "16x64x128 w4 s3 split 1" in text  # the config as tune_linear describes it
    saved = json.loads(out.read_text())
    assert saved["entries"][0]["gpu"] == "Fake GPU" and saved["entries"][0]["config"]["block_kp"] == 128
