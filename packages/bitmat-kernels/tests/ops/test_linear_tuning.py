"""tune_linear and the tuned-config tables (ops/linear/tuning.py, configs.py) under the Triton interpreter: the
candidates really run; a fake timer decides which wins, so the choice is known."""

import json

import bitmat_kernels as bk
import pytest
import torch
from bitmat_kernels.ops.linear import configs, kernel, tuning
from bitmat_kernels.ops.linear.configs import DecodeConfig, GemmConfig

pytestmark = pytest.mark.usefixtures("triton_backend")

N, K = 64, 96
SMALL = {
    "gemm": [(16, 32, 32, 4, 1), (16, 64, 32, 4, 1)],
    "decode": [(8, 8), (4, 8), (4, 64)],
}  # 64 words: wider than a row, left out


@pytest.fixture(autouse=True)
def clean_tables(monkeypatch):
    monkeypatch.setattr(configs, "_env_file_loaded", True)  # no BITMAT_KERNELS_TUNED_CONFIGS from the environment
    configs.clear_tuned_configs()
    yield
    configs.clear_tuned_configs()


def _layer(fmt="ternary"):
    torch.manual_seed(0)
    w = torch.randn(N, K)
    if fmt == "ternary":
        codes, scale = bk.ternarize(w)
        return bk.pack_ternary(codes), scale
    codes, scale = bk.binarize(w)
    return bk.pack_binary(codes), scale


def _fake_timer(monkeypatch, favoured, dequant_us=5.0):
    """A timer under which a call costs 1 us if favoured(the config it launched), else 2 us; dequantize + cuBLAS
    (which launches no matmul kernel) costs dequant_us."""
    launched = []
    for name in ("gemm_config", "decode_config"):
        real = getattr(kernel, name)
        monkeypatch.setattr(kernel, name, lambda *a, real=real, **kw: launched.append(real(*a, **kw)) or launched[-1])

    def time_us(fn, device, budget_ms):
        launched.clear()
        fn()
        if not launched:
            return dequant_us
        return 1.0 if favoured(launched[-1]) else 2.0

    monkeypatch.setattr(tuning, "_time_us", time_us)


def test_a8_tuning_installs_the_fastest_and_keeps_the_result(monkeypatch):
    packed, scale = _layer()
    x = torch.randn(20, K, dtype=torch.bfloat16)
    before = bk.bitmat_linear(x, packed, scale, in_features=K)
    _fake_timer(monkeypatch, lambda c: c.block_n in (64, 4))
    records = bk.tune_linear(packed, scale, in_features=K, batch_sizes=[1, 4, 20], tiles=SMALL)
    assert [(r["m"], r["path"]) for r in records] == [(1, "decode"), (4, "gemm"), (20, "gemm")]
    assert records[0]["config"] == DecodeConfig(block_n=4, block_w=8, num_warps=4, num_stages=2, fused_quant=False)
    assert records[0]["candidates"] == 3
    for r in records[1:]:
        assert isinstance(r["config"], GemmConfig) and r["config"].block_n == 64 and r["us"] == 1.0
        assert r["rule_us"] == 2.0 and r["candidates"] == 2  # the rule's config is the first tile here
    device = torch.device("cpu")
    assert configs.gemm_config(3, N, K, "ternary", True, device).block_n == 64  # M = 3 is in the bucket of 4
    assert configs.gemm_config(4, N, K, "ternary", True, device, x_bytes=2).block_n == 64  # A8 ignores x's dtype
    assert configs.gemm_config(4, N + 1, K, "ternary", True, device).block_n == 32  # another shape: the rules
    assert torch.equal(bk.bitmat_linear(x, packed, scale, in_features=K), before)  # int32 sums: same bits


@pytest.mark.parametrize("fmt", ["ternary", "binary"])
def test_weight_only_tuning_covers_the_planes_and_the_float_gemm(monkeypatch, fmt):
    packed, scale = _layer(fmt)
    bits = 1.58 if fmt == "ternary" else 1
    x = torch.randn(20, K, dtype=torch.bfloat16)
    before = bk.bitmat_linear(x, packed, scale, in_features=K, weight_bits=bits, activation_bits=None)
    _fake_timer(monkeypatch, lambda c: c.block_n == 64)
    records = bk.tune_linear(
        packed, scale, in_features=K, weight_bits=bits, activation_bits=None, batch_sizes=[1, 4, 20], tiles=SMALL
    )
    assert [(r["m"], r["path"]) for r in records] == [(1, "decode"), (4, "planes"), (20, "gemm")]
    assert records[0]["config"] is None  # the one-token weight-only GEMV has one config
    device = torch.device("cpu")
    # the planes of 4 tokens are 16 int8 rows of the A8 GEMM; the float GEMM is keyed by x's width
    assert configs.TUNED_GEMM[configs.tuned_key(device, fmt, True, 16, N, K, 1)].block_n == 64
    assert configs.TUNED_GEMM[configs.tuned_key(device, fmt, False, 20, N, K, 2)].block_n == 64
    after = bk.bitmat_linear(x, packed, scale, in_features=K, weight_bits=bits, activation_bits=None)
    torch.testing.assert_close(after, before, rtol=2e-2, atol=2e-2)


def test_a_failing_or_different_candidate_is_skipped(monkeypatch, caplog):
    packed, scale = _layer()
    real = tuning.linear_triton

    def flaky(x, *args, **kwargs):
        cfg = configs.TUNED_GEMM.get(configs.tuned_key(x.device, "ternary", True, x.shape[0], N, K, 1))
        if cfg is not None and cfg.block_n == 64:
            raise RuntimeError("does not build")
        y = real(x, *args, **kwargs)
        return y + 1 if cfg is not None and cfg.block_n == 128 else y

    monkeypatch.setattr(tuning, "linear_triton", flaky)
    _fake_timer(monkeypatch, lambda c: c.block_n in (64, 128))
    tiles = {"gemm": [(16, 64, 32, 4, 1), (16, 128, 32, 4, 1)]}
    (rec,) = bk.tune_linear(packed, scale, in_features=K, batch_sizes=[4], tiles=tiles)
    assert rec["config"].block_n == 32 and rec["candidates"] == 1  # only the rule's config ran and matched
    assert "gave a different result" in caplog.text


def test_a_candidate_that_cannot_be_timed_is_skipped(monkeypatch, caplog):
    packed, scale = _layer()
    _fake_timer(monkeypatch, lambda c: c.block_n == 64)
    fake = tuning._time_us

    def capture_fails_for_64(fn, device, budget_ms):
        us = fake(fn, device, budget_ms)
        if us == 1.0:  # the favoured config: as if graph capture refused it
            raise RuntimeError("operation not permitted when stream is capturing")
        return us

    monkeypatch.setattr(tuning, "_time_us", capture_fails_for_64)
    tiles = {"gemm": [(16, 64, 32, 4, 1), (16, 128, 32, 4, 1)]}
    (rec,) = bk.tune_linear(packed, scale, in_features=K, batch_sizes=[4], tiles=tiles)
    assert rec["config"].block_n != 64 and rec["candidates"] == 2
    assert "could not be timed" in caplog.text


def test_save_load_round_trip_and_env_variable(tmp_path, monkeypatch):
    device = torch.device("cpu")
    gemm = GemmConfig(16, 64, 32, num_warps=4, num_stages=2, split_k=2)
    decode = DecodeConfig(block_n=4, block_w=16)
    configs.TUNED_GEMM[configs.tuned_key(device, "ternary", False, 20, N, K, 2)] = gemm
    configs.TUNED_DECODE[configs.tuned_key(device, "binary", True, 1, N, K, 1)] = decode
    configs.TUNED_DEQUANT[configs.tuned_key(device, "ternary", False, 512, N, K, 2)] = True
    configs.TUNED_GEMM[("cpu", "ternary", True, 4)] = gemm  # a sweep's override for every shape: not saved
    path = tmp_path / "tuned.json"
    assert bk.save_tuned_configs(path) == 3
    configs.clear_tuned_configs()
    assert configs.gemm_config(20, N, K, "ternary", False, device, x_bytes=2) != gemm
    monkeypatch.setenv(configs.TUNED_CONFIGS_ENV, str(path))
    monkeypatch.setattr(configs, "_env_file_loaded", False)
    assert configs.gemm_config(20, N, K, "ternary", False, device, x_bytes=2) == gemm  # loaded on first use
    assert configs.gemm_config(20, N, K, "ternary", False, device, x_bytes=4) != gemm  # fp32 x: another key
    assert configs.decode_config(1, N, K, "binary", True, device) == decode
    assert configs.use_dequant(device, "ternary", 300, N, K, 2)  # tuned: dequantize from the bucket of 512
    configs.clear_tuned_configs()
    assert not configs.use_dequant(device, "ternary", 300, N, K, 2)  # the interpreter never dequantizes by rule
    assert bk.load_tuned_configs(path) == 3 and configs.TUNED_DECODE and configs.TUNED_DEQUANT


def test_a_shape_entry_wins_over_a_sweep_override():
    device = torch.device("cpu")
    every = GemmConfig(16, 32, 32, num_warps=4, num_stages=1)
    mine = GemmConfig(16, 64, 32, num_warps=4, num_stages=1)
    configs.TUNED_GEMM[("cpu", "ternary", True, 4)] = every
    configs.TUNED_GEMM[configs.tuned_key(device, "ternary", True, 4, N, K, 1)] = mine
    assert configs.gemm_config(4, N, K, "ternary", True, device) == mine
    assert configs.gemm_config(4, N, 2 * K, "ternary", True, device) == every


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "is not JSON"),
        ('{"format": "other"}', "not a file written by save_tuned_configs"),
        ('{"format": "bitmat-kernels tuned configs", "version": 99}', "has version 99"),
        ('{"format": "bitmat-kernels tuned configs", "version": 1, "entries": [{"kind": "gemm"}]}', "entry 0"),
        (
            '{"format": "bitmat-kernels tuned configs", "version": 1, "entries": [{"kind": "dequant", "gpu": "H100", '
            '"fmt": "ternary", "a8": false, "m_bucket": 512, "n": 8, "k": 8, "x_bytes": 2, "config": "yes"}]}',
            "true or false",
        ),
    ],
)
def test_load_rejects_other_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        bk.load_tuned_configs(path)
    assert not configs.TUNED_GEMM


def test_load_rejects_unknown_config_fields(tmp_path):
    entry = dict(gpu="H100", fmt="ternary", a8=True, m_bucket=4, n=N, k=K, x_bytes=1, kind="gemm",
                 config=dict(block_m=16, block_n=32, block_kp=32, tile="big"))  # fmt: skip
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(dict(format="bitmat-kernels tuned configs", version=1, entries=[entry])))
    with pytest.raises(ValueError, match="entry 0 is malformed"):
        bk.load_tuned_configs(path)


def test_bad_arguments(monkeypatch):
    packed, scale = _layer()
    with pytest.raises(ValueError, match="activation_bits"):
        bk.tune_linear(packed, scale, in_features=K, activation_bits=4)
    with pytest.raises(ValueError, match="batch_sizes"):
        bk.tune_linear(packed, scale, in_features=K, batch_sizes=[0])
    with pytest.raises(ValueError, match="budget_ms"):
        bk.tune_linear(packed, scale, in_features=K, budget_ms=0)
    with pytest.raises(ValueError, match="dtype"):
        bk.tune_linear(packed, scale, in_features=K, dtype=torch.int8)
    with pytest.raises(ValueError, match="in_features"):
        bk.tune_linear(packed, scale, in_features=K + 8)
    monkeypatch.setattr(tuning, "interpreter_enabled", lambda: False)
    with pytest.raises(ValueError, match="CUDA device"):
        bk.tune_linear(packed, scale, in_features=K)


def test_retuning_starts_from_the_rules_not_the_earlier_choice(monkeypatch):
    packed, scale = _layer()
    key = configs.tuned_key(torch.device("cpu"), "ternary", True, 4, N, K, 1)
    configs.TUNED_GEMM[key] = GemmConfig(16, 64, 32, num_warps=4, num_stages=1)  # an earlier tuning's choice
    _fake_timer(monkeypatch, lambda c: c.block_n == 32)
    (rec,) = bk.tune_linear(packed, scale, in_features=K, batch_sizes=[4], tiles={"gemm": [(16, 64, 32, 4, 1)]})
    assert rec["config"].block_n == 32 and rec["rule_us"] == 1.0 and rec["candidates"] == 2
    assert configs.TUNED_GEMM[key].block_n == 32


def test_candidates_are_pruned_and_fitted(monkeypatch):
    monkeypatch.setattr(configs, "interpreter_enabled", lambda: False)  # the GPU rules and tiles
    device = torch.device("cpu")  # 132 SMs and a 99 KB shared-memory fallback
    small = tuning.gemm_candidates(16, 28672, 4096, "ternary", True, device, 1)
    assert small[0] == configs.gemm_config(16, 28672, 4096, "ternary", True, device)  # the rules' config leads
    assert all(c.block_m == 16 for c in small) and len(small) == len(set(small))
    assert all(c.split_k == 1 for c in small[1:] if c.block_n <= 64)  # 448+ programs: no split
    wide = tuning.gemm_candidates(256, 4096, 4096, "ternary", False, device, 2)
    assert {c.code_pairs for c in wide} == {True, False}  # weight-only > 64 rows: both decodes
    assert {c.code_pairs for c in tuning.gemm_candidates(256, 4096, 4096, "ternary", True, device, 1)} == {True}
    split = tuning.gemm_candidates(16, 2560, 6912, "ternary", True, device, 1)
    assert any(c.split_k > 1 for c in split)  # 40 programs of 16 x 64: split along K
    decode = tuning.decode_candidates(4096, 4096, "ternary", device)
    assert decode[0] == configs.decode_config(1, 4096, 4096, "ternary", True, device) and len(decode) > 3


@pytest.mark.parametrize("dequant_us", [0.5, 3.0])
def test_weight_only_weighs_dequantize_and_cublas_from_33_tokens(monkeypatch, dequant_us):
    packed, scale = _layer()
    x = torch.randn(40, K, dtype=torch.bfloat16)
    kwargs = dict(in_features=K, activation_bits=None)
    before = bk.bitmat_linear(x, packed, scale, **kwargs)
    _fake_timer(monkeypatch, lambda c: c.block_n == 64, dequant_us)
    records = bk.tune_linear(packed, scale, batch_sizes=[20, 40], tiles=SMALL, **kwargs)
    assert records[0]["dequant_us"] is None and records[0]["path"] == "gemm"  # <= 32 tokens: not weighed
    rec = records[1]
    assert rec["dequant_us"] == dequant_us and rec["us"] == 1.0
    wins = dequant_us < 1.0
    assert rec["path"] == ("dequant" if wins else "gemm")
    assert kernel.auto_path(33, N, K, "ternary", False, packed, 2) == rec["path"]  # the bucket of 64
    assert kernel.auto_path(40, N, K, "ternary", False, packed, 4) == "gemm"  # fp32 x: another key, the rules
    after = bk.bitmat_linear(x, packed, scale, **kwargs)
    torch.testing.assert_close(after, before, rtol=2e-2, atol=2e-2)


def test_a_bad_env_file_fails_every_call_with_the_variable_named(tmp_path, monkeypatch):
    monkeypatch.setenv(configs.TUNED_CONFIGS_ENV, str(tmp_path / "missing.json"))
    monkeypatch.setattr(configs, "_env_file_loaded", False)
    for _ in range(2):
        with pytest.raises(ValueError, match="BITMAT_KERNELS_TUNED_CONFIGS=.*missing.json"):
            configs.gemm_config(4, N, K, "ternary", True, torch.device("cpu"))


def test_configs_are_described_in_a_few_words():
    assert tuning.describe_config(GemmConfig(128, 128, 32, num_warps=8, num_stages=3)) == "128x128x32 w8 s3 split 1"
    gemv = DecodeConfig(block_n=16, block_w=128, num_warps=4, num_stages=1, fused_quant=False)
    assert tuning.describe_config(gemv) == "GEMV 16 rows x 128 words w4 s1"
