"""Launch configurations measured on the GPU at hand, for one layer shape.

configs.py ships rules measured on an H100 and an H200 (NOTES.md). tune_linear times a small, pruned set of
candidates for each bucket of tokens a layer will see (the rule's own config among them, so it never picks
something the rules beat in its own measurement) and installs the fastest for that shape; save_tuned_configs and
load_tuned_configs (or the BITMAT_KERNELS_TUNED_CONFIGS environment variable) keep them for later processes, and
the same shape then always runs the same config (deterministic results). For GPUs the rules were not measured
on, and shapes far from the ones they were.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence

import torch
import triton

from ..._checks import FLOAT_DTYPES, check_tensor
from ...backend import interpreter_enabled
from ...formats import CODES_PER_BYTE, weight_format
from ..pack import check_packed
from .configs import (
    TUNED_DECODE,
    TUNED_DEQUANT,
    TUNED_GEMM,
    DecodeConfig,
    GemmConfig,
    _fitted,
    _sm_count,
    _split_k,
    decode_config,
    gemm_config,
    tuned_key,
)
from .kernel import _GEMM_FALLBACK, auto_path, linear_triton

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

# GEMM tiles (BLOCK_M rows, BLOCK_N weight rows, BLOCK_KP bytes, warps, stages) tried for a bucket of up to so many
# rows: the winners of the H100 sweeps around each bucket (NOTES.md v5-v17), both formats and modes.
GEMM_TILES: dict[int, tuple[tuple[int, int, int, int, int], ...]] = {
    16: ((16, 64, 128, 4, 4), (16, 128, 64, 4, 4), (16, 64, 256, 4, 3), (16, 32, 256, 2, 3), (16, 64, 128, 2, 3),
         (16, 256, 64, 8, 3)),
    32: ((32, 64, 128, 4, 4), (32, 128, 64, 4, 4), (32, 64, 64, 4, 3), (16, 64, 256, 4, 3)),
    64: ((64, 64, 64, 4, 3), (32, 64, 64, 4, 4), (64, 128, 64, 4, 4), (64, 256, 32, 8, 4), (64, 128, 128, 4, 1)),
    256: ((128, 128, 32, 8, 4), (64, 64, 64, 4, 3), (128, 128, 64, 4, 3), (64, 128, 64, 4, 3), (64, 256, 64, 8, 3)),
    1 << 62: ((64, 256, 64, 8, 3), (128, 128, 64, 4, 3), (64, 128, 64, 4, 3), (128, 128, 32, 8, 4),
              (128, 256, 64, 8, 3)),
}  # fmt: skip

# A8 GEMV tiles at one token (rows a program, int32 words a row a step): the H100 sweeps' winners (NOTES.md v6-v8)
DECODE_TILES = ((4, 256), (8, 128), (16, 128), (4, 512), (16, 512), (8, 256))


def gemm_candidates(
    rows: int, n: int, k: int, fmt: str, a8: bool, device: torch.device, x_bytes: int, tiles=None
) -> list[GemmConfig]:
    """The rule's config first, then GEMM_TILES for `rows` (fitted to the device's shared memory), each also split
    along K while the programs stay within two waves and every split keeps two K steps. Weight-only tiles of more
    than 64 rows are also tried with the byte decode instead of code pairs: fewer registers, so more programs an SM
    (NOTES.md v17)."""
    rule = gemm_config(rows, n, k, fmt, a8, device, x_bytes)
    if tiles is None:
        tiles = next(t for bound, t in sorted(GEMM_TILES.items()) if rows <= bound)
    kp = -(-k // CODES_PER_BYTE[fmt])
    sms = _sm_count(device)
    decodes = (None, False) if not a8 and x_bytes == 2 and rows > 64 else (None,)
    out = [rule]
    for bm, bn, bkp, warps, stages in tiles:
        most = _split_k(triton.cdiv(rows, bm) * triton.cdiv(n, bn), kp, bkp, 2 * sms, min_steps=2, most=8)
        for split_k in (s for s in (1, 2, 4, 8) if s <= most):
            for pairs in decodes:
                cfg = _fitted(bm, bn, bkp, warps, stages, fmt, a8, x_bytes, device, split_k, code_pairs=pairs)
                if cfg not in out:
                    out.append(cfg)
    return out


def decode_candidates(n: int, k: int, fmt: str, device: torch.device, tiles=None) -> list[DecodeConfig]:
    """The A8 GEMV at one token: the rule's config first, then DECODE_TILES no wider than a row."""
    rule = decode_config(1, n, k, fmt, True, device)
    words = -(-k // CODES_PER_BYTE[fmt]) // 4
    out = [rule]
    for bn, bw in DECODE_TILES if tiles is None else tiles:
        cfg = DecodeConfig(block_n=bn, block_w=bw, num_warps=4, num_stages=2, fused_quant=False)
        if bw <= triton.next_power_of_2(max(words, 1)) and cfg not in out:
            out.append(cfg)
    return out


def _time_us(fn, device: torch.device, budget_ms: float) -> float:
    """Median microseconds of fn(): on a GPU, replays of fn captured in a CUDA graph, timed by
    triton.testing.do_bench (it flushes L2 before each replay, as a layer's weights are not in L2 when a model runs
    it); wall-clock timing under the interpreter. The graph keeps Python's launch cost out: timed as plain calls, a
    kernel of tens of microseconds reads as its host time (v18 cmd1: 28672x4096 A8 M=16 130-170 us against 18 in
    the bench), and the choice would follow host noise."""
    if device.type == "cuda" and not interpreter_enabled():
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # capture wants the first (allocating) calls made off the capture
            fn()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        ms = triton.testing.do_bench(
            graph.replay, warmup=max(1, int(budget_ms // 5)), rep=budget_ms, return_mode="median"
        )
        return ms * 1e3
    fn()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _matches(y: torch.Tensor, want: torch.Tensor, exact: bool) -> bool:
    if exact:  # int32 sums and the same epilogue: every tile gives the same bits
        return torch.equal(y, want)
    diff = (y.double() - want.double()).norm()
    return bool(torch.isfinite(diff)) and diff <= 2e-2 * want.double().norm() + 1e-6


def tune_linear(
    packed: torch.Tensor,
    scale: torch.Tensor,
    *,
    in_features: int,
    weight_bits: float = 1.58,
    activation_bits: int | None = 8,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    dtype: torch.dtype = torch.bfloat16,
    budget_ms: float = 50.0,
    tiles: dict | None = None,
) -> list[dict]:
    """Measure launch configurations of bitmat_linear for this layer and install the fastest, per bucket of tokens.

    For each M in batch_sizes (each stands for its bucket: the next power of two >= M) this runs what
    bitmat_linear(x, packed, scale, ...) runs for x of M tokens in `dtype`: the tensor-core GEMM (weight-only calls of
    2-8 tokens: its int8 planes) over the rule's config and a pruned set of others, or the A8 GEMV at one token. Each
    candidate must give the rule's result (the same bits for int8 sums, float ones within 2e-2 of the norm) and is
    timed for about budget_ms. Weight-only bf16/fp16 calls of more than 32 tokens also time dequantize + cuBLAS, and
    whichever is faster is what such calls run from then on. The weight-only one-token GEMV has nothing to tune.
    Returns one record per M: the path calls of that bucket now take, the chosen kernel config, its time and the
    rule's, dequantize + cuBLAS's time where measured (microseconds), and how many candidates were timed.
    tiles: {"gemm": [(BM, BN, BKP, warps, stages), ...], "decode": [(rows, words), ...]} replaces the built-in lists
    (tests, experiments).

    Tuning compiles every candidate once (seconds each on a first run); the results stay for this process, and
    save_tuned_configs keeps them for others.
    """
    fn = "tune_linear"
    fmt = weight_format(weight_bits, fn)
    check_tensor(fn, "packed", packed, ndim=2)
    check_packed(fn, packed, in_features, fmt)
    check_tensor(fn, "scale", scale, dtypes=(torch.float32,))
    if activation_bits not in (8, None):
        raise ValueError(f"{fn}: argument 'activation_bits' must be 8 or None (weight-only), got {activation_bits!r}")
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"{fn}: argument 'dtype' must be one of {FLOAT_DTYPES}, got {dtype}")
    if packed.device.type != "cuda" and not interpreter_enabled():
        raise ValueError(
            f"{fn}: the layer must be on a CUDA device (the Triton kernels are what is tuned), got {packed.device}"
        )
    if not batch_sizes or any(not isinstance(m, int) or m < 1 for m in batch_sizes):
        raise ValueError(f"{fn}: argument 'batch_sizes' must be positive ints, got {batch_sizes!r}")
    if not budget_ms > 0:
        raise ValueError(f"{fn}: argument 'budget_ms' must be a positive number of milliseconds, got {budget_ms!r}")
    tiles = tiles or {}
    a8 = activation_bits == 8
    n, k, device = packed.shape[0], in_features, packed.device
    x_bytes = torch.empty((), dtype=dtype).element_size()
    gen = torch.Generator(device=device).manual_seed(0)
    records = []
    for m in sorted(set(batch_sizes)):
        path = auto_path(m, n, k, fmt, a8, packed, x_bytes, dequant=False)  # the kernel; dequant is weighed below
        rec = dict(m=m, path=path, config=None, us=None, rule_us=None, candidates=0, dequant_us=None)
        records.append(rec)
        if path == "decode" and not a8:
            logger.info("%s %dx%d %s M=%d: the weight-only GEMV has one config, nothing to tune", fn, n, k, fmt, m)
            continue
        if path == "hopper":
            logger.info("%s %dx%d %s M=%d: the Gluon sm_90 GEMM has its rules' tile, not tuned", fn, n, k, fmt, m)
            continue
        rows, int8 = (4 * m, True) if path == "planes" else (m, a8)  # the planes of m tokens: 4 m int8 rows
        table = TUNED_DECODE if path == "decode" else TUNED_GEMM
        key = tuned_key(device, fmt, int8, rows, n, k, x_bytes)
        x = torch.randn(m, k, device=device, dtype=dtype, generator=gen)

        def call(x=x, path=path):
            return linear_triton(x, packed, scale, k, fmt, activation_bits, None, path=path)

        fallbacks = dict(_GEMM_FALLBACK)  # configs this process already found unusable stay known
        previous = table.pop(key, None)  # so the rules' own config leads the candidates, not an earlier choice
        timed = []
        try:
            if path == "decode":
                cands = decode_candidates(n, k, fmt, device, tiles.get("decode"))
            else:
                cands = gemm_candidates(rows, n, k, fmt, int8, device, x_bytes, tiles.get("gemm"))
            for cfg in cands:
                table[key] = cfg
                _GEMM_FALLBACK.clear()
                try:
                    y = call()
                except Exception as err:  # a config this GPU or compiler cannot build
                    logger.debug("%s: %s failed: %s", fn, cfg, err)
                    continue
                if _GEMM_FALLBACK:  # linear_triton replaced a config it could not launch
                    continue
                if not timed:
                    want = y
                elif not _matches(y, want, exact=int8):
                    logger.warning("%s %dx%d M=%d: %s gave a different result; skipped", fn, n, k, m, cfg)
                    continue
                try:
                    timed.append((_time_us(call, device, budget_ms), cfg))
                except Exception as err:  # e.g. a config that runs eagerly but not under CUDA-graph capture
                    logger.warning("%s %dx%d M=%d: %s could not be timed (%s); skipped", fn, n, k, m, cfg, err)
        finally:
            _GEMM_FALLBACK.clear()
            _GEMM_FALLBACK.update(fallbacks)
            table.pop(key, None)
            if previous is not None:
                table[key] = previous
        if not timed:
            logger.warning("%s %dx%d M=%d: no candidate ran; nothing changed", fn, n, k, m)
            continue
        best_us, best = min(timed, key=lambda t: t[0])
        table[key] = best
        if not a8 and x_bytes == 2 and m > 32:
            # from a few dozen tokens the bf16 work may be cuBLAS's to win (dequant_min_m): measure that too
            def dequant(x=x):
                return linear_triton(x, packed, scale, k, fmt, None, None, path="dequant")

            if _matches(dequant(), want, exact=False):
                rec["dequant_us"] = _time_us(dequant, device, budget_ms)
                TUNED_DEQUANT[tuned_key(device, fmt, False, m, n, k, x_bytes)] = rec["dequant_us"] < best_us
                if rec["dequant_us"] < best_us:
                    rec["path"] = "dequant"
        rec.update(
            config=best, us=best_us, rule_us=timed[0][0] if timed[0][1] is cands[0] else None, candidates=len(timed)
        )
        rule_us = "-" if rec["rule_us"] is None else f"{rec['rule_us']:.1f}"
        dequant_us = "" if rec["dequant_us"] is None else f", dequantize + cuBLAS {rec['dequant_us']:.1f} us"
        logger.info(
            "%s %dx%d %s a%s M=%d (%s): %s %.1f us, rules %s us, %d candidates%s",
            fn, n, k, fmt, activation_bits or 16, m, rec["path"], describe_config(best), best_us, rule_us, len(timed),
            dequant_us,
        )  # fmt: skip
    return records


def describe_config(cfg) -> str:
    """A launch config in a few words, as tune_linear logs it and `bitmat tune` prints it."""
    if isinstance(cfg, GemmConfig):
        return f"{cfg.block_m}x{cfg.block_n}x{cfg.block_kp} w{cfg.num_warps} s{cfg.num_stages} split {cfg.split_k}"
    fused = ", fused quantization" if cfg.fused_quant else ""
    return f"GEMV {cfg.block_n} rows x {cfg.block_w} words w{cfg.num_warps} s{cfg.num_stages}{fused}"
