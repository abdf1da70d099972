"""Launch-configuration rules (ops/linear/configs.py) as the H100 sweeps of NOTES.md set them, checked without a
GPU: the interpreter's small fixed configs are switched off and the device's SM count falls back to the H100's."""

import pytest
import torch
from bitmat_kernels.ops.linear import configs


@pytest.fixture
def gpu_rules(monkeypatch):
    monkeypatch.setattr(configs, "interpreter_enabled", lambda: False)
    return torch.device("cpu")  # gpu_key "cpu": no tuned table, the rules apply


@pytest.mark.parametrize(
    ("fmt", "n", "k", "block_n", "block_w"),
    [
        ("ternary", 4096, 4096, 4, 256),  # small layer: 4 rows x 256 words (v8)
        ("ternary", 6144, 4096, 8, 128),
        ("ternary", 28672, 4096, 16, 128),
        ("ternary", 4096, 14336, 4, 512),  # long rows: 512 words a step
        ("ternary", 8192, 28672, 16, 512),
        ("ternary", 2560, 6912, 4, 512),
        ("binary", 57344, 8192, 16, 128),  # 256 words a row: not a long row (the v8 run's regression)
        ("binary", 8192, 28672, 16, 512),
    ],
)
def test_a8_gemv_tiles(gpu_rules, fmt, n, k, block_n, block_w):
    cfg = configs.decode_config(1, n, k, fmt, True, gpu_rules)
    assert (cfg.block_n, cfg.block_w, cfg.fused_quant) == (block_n, block_w, False)


@pytest.mark.parametrize(("x_bytes", "block_w"), [(2, 256), (4, 128)])
@pytest.mark.parametrize("n", [4096, 14336, 28672])
def test_weight_only_gemv_tiles(gpu_rules, n, x_bytes, block_w):
    """One warp, 8 rows; a step is one 16-byte load of activations a thread (the kernel's shared layout)."""
    cfg = configs.decode_config(1, n, 4096, "ternary", False, gpu_rules, x_bytes=x_bytes)
    assert (cfg.block_n, cfg.block_w, cfg.num_warps, cfg.num_stages) == (8, block_w, 1, 3)
    assert cfg.block_w // (32 * cfg.num_warps) * x_bytes == 16


def test_gemv_for_several_tokens_keeps_the_accumulator_in_registers(gpu_rules):
    cfg = configs.decode_config(4, 8192, 28672, "ternary", True, gpu_rules)
    assert cfg.block_n * cfg.block_w * 4 <= 8192 and cfg.block_n == 16


def test_gemm_tiles(gpu_rules):
    big = configs.gemm_config(512, 28672, 4096, "ternary", True, gpu_rules)
    assert (big.block_m, big.block_n, big.block_kp, big.split_k) == (64, 256, 64, 1)
    long_k = configs.gemm_config(64, 4096, 14336, "ternary", True, gpu_rules)  # K >= 2.5 N, few tiles
    assert (long_k.block_m, long_k.block_n) == (32, 128) and long_k.split_k > 1
    one_token_rows = configs.gemm_config(16, 28672, 4096, "ternary", True, gpu_rules)
    assert one_token_rows.block_m == 16 and one_token_rows.num_stages >= 1


@pytest.mark.parametrize(
    ("m", "n", "k", "block_m", "block_n", "block_kp", "split_k"),
    [
        (16, 8192, 28672, 16, 64, 256, 2),  # K-heavy, one token row block: long K steps, up to two waves (v9)
        (16, 4096, 14336, 16, 64, 256, 4),
        (16, 28672, 4096, 16, 64, 128, 1),  # tall layer: enough tiles already
        (256, 8192, 8192, 128, 128, 64, 1),  # under one wave of 64 x 256 tiles (v9)
        (256, 6144, 4096, 128, 128, 64, 1),
        (256, 4096, 4096, 32, 128, 128, 1),  # under half a wave: the small tile
        (256, 28672, 4096, 64, 256, 64, 1),
        (128, 10240, 8192, 64, 256, 64, 1),  # the mid-size rule was measured at M = 256 only
        (1024, 2560, 6912, 64, 128, 64, 1),  # M = 257-1024, small layers (v12): 64 tokens if 128 make too few
        (1024, 4096, 14336, 128, 128, 64, 1),  # ... else 128 x 128 on 4 warps
        (1024, 3840, 2560, 128, 128, 64, 1),
        (512, 8192, 8192, 64, 256, 64, 1),  # large layers keep the 64 x 256 tile at 257-1024 tokens
        (1024, 8192, 8192, 64, 256, 64, 1),
        (4096, 8192, 8192, 128, 128, 64, 1),  # ... and take 128 x 128 on 4 warps beyond 1024 (v18)
        (2048, 4096, 4096, 128, 128, 64, 1),
    ],
)
def test_gemm_tiles_by_shape(gpu_rules, m, n, k, block_m, block_n, block_kp, split_k):
    cfg = configs.gemm_config(m, n, k, "ternary", True, gpu_rules)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.split_k) == (block_m, block_n, block_kp, split_k)


def test_mid_m_small_layer_rule_is_ternary_a8_only(gpu_rules):
    weight_only = configs.gemm_config(1024, 2560, 6912, "ternary", False, gpu_rules, x_bytes=2)
    assert (weight_only.block_m, weight_only.block_n, weight_only.num_warps) == (128, 128, 8)  # its own rule (v17)
    binary_large_k_heavy = configs.gemm_config(1024, 8192, 28672, "binary", True, gpu_rules)
    assert (binary_large_k_heavy.block_m, binary_large_k_heavy.block_n) == (64, 256)


@pytest.mark.parametrize(
    ("m", "n", "k", "block_m", "block_n"),
    [
        (256, 3840, 2560, 64, 64),  # binary A8 (v12): 64 rows a program where 128 under-fill the GPU
        (256, 4096, 14336, 64, 64),
        (256, 6144, 4096, 64, 128),
        (256, 13824, 2560, 64, 128),
        (1024, 2560, 6912, 64, 128),
        (1024, 4096, 4096, 64, 128),
        (4096, 4096, 4096, 64, 128),  # prefill sizes too (v13: 64 x 128 from M = 257 unless K-heavy)
        (64, 4096, 4096, 16, 64),  # M <= 128: the general rules (not measured for binary)
    ],
)
def test_binary_a8_mid_m_tiles(gpu_rules, m, n, k, block_m, block_n):
    cfg = configs.gemm_config(m, n, k, "binary", True, gpu_rules)
    assert (cfg.block_m, cfg.block_n, cfg.split_k) == (block_m, block_n, 1)


@pytest.mark.parametrize(
    ("m", "n", "k", "x_bytes", "tile"),
    [
        (4, 28672, 4096, 2, (16, 128, 128, 8)),  # weight-only, a few tokens, tall layer (v12)
        (8, 57344, 8192, 2, (16, 128, 128, 8)),
        (16, 57344, 8192, 2, (16, 64, 128, 2)),  # 16 tokens: mma.sync tiles on 2 warps (v15)
        (9, 28672, 4096, 2, (16, 128, 128, 8)),  # ... not at 9 (v15 bench)
        (16, 8192, 28672, 2, (16, 64, 128, 2)),
        (16, 8192, 8192, 2, (16, 128, 64, 4)),  # not measured there: the small-layer rule
        (4, 6144, 4096, 2, (16, 128, 64, 4)),  # under 8192 rows: split-K tiles (v14)
        (4, 8192, 8192, 2, (16, 128, 64, 4)),  # under 16384 rows: split-K tiles on 3 stages (v14)
        (4, 14336, 4096, 2, (16, 128, 64, 4)),
        (4, 8192, 28672, 2, (16, 64, 256, 4)),  # K-heavy: long K steps (v9), unsplit for weight-only on tall layers
        (4, 28672, 4096, 4, (16, 64, 128, 4)),  # fp32 activations: three bf16 dots, not measured
        (32, 57344, 8192, 2, (32, 64, 64, 4)),  # 17-32 tokens: 32 x 64 tiles
        (32, 4096, 4096, 2, (16, 64, 256, 4)),  # ... or long K steps on small layers
        (32, 4096, 14336, 2, (32, 64, 64, 4)),  # K-heavy: the general rule (narrowed, split along K)
    ],
)
def test_weight_only_few_token_tiles(gpu_rules, m, n, k, x_bytes, tile):
    cfg = configs.gemm_config(m, n, k, "ternary", False, gpu_rules, x_bytes=x_bytes)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.num_warps) == tile


@pytest.mark.parametrize(
    ("m", "n", "k", "tile", "split_k"),
    [
        (64, 28672, 4096, (64, 64, 64, 4), 1),  # weight-only, 33-64 tokens: 64 x 64 tiles (v12)
        (64, 4096, 14336, (64, 64, 64, 4), 4),  # under half the SMs: split along K (v14)
        (64, 6144, 4096, (64, 64, 64, 4), 1),
        (64, 8192, 28672, (64, 64, 64, 4), 1),
        (256, 57344, 8192, (128, 128, 32, 8), 1),  # >= 1.5 waves of 128 x 128 (32-byte K steps: v17)
        (256, 8192, 8192, (128, 128, 32, 8), 1),  # half to one wave
        (256, 10240, 8192, (64, 64, 64, 4), 1),  # one to one and a half waves: the small tile fills them
        (128, 4096, 4096, (64, 64, 64, 4), 1),  # under half the SMs
    ],
)
def test_weight_only_mid_m_tiles(gpu_rules, m, n, k, tile, split_k):
    cfg = configs.gemm_config(m, n, k, "ternary", False, gpu_rules, x_bytes=2)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.num_warps) == tile and cfg.split_k == split_k


def test_weight_only_tall_long_rows_are_not_split(gpu_rules):
    assert configs.weight_only_tall_long_rows(8192, 28672, "ternary", 2)
    assert not configs.weight_only_tall_long_rows(4096, 14336, "ternary", 2)
    assert not configs.weight_only_tall_long_rows(8192, 28672, "ternary", 4)  # fp32 activations: not measured
    cfg = configs.gemm_config(4, 8192, 28672, "ternary", False, gpu_rules, x_bytes=2)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.split_k) == (16, 64, 256, 1)
    a8 = configs.gemm_config(4, 8192, 28672, "ternary", True, gpu_rules)
    assert a8.split_k == 2  # A8 keeps its split-K (v9)


@pytest.mark.parametrize(
    ("m", "n", "k", "tile", "split_k"),
    [  # the best of the v13 binary weight-only sweep at each point (H100, NOTES.md v13)
        (4, 4096, 4096, (16, 128, 64, 4), 4),
        (16, 28672, 4096, (16, 256, 64, 8), 2),
        (4, 57344, 8192, (16, 256, 64, 8), 1),
        (16, 8192, 28672, (16, 128, 64, 4), 4),
        (4, 2560, 6912, (16, 128, 64, 4), 4),
        (64, 6144, 4096, (64, 64, 64, 4), 1),  # v14 (code pairs): 64 x 64 x 64, split within one wave
        (64, 4096, 4096, (32, 64, 64, 4), 1),  # v17 sweep 10b: 32 x 64 x 64 on <= 4096 rows
        (64, 28672, 4096, (64, 256, 32, 8), 1),  # v17 sweep 10b: 64 x 256 x 32 from 10240 rows, split within a wave
        (64, 57344, 8192, (64, 256, 32, 8), 1),
        (64, 10240, 8192, (64, 256, 32, 8), 2),
        (64, 8192, 8192, (64, 128, 128, 4), 4),
        (64, 8192, 28672, (64, 128, 128, 4), 4),
        (64, 4096, 14336, (32, 64, 64, 4), 1),  # K-heavy: 32-token tiles (v14 sweep 6)
        (64, 2560, 6912, (32, 64, 64, 4), 1),
        (256, 28672, 4096, (128, 128, 32, 8), 1),  # v14: 128 x 128 x 32
        (256, 8192, 28672, (128, 128, 32, 8), 1),
    ],
)
def test_binary_weight_only_tiles(gpu_rules, m, n, k, tile, split_k):
    cfg = configs.gemm_config(m, n, k, "binary", False, gpu_rules, x_bytes=2)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.num_warps) == tile and cfg.split_k == split_k


def test_binary_weight_only_rule_leaves_other_cases(gpu_rules):
    # fp32 activations, 17-32 and 65-128 tokens were not swept: the general rules
    fp32 = configs.gemm_config(4, 4096, 4096, "binary", False, gpu_rules, x_bytes=4)
    assert (fp32.block_m, fp32.block_kp) == (16, 128)
    assert configs.gemm_config(24, 4096, 4096, "binary", False, gpu_rules, x_bytes=2).block_m == 32
    assert configs.gemm_config(4, 8192, 28672, "ternary", False, gpu_rules, x_bytes=2).block_kp == 256


def test_binary_a8_large_m_tiles(gpu_rules):
    """v13 sweep: binary A8 from 257 tokens takes 64 x 128 on 4 warps, except on K-heavy layers; ternary keeps 64 x 256."""
    for m, n, k, tile in [
        (4096, 28672, 4096, (64, 128, 64, 4)),
        (1024, 57344, 8192, (64, 128, 64, 4)),
        (4096, 4096, 4096, (64, 128, 64, 4)),
        (4096, 8192, 28672, (64, 256, 64, 8)),  # K >= 2.5 N: the default
    ]:
        cfg = configs.gemm_config(m, n, k, "binary", True, gpu_rules)
        assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.num_warps) == tile, (m, n, k)
    ternary = configs.gemm_config(512, 28672, 4096, "ternary", True, gpu_rules)
    assert (ternary.block_m, ternary.block_n, ternary.num_warps) == (64, 256, 8)


@pytest.mark.parametrize(
    ("m", "n", "k", "tile"),
    [  # v18 (H100 bench): 128 x 128 x 64 on 4 warps beyond 1024 tokens, but on 2560-row layers and K-heavy
        # ones beyond 4096
        (2048, 28672, 4096, (128, 128, 64, 4)),
        (4096, 57344, 8192, (128, 128, 64, 4)),
        (2048, 8192, 28672, (128, 128, 64, 4)),
        (4096, 3840, 2560, (128, 128, 64, 4)),
        (4096, 2560, 6912, (64, 256, 64, 8)),
        (8192, 8192, 28672, (64, 256, 64, 8)),  # K-heavy beyond 4096 tokens: the large tile
        (8192, 28672, 4096, (128, 128, 64, 4)),
        (1024, 57344, 8192, (64, 256, 64, 8)),  # large layers at 257-1024 tokens: the large tile stays
        (1024, 2560, 6912, (64, 128, 64, 4)),  # small layers at <= 1024 tokens: v12's rule
    ],
)
def test_ternary_a8_large_m_tiles(gpu_rules, m, n, k, tile):
    cfg = configs.gemm_config(m, n, k, "ternary", True, gpu_rules)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.num_warps) == tile


@pytest.mark.parametrize(
    ("m", "n", "k", "split_k"),
    [  # v13 sweep (H100): 16 x 128 x 64 tiles with split-K on layers of <= 4096 rows
        (4, 3840, 2560, 4),
        (4, 4096, 4096, 8),
        (16, 2560, 6912, 8),
        (16, 4096, 14336, 8),
    ],
)
def test_weight_only_few_tokens_small_layers(gpu_rules, m, n, k, split_k):
    cfg = configs.gemm_config(m, n, k, "ternary", False, gpu_rules, x_bytes=2)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.split_k) == (16, 128, 64, split_k)


def test_weight_only_few_tokens_rule_leaves_tall_layers_and_long_rows(gpu_rules):
    cfg = configs.gemm_config(4, 8192, 28672, "ternary", False, gpu_rules, x_bytes=2)
    assert (cfg.block_n, cfg.block_kp, cfg.code_pairs, cfg.split_k) == (64, 256, False, 1)  # v12's tile, bytes
    cfg = configs.gemm_config(4, 8192, 8192, "ternary", False, gpu_rules, x_bytes=2)
    assert (cfg.block_n, cfg.block_kp, cfg.num_stages, cfg.split_k) == (128, 64, 3, 4)  # v14 sweep 5
    assert configs.gemm_config(4, 16384, 4096, "ternary", False, gpu_rules, x_bytes=2).block_kp == 128


def test_weight_only_dequantizes_from_65_257_or_1024_tokens_by_layer_size():
    assert configs.dequant_min_m(3840, 2560) == 65  # <= 12M weights (v5)
    assert configs.dequant_min_m(4096, 4096) == 257 and configs.dequant_min_m(13824, 2560) == 257  # < 64M (v17)
    assert configs.dequant_min_m(28672, 4096) == 1024 and configs.dequant_min_m(10240, 8192) == 1024


@pytest.mark.parametrize(
    ("m", "n", "k", "block_m", "block_n", "block_kp"),
    [
        (128, 57344, 8192, 128, 128, 32),  # v17 sweeps 1-2: 32-byte K steps for the 128 x 128 tile
        (256, 28672, 4096, 128, 128, 32),
        (256, 8192, 28672, 128, 128, 32),
        (256, 4096, 4096, 64, 64, 64),  # under half the SMs with 128 x 128: the small tile stays (v12)
        (256, 10240, 8192, 64, 64, 64),  # one to one and a half waves: the small tile stays
        (512, 28672, 4096, 128, 128, 32),  # from 257 tokens the 128 x 128 tile, not 64 x 256
        (512, 2560, 6912, 128, 128, 32),
        (1024, 57344, 8192, 128, 128, 32),
        (2048, 28672, 4096, 64, 256, 64),  # beyond the sweeps: the prefill tile
    ],
)
@pytest.mark.parametrize("fmt", ["ternary", "binary"])
def test_weight_only_mid_m_tiles_both_formats(gpu_rules, fmt, m, n, k, block_m, block_n, block_kp):
    if fmt == "binary" and 128 < m <= 256:
        pytest.skip("binary weight-only has its own rule at 129-256 tokens (v14)")
    cfg = configs.gemm_config(m, n, k, fmt, False, gpu_rules, x_bytes=2)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.split_k) == (block_m, block_n, block_kp, 1)


@pytest.mark.parametrize(("m", "n", "k"), [(512, 57344, 8192), (300, 28672, 4096), (1024, 8192, 28672)])
def test_ternary_weight_only_from_257_tokens_decodes_bytes_on_3_stages(gpu_rules, monkeypatch, m, n, k):
    """v18 sweep 1: the byte decode on 3 stages (two programs an SM) beat code pairs on 4 at 512-1024 tokens;
    binary codes and 256 tokens keep code pairs."""
    monkeypatch.setattr(configs, "_shared_memory_budget", lambda device: (227 - 16) * 1024)  # an H100's
    cfg = configs.gemm_config(m, n, k, "ternary", False, gpu_rules, x_bytes=2)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.num_warps, cfg.num_stages) == (128, 128, 32, 8, 3)
    assert not cfg.code_pairs and cfg.split_k == 1
    assert configs.gemm_config(m, n, k, "binary", False, gpu_rules, x_bytes=2).code_pairs
    assert configs.gemm_config(256, n, k, "ternary", False, gpu_rules, x_bytes=2).code_pairs


def test_ternary_weight_only_64_tokens_small_layers(gpu_rules):
    """v17 sweep 12: 32 x 64 x 64 on 4 stages, unsplit, on layers of <= 4096 rows that are not K-heavy."""
    cfg = configs.gemm_config(64, 3840, 2560, "ternary", False, gpu_rules, x_bytes=2)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.split_k) == (32, 64, 64, 1)
    cfg = configs.gemm_config(64, 2560, 6912, "ternary", False, gpu_rules, x_bytes=2)  # K-heavy: v14's split tile
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.split_k) == (64, 64, 64, 4)


@pytest.mark.parametrize("fmt", ["ternary", "binary"])
def test_weight_only_tall_long_rows_split_the_128_tile_at_65_128_tokens(gpu_rules, fmt):
    """v17 sweeps 2 and 5, 8192x28672 M=128: 64 programs of 128 x 128, split in two along K."""
    cfg = configs.gemm_config(128, 8192, 28672, fmt, False, gpu_rules, x_bytes=2)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.split_k) == (128, 128, 32, 2)
    cfg = configs.gemm_config(128, 2560, 6912, fmt, False, gpu_rules, x_bytes=2)  # too short: the small tile
    assert (cfg.block_m, cfg.block_n, cfg.split_k) == (64, 64, 1)


def test_weight_only_tall_layers_cap_registers_at_few_tokens(gpu_rules):
    """v14 sweep: two 8-warp programs an SM on the tall layers' code-pair tile (128 registers, not 180)."""
    for n, k in [(28672, 4096), (57344, 8192)]:
        cfg = configs.gemm_config(4, n, k, "ternary", False, gpu_rules, x_bytes=2)
        assert (cfg.block_n, cfg.block_kp, cfg.num_warps, cfg.code_pairs, cfg.max_registers) == (128, 128, 8, True, 128)
    for m, n, k, fmt, a8 in [(64, 28672, 4096, "ternary", False), (4, 28672, 4096, "ternary", True),
                             (4, 6144, 4096, "ternary", False), (4, 28672, 4096, "binary", False)]:  # fmt: skip
        assert configs.gemm_config(m, n, k, fmt, a8, gpu_rules, x_bytes=2).max_registers == 0, (m, n, fmt, a8)


@pytest.mark.parametrize(
    ("m", "n", "k", "fmt", "block_kp", "pairs"),
    [  # v14: code pairs where a step spans <= 512 columns a row
        (4, 28672, 4096, "ternary", 128, True),
        (4, 8192, 28672, "ternary", 256, False),
        (4, 8192, 8192, "ternary", 64, True),
        (64, 4096, 4096, "ternary", 64, True),
        (4, 4096, 4096, "binary", 64, True),
        (4, 28672, 4096, "binary", 64, False),  # the tall binary tile kept bytes (v14 bench)
        (64, 8192, 8192, "binary", 128, False),
        (256, 28672, 4096, "binary", 32, True),
    ],
)
def test_weight_only_code_pairs_where_steps_are_short(gpu_rules, m, n, k, fmt, block_kp, pairs):
    cfg = configs.gemm_config(m, n, k, fmt, False, gpu_rules, x_bytes=2)
    assert (cfg.block_kp, cfg.code_pairs) == (block_kp, pairs)


def test_weight_only_two_warp_tiles_at_16_tokens(gpu_rules):
    """v15 sweep (H100): 16 x 64 x 128 code-pair tiles on 2 warps (mma.sync), split in two on tall long-row layers."""
    for n, k, split_k in [(28672, 4096, 1), (57344, 8192, 1), (8192, 28672, 2)]:
        cfg = configs.gemm_config(16, n, k, "ternary", False, gpu_rules, x_bytes=2)
        got = (cfg.num_warps, cfg.num_stages, cfg.code_pairs, cfg.split_k, cfg.max_registers)
        assert got == (2, 3, True, split_k, 0), (n, k)
    for m, n, k, fmt, a8, x_bytes in [(16, 28672, 4096, "binary", False, 2), (16, 28672, 4096, "ternary", True, 1),
                                      (16, 28672, 4096, "ternary", False, 4), (9, 8192, 28672, "ternary", False, 2)]:  # fmt: skip
        assert configs.gemm_config(m, n, k, fmt, a8, gpu_rules, x_bytes=x_bytes).num_warps != 2, (m, n, fmt, a8)


@pytest.mark.parametrize(
    ("m", "n", "k", "fmt", "planes"),
    [
        (1, 28672, 4096, "ternary", True),  # one token: tall layers that are not K-heavy (NOTES.md v16)
        (1, 13824, 2560, "binary", True),
        (1, 8192, 8192, "ternary", False),  # the GEMV is faster below 12288 rows
        (1, 8192, 28672, "ternary", False),  # and on K-heavy layers
        (2, 2560, 6912, "ternary", True),  # 2-4 tokens: every layer
        (4, 8192, 28672, "binary", True),
        (8, 4096, 4096, "ternary", True),  # 5-8: not K-heavy
        (8, 4096, 14336, "ternary", False),
        (5, 8192, 28672, "ternary", True),  # but ternary K-heavy ones of >= 8192 rows
        (5, 8192, 28672, "binary", False),
        (8, 8192, 8192, "binary", True),
        (16, 3840, 2560, "binary", True),  # 9-16: binary on small layers only
        (16, 3840, 2560, "ternary", False),
        (9, 4096, 4096, "binary", False),
        (9, 28672, 4096, "ternary", False),
        (17, 3840, 2560, "binary", False),
        (0, 28672, 4096, "ternary", False),
    ],
)
def test_weight_only_planes_rule(m, n, k, fmt, planes):
    assert configs.weight_only_planes(m, n, k, fmt) == planes


@pytest.mark.parametrize(
    ("n", "k", "split_k"), [(57344, 8192, 1), (6144, 4096, 1), (8192, 8192, 2), (8192, 28672, 2), (13824, 2560, 1)]
)
def test_a8_ternary_32_row_tile(gpu_rules, n, k, split_k):
    """17-32 rows of ternary A8 (also 5-8 weight-only tokens as planes): 32 x 64 x 128 on 4 warps, split in two
    where two waves hold the tiles and each keeps 8 K steps (NOTES.md v16 sweeps 3b, 6)."""
    cfg = configs.gemm_config(32, n, k, "ternary", True, gpu_rules)
    assert (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.num_warps, cfg.split_k) == (32, 64, 128, 4, split_k)
    assert configs.gemm_config(16, n, k, "ternary", True, gpu_rules).block_m == 16  # 16 rows keep their tile
    binary = configs.gemm_config(32, n, k, "binary", True, gpu_rules)  # binary: on <= 8192 rows, unsplit
    assert (binary.block_n, binary.block_kp, binary.split_k) == ((64, 128, 1) if n <= 8192 else (binary.block_n, 64, 1))


@pytest.mark.parametrize(
    ("m", "n", "k", "small_tile"),
    [
        (16, 4096, 4096, True),
        (12, 6144, 4096, True),
        (16, 2560, 6912, False),  # BitNet-2B layers: no gain in the bench
        (16, 3840, 2560, False),
        (16, 4096, 14336, False),  # very K-heavy: its split tile
        (16, 8192, 8192, False),
        (4, 4096, 4096, False),  # 4 rows lost on 2560x6912
    ],
)
def test_a8_ternary_small_layer_few_rows_tile(gpu_rules, m, n, k, small_tile):
    """9-16 rows of ternary A8 on layers of 4096-8191 rows, K <= 3 N: 16 x 32 x 256 on 2 warps, unsplit (NOTES.md
    v16, sweep 10c and the small-layer bench)."""
    cfg = configs.gemm_config(m, n, k, "ternary", True, gpu_rules)
    tile = (cfg.block_m, cfg.block_n, cfg.block_kp, cfg.num_warps, cfg.split_k)
    assert (tile == (16, 32, 256, 2, 1)) == small_tile
