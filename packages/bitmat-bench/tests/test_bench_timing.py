"""The timing harness on the CPU path, and its helpers."""

import math

import pytest
from bitmat_bench import Timing, rotation_copies, time_graph
from bitmat_bench.timing import percentile, summarize


def test_bench_time_graph_cpu_counts_calls():
    calls = []
    fns = [lambda i=i: calls.append(i) for i in range(3)]
    t = time_graph(fns, replays=4, warmup=1, device="cpu")
    assert isinstance(t, Timing)
    assert t.method == "cpu-wallclock"
    assert t.calls_per_replay == 3 and t.replays == 4 and len(t.samples_us) == 4
    assert len(calls) == 3 * (1 + 4)
    assert calls[:3] == [0, 1, 2]
    assert t.min_us <= t.p10_us <= t.median_us <= t.p90_us <= t.max_us
    assert t.eager_us == t.median_us
    d = t.as_dict()
    assert "samples_us" not in d and d["method"] == "cpu-wallclock"


def test_bench_time_graph_single_callable():
    t = time_graph(lambda: sum(range(100)), replays=3, device="cpu")
    assert t.calls_per_replay == 1 and t.median_us > 0


def test_bench_time_graph_rejects_bad_input():
    with pytest.raises(ValueError, match="fn"):
        time_graph([], device="cpu")
    with pytest.raises(ValueError, match="fn"):
        time_graph([1, 2], device="cpu")


def test_bench_percentile_and_summary():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2], 50) == 1.5
    assert percentile([7], 90) == 7
    assert math.isnan(percentile([], 50))
    s = summarize([4.0, 1.0, 3.0, 2.0], eager_us=None, replays=4, calls_per_replay=1, method="x")
    assert s.median_us == 2.5 and s.min_us == 1.0 and s.max_us == 4.0
    assert s.p10_us == pytest.approx(1.3)


def test_bench_rotation_copies():
    l2 = 50 * 2**20
    assert rotation_copies(2 * l2 + 1, l2_bytes=l2) == 1  # one copy already exceeds 2 x L2
    r = rotation_copies(4 * 2**20, l2_bytes=l2)
    assert r * 4 * 2**20 > 2 * l2 and (r - 1) * 4 * 2**20 <= 2 * l2
    assert rotation_copies(1, l2_bytes=l2) == 64  # capped
    assert rotation_copies(1024, l2_bytes=l2, max_copies=1000, max_total_bytes=10 * 1024) == 10
    assert rotation_copies(0, l2_bytes=l2) == 1
