"""The command line: --help everywhere, bad arguments answered clearly, `python -m bitmat_bench`."""

import os
import subprocess
import sys

import pytest
from bitmat_bench.cli import build_parser, main


@pytest.mark.parametrize("verb", [None, "kernels", "layers", "model", "roofline", "report"])
def test_bench_help(verb, capsys):
    argv = ["--help"] if verb is None else [verb, "--help"]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: bitmat-bench" in out
    if verb is not None:
        assert "--out" in out
    if verb not in (None, "report"):
        assert "--replays" in out


def test_bench_no_verb_prints_help(capsys):
    assert main([]) == 2
    assert "kernels" in capsys.readouterr().out


def test_bench_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "bitmat-bench" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["kernels", "--shapes", "12xfoo"], "--shapes"),
        (["kernels", "--batch", "0"], "--batch"),
        (["kernels", "--impls", "nope"], "--impls"),
    ],
)
def test_bench_bad_arguments(argv, needle, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path)])
    assert e.value.code == 2
    assert needle in capsys.readouterr().err


def test_bench_kernels_list(capsys):
    assert main(["kernels", "--list", "--cpu"]) == 0
    out = capsys.readouterr().out
    for name in ("cublas-bf16", "bitmat-w158a8", "gemlite-a8w158", "bitmat-tl", "hf-bitlinear"):
        assert name in out


def test_bench_parser_has_every_verb():
    sub = next(a for a in build_parser()._actions if a.dest == "verb")
    assert set(sub.choices) == {"kernels", "layers", "model", "roofline", "report"}


def test_bench_python_dash_m_help():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "bitmat_bench", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "bitmat-bench" in r.stdout
