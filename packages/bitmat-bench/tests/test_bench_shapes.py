"""Shape, batch and preset parsing."""

import pytest
from bitmat_bench.shapes import default_batches, default_shapes, model_preset, parse_ints, parse_shapes


def test_bench_default_shapes_match_design():
    gpu = default_shapes(cpu=False)
    assert len(gpu) == 11
    assert (57344, 8192) in {(s.n, s.k) for s in gpu}
    assert default_batches(cpu=False) == [1, 4, 16, 64, 256, 1024, 4096, 8192]
    cpu = default_shapes(cpu=True)
    assert all(s.n * s.k <= 512 * 256 for s in cpu)
    assert default_batches(cpu=True) == [1, 16]


def test_bench_parse_shapes():
    assert [s.name for s in parse_shapes("4096x4096, 28672X4096")] == ["4096x4096", "28672x4096"]
    assert [s.model for s in parse_shapes("bitnet-2b")] == ["bitnet-2b"] * 3
    assert len(parse_shapes("llama-3-8b,4096x4096")) == 4  # deduplicated
    assert len(parse_shapes("all")) == 11
    assert len(parse_shapes(None, cpu=True)) == 2
    with pytest.raises(ValueError, match="--shapes"):
        parse_shapes("4096")


def test_bench_parse_ints():
    assert parse_ints("16,1,16", [1]) == [1, 16]
    assert parse_ints(None, [1, 2]) == [1, 2]
    with pytest.raises(ValueError, match="--batch"):
        parse_ints("a", [1])
    with pytest.raises(ValueError, match=">= 1"):
        parse_ints("0", [1])


def test_bench_model_presets():
    p = model_preset("Llama-3-8B")
    assert (p.hidden_size, p.intermediate_size, p.num_layers) == (4096, 14336, 32)
    assert model_preset("bitnet-2b").hidden_size == 2560
    with pytest.raises(ValueError, match="--model"):
        model_preset("gpt-9")
