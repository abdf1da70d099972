"""`bitmat convert` / `bitmat info` with transformers' "bitnet" checkpoints: one conversion through a subprocess
(the real entry point), the rest in-process through `bitmat_hf.cli.main` (each subprocess costs seconds of imports)."""

import json

import pytest
import torch
from _bitnet_testing import hf_model, make_bitnet_checkpoint, run
from _hf_testing import folder_digest
from bitmat_hf import load_bitnet_checkpoint
from bitmat_hf.cli import main
from test_hf_cli import bitmat


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--no-progress", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def _eager_transformers():
    # transformers' bitnet layers are @torch.compile'd; eager gives the same numbers without CPU compilation.
    with torch.compiler.set_stance("force_eager"):
        yield


@pytest.fixture(scope="module")
def bitnet_folder(tmp_path_factory):
    folder = make_bitnet_checkpoint(tmp_path_factory.mktemp("cli-bitnet") / "bitnet", "bitlinear", tie=True)
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


def test_info_describes_bitnet(bitnet_folder, capsys):
    code, out, _ = cli(capsys, "info", bitnet_folder, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["bitnet"] is True and info["bitmat"] is False
    assert info["linear_class"] == "bitlinear" and info["weight_scale"].startswith("1/mean")
    assert info["bitlinear_layers"] == 14 and info["weight_bits"] == 1.58
    assert info["layers"][0]["packed_shape"][0] * 4 == info["layers"][0]["out_features"]
    code, text, _ = cli(capsys, "info", bitnet_folder, "--layers")
    assert "HF bitnet" in text and "linear class:         bitlinear" in text
    assert "model.layers.1.mlp.down_proj" in text


def test_convert_bitnet_to_bitmat_and_back(bitnet_folder, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "bitmat"
    res = bitmat("convert", bitnet_folder, out)
    assert "converted bitnet checkpoint" in res.stdout and "14 BitLinear layers" in res.stdout
    assert (out / "tokenizer_config.json").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "bitnet" and cfg["quantization_config"]["quant_method"] == "bitmat"
    expected = run(load_bitnet_checkpoint(bitnet_folder, show_progress=False))
    assert torch.equal(run(AutoModelForCausalLM.from_pretrained(out)), expected)

    back = tmp_path / "bitnet-again"
    code, text, _ = cli(capsys, "convert", out, back, "--to", "bitnet", "--linear-class", "autobitlinear")
    assert code == 0 and "bitnet format" in text
    theirs = run(hf_model(back))
    torch.testing.assert_close(theirs, expected, rtol=1e-5, atol=2e-6 * max(1.0, expected.abs().max().item()))


def test_convert_bad_bitnet_input(bitnet_folder, tmp_path, capsys):
    code, _, err = cli(capsys, "convert", bitnet_folder, tmp_path / "a", "--per-channel")
    assert code == 1 and "--per-channel cannot apply" in err
    bad = make_bitnet_checkpoint(tmp_path / "bad", "autobitlinear")
    cfg = json.loads((bad / "config.json").read_text())
    cfg["quantization_config"]["linear_class"] = "fastlinear"
    (bad / "config.json").write_text(json.dumps(cfg))
    before = folder_digest(bad)
    code, _, err = cli(capsys, "convert", bad, tmp_path / "b")
    assert code == 1 and err.startswith("bitmat: error:") and "linear_class" in err
    assert folder_digest(bad) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # nothing written, no temporary folder left


def test_generate_runs_a_bitnet_checkpoint_on_bitmat_layers(tmp_path, capsys, monkeypatch):
    """`bitmat generate` on transformers' bitnet format loads it through BitMat (not stock transformers)."""
    import _bitnet_testing
    import bitmat_hf.bitnet
    from bitmat_hf.data import build_tokenizer

    monkeypatch.setattr(_bitnet_testing, "VOCAB", 384)  # the offline tokenizer's vocabulary
    folder = make_bitnet_checkpoint(tmp_path / "bitnet")
    build_tokenizer().save_pretrained(folder)
    loads = []
    real = bitmat_hf.bitnet.load_bitnet_checkpoint

    def spy(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(bitmat_hf.bitnet, "load_bitnet_checkpoint", spy)
    code, out, _ = cli(capsys, "generate", folder, "--prompt", "The", "--max-new-tokens", "4", "--device", "cpu")
    assert code == 0 and out.strip()
    assert loads, "the bitnet checkpoint was not loaded through BitMat"
