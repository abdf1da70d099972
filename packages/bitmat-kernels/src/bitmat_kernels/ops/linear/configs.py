"""Launch configurations of the matmul kernels, chosen by bucketed M (tokens), N, K and the GPU.

Tuned values ship in TUNED (measured with bitmat-bench on the named GPU, see NOTES.md) so a user's
first call does not spend minutes autotuning; shapes and GPUs not listed fall back to heuristics
that were good on H100. Choices are deterministic: the same shape always runs the same config.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass

import torch
import triton

from ...backend import interpreter_enabled
from ...formats import CODES_PER_BYTE

DECODE_MAX_M = 1
"""Up to this many tokens the GEMV runs; above it the tensor-core GEMM, which measured faster from
M = 2 on (H200, NOTES.md v3): with the weights as its wide side, its M = 2..16 cost is the M = 1 cost."""


@dataclass(frozen=True)
class DecodeConfig:
    block_n: int
    block_w: int  # A8: int32 words of packed weight per row per step; weight-only: bytes
    num_warps: int = 4
    num_stages: int = 2
    fused_quant: bool = True  # A8: quantize activations inside the GEMV (one launch, not two)
    max_registers: int = 0  # weight-only, one token: a per-thread register cap (more warps an SM), 0 for none


@dataclass(frozen=True)
class GemmConfig:
    block_m: int
    block_n: int
    block_kp: int  # packed bytes per step along K (each slice multiplies BLOCK_KP columns)
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3
    split_k: int = 1  # >1: K shared among programs (small M and N), partial sums reduced in order
    fast_cvt: bool = True  # weight-only: PTX byte permutes turn codes into bf16/fp16
    warp_specialize: bool = False  # Triton's automatic warp specialization of the K loop (sweeps only so far)
    code_pairs: bool = True  # weight-only bf16/fp16, even KP: two slices a shift into tensor-core fragments
    max_registers: int = 0  # a per-thread register cap (more programs an SM), 0 for none


@dataclass(frozen=True)
class HopperWeightOnlyConfig:
    """A tile of the Gluon sm_90 weight-only GEMM (hopper.py)."""

    block_n: int  # weight rows a program (64 a warpgroup)
    block_m: int  # tokens a program (the wgmma's N)
    block_kp: int  # packed bytes a stage (each slice, 4 a byte ternary, 8 binary, meets block_kp activation columns)
    num_warps: int = 4
    num_stages: int = 3
    group_m: int = 8


def m_bucket(m: int) -> int:
    """The next power of two >= m (1, 2, 4, ..., 8192, then 16384 for all larger)."""
    return min(1 << max(m - 1, 0).bit_length(), 16384)


@functools.lru_cache(maxsize=16)
def gpu_key(device: torch.device) -> str:
    if device.type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name(device)
    for known in ("H100", "H200"):
        if known in name:
            return known
    return name


# Configs that replace the rules below: keyed (gpu, fmt, a8, m_bucket, n, k, x_bytes) for one layer shape, as
# tuning.tune_linear measures them and save_tuned_configs / load_tuned_configs keep them, or (gpu, fmt, a8, m_bucket)
# for every shape (gpu_sweep.py's overrides). The shape's own entry wins.
TUNED_DECODE: dict[tuple, DecodeConfig] = {}
TUNED_GEMM: dict[tuple, GemmConfig] = {}
# weight-only, per layer shape (same keys): True where dequantize + cuBLAS measured faster than the best kernel config
TUNED_DEQUANT: dict[tuple, bool] = {}

TUNED_CONFIGS_ENV = "BITMAT_KERNELS_TUNED_CONFIGS"
"""Environment variable: a save_tuned_configs file, loaded before the first launch configuration is chosen."""
_TUNED_FILE_VERSION = 1
_env_file_loaded = False


def tuned_key(device: torch.device, fmt: str, a8: bool, m: int, n: int, k: int, x_bytes: int) -> tuple:
    """The key of one layer shape's tuned config (A8 activations are int8 whatever x's dtype)."""
    return (gpu_key(device), fmt, a8, m_bucket(m), n, k, 1 if a8 else x_bytes)


def _tuned(table: dict, device: torch.device, fmt: str, a8: bool, m: int, n: int, k: int, x_bytes: int):
    global _env_file_loaded
    if not _env_file_loaded:
        path = os.environ.get(TUNED_CONFIGS_ENV)
        if path:
            try:
                load_tuned_configs(path)
            except (OSError, ValueError) as err:  # every call fails alike until the variable or the file is fixed
                raise ValueError(f"{TUNED_CONFIGS_ENV}={path}: {err}") from None
        _env_file_loaded = True
    if not table:
        return None
    key = tuned_key(device, fmt, a8, m, n, k, x_bytes)
    return table.get(key, table.get(key[:4]))


def use_dequant(device: torch.device, fmt: str, m: int, n: int, k: int, x_bytes: int) -> bool:
    """Whether a weight-only call dequantizes and calls cuBLAS: the tuned choice for this shape, else dequant_min_m
    (never under the interpreter, whose tests exercise the kernels)."""
    tuned = _tuned(TUNED_DEQUANT, device, fmt, False, m, n, k, x_bytes)
    if tuned is not None:
        return tuned
    return not interpreter_enabled() and m >= dequant_min_m(n, k)


_TABLES = {"gemm": TUNED_GEMM, "decode": TUNED_DECODE, "dequant": TUNED_DEQUANT}


def save_tuned_configs(path: str | os.PathLike) -> int:
    """Write every shape-keyed tuned config (tuning.tune_linear's results) to a JSON file; returns how many.
    load_tuned_configs, or the BITMAT_KERNELS_TUNED_CONFIGS environment variable, reads it back."""
    entries = [
        dict(
            zip(("gpu", "fmt", "a8", "m_bucket", "n", "k", "x_bytes"), key),
            kind=kind,
            config=value if kind == "dequant" else dataclasses.asdict(value),
        )
        for kind, table in _TABLES.items()
        for key, value in sorted(table.items(), key=lambda item: repr(item[0]))
        if len(key) == 7
    ]
    text = json.dumps(
        dict(format="bitmat-kernels tuned configs", version=_TUNED_FILE_VERSION, entries=entries), indent=1
    )
    with open(path, "w") as f:
        f.write(text + "\n")
    return len(entries)


def load_tuned_configs(path: str | os.PathLike) -> int:
    """Read a save_tuned_configs file into the tuned tables (entries of other GPUs stay unused); returns how many."""
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"load_tuned_configs: {path} is not JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != "bitmat-kernels tuned configs":
        raise ValueError(f"load_tuned_configs: {path} is not a file written by save_tuned_configs")
    if data.get("version") != _TUNED_FILE_VERSION:
        raise ValueError(
            f"load_tuned_configs: {path} has version {data.get('version')!r}; this reads {_TUNED_FILE_VERSION}"
        )
    parsed = []
    for i, e in enumerate(data.get("entries", [])):
        try:
            kind, table = e["kind"], _TABLES[e["kind"]]
            key = (str(e["gpu"]), str(e["fmt"]), bool(e["a8"]), int(e["m_bucket"]), int(e["n"]), int(e["k"]),
                   int(e["x_bytes"]))  # fmt: skip
            if kind == "dequant":
                if not isinstance(e["config"], bool):
                    raise TypeError(f"a dequant entry holds true or false, got {e['config']!r}")
                value = e["config"]
            else:
                value = (GemmConfig if kind == "gemm" else DecodeConfig)(**e["config"])
            parsed.append((table, key, value))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"load_tuned_configs: {path}: entry {i} is malformed ({type(err).__name__}: {err})"
            ) from None
    for table, key, cfg in parsed:
        table[key] = cfg
    return len(parsed)


def clear_tuned_configs() -> None:
    """Forget every tuned config: the rules below choose again."""
    for table in _TABLES.values():
        table.clear()


def decode_config(m: int, n: int, k: int, fmt: str, a8: bool, device: torch.device, x_bytes: int = 2) -> DecodeConfig:
    tuned = _tuned(TUNED_DECODE, device, fmt, a8, m, n, k, x_bytes)
    if tuned is not None:
        return tuned
    if interpreter_enabled():
        return DecodeConfig(block_n=8, block_w=16, num_stages=1)
    # H100 decode sweeps over 9 Llama-3 / BitNet shapes (NOTES.md v6-v8), one token. A8 (the quantization in
    # its own kernel; fused only won on the smallest layers, by 3%): long rows (>= 432 words, ternary
    # K >= 6912) take 512 words a step, 4 rows a program up to N = 4096 and 16 above; shorter rows take
    # 4 x 256 up to N = 4096, 8 x 128 up to 8192 and 16 x 128 above. Weight-only: 512 bytes a row a step
    # up to N = 8192 (256 above), rows per program chosen so the grid keeps >= 512 programs. Pipeline
    # stages made no difference.
    if a8:
        # rule in packed words a row (ternary K = 6912 is 432 words; a binary row of the same K is half as long):
        # the v8 run gave binary 57344x8192 512-word steps on a 256-word row and lost half its speed (9.8x -> 4.7x)
        if -(-k // CODES_PER_BYTE[fmt]) // 4 >= 432:
            bn, bw = (4 if n <= 4096 else 16), 512
        else:
            bn, bw = (4, 256) if n <= 4096 else (8, 128) if n <= 8192 else (16, 128)
    elif m == 1:
        # Weight-only, one token (kernel._bitmat_gemv_weight_only_kernel): one warp, 8 rows, each thread one
        # 16-byte load of activations and as many packed bytes of each row a step, 2 steps loaded ahead. Best on 6
        # of the 9 layers of the H100 sweeps and within 10% on the others (NOTES.md v13; register caps, 2 warps,
        # 4 rows, 4 stages and a persistent grid all lost on the large layers).
        return DecodeConfig(block_n=8, block_w=16 // x_bytes * 32, num_warps=1, num_stages=3, fused_quant=False)
    else:
        bn, bw = next((b for b in (32, 16) if -(-n // b) >= 512), 8), (512 if n <= 8192 else 256)
    # several tokens (path="decode" with M > 1) multiply the accumulator: keep it within the registers
    while bn * bw * triton.next_power_of_2(m) > 8192 and bw > 32:
        bw //= 2
    return DecodeConfig(block_n=bn, block_w=bw, num_warps=4, num_stages=1, fused_quant=False)


def _measured_weight_only(a8: bool, fmt: str, x_bytes: int) -> bool:
    """The weight-only case the v12 sweeps measured: ternary codes, bf16/fp16 activations (fp32 ones take three bf16
    dots and binary ones eight slices a byte, neither swept)."""
    return not a8 and fmt == "ternary" and x_bytes == 2


def weight_only_tall_long_rows(n: int, k: int, fmt: str, x_bytes: int) -> bool:
    """Weight-only on a tall layer whose rows are much longer than it is tall (a Llama-70B down projection): 2-16
    tokens are not split along K. H100 (NOTES.md v12): 8192x28672 M=4 56 against 60 us. (One token ran the GEMM here
    in v12; the v13 GEMV is faster: 36 against 57 us.)"""
    return _measured_weight_only(False, fmt, x_bytes) and n >= 8192 and k >= 2.5 * n


def weight_only_planes(m: int, n: int, k: int, fmt: str) -> bool:
    """Weight-only calls of this size run on the A8 GEMM, each token as four int8 planes (quantize.activation_planes;
    kernel.linear_triton).

    H100 sweeps 3, 4 and 6 (NOTES.md v16), against the kernels replaced in the same process:
    - 2-4 tokens: every layer (ternary 28672x4096 M=4 25.5 -> 17.2 us, 57344x8192 87.6 -> 60.7, 8192x28672 57.2 ->
      42.5, 4096x4096 9.9 -> 8.9; binary 57344x8192 103.0 -> 47.7);
    - one token: tall layers (>= 12288 rows) that are not K-heavy, where 4 rows of the A8 GEMM beat the GEMV
      (28672x4096 20.1 -> 17.9, 57344x8192 67.6 -> 59.7, 13824x2560 10.0 -> 8.9); elsewhere the GEMV is faster;
    - 5-8 tokens (20-32 rows): not on K-heavy layers (ternary 4096x14336 20.5 -> 21.8, 2560x6912 12.5 -> 14.1;
      binary 8192x28672 47.1 -> 62.3), except ternary ones of >= 8192 rows (8192x28672 57.2 -> 45.4);
    - 9-16 tokens: only binary on small layers (3840x2560 M=16 10.4 -> 8.8); elsewhere the planes lost or tied."""
    k_heavy = k >= 2.5 * n
    if m == 1:
        return n >= 12288 and not k_heavy
    if m <= 4:
        return m >= 2
    if m <= 8:
        return not k_heavy or (fmt == "ternary" and n >= 8192)
    return m <= 16 and fmt == "binary" and n * k <= 10 * 2**20 and not k_heavy


HOPPER_ENV = "BITMAT_KERNELS_GLUON"
"""Environment variable: 0 turns the Gluon sm_90 weight-only GEMM off (the Triton kernels and the rules before it)."""


@functools.lru_cache(maxsize=16)
def _is_sm90(device: torch.device) -> bool:
    return torch.cuda.get_device_capability(device) == (9, 0)


def hopper_weight_only_config(
    m: int, n: int, k: int, fmt: str, device: torch.device, x_bytes: int
) -> HopperWeightOnlyConfig | None:
    """The Gluon sm_90 GEMM's tile for a ternary or binary weight-only call with bf16/fp16 activations (hopper.py), or
    None where the Triton kernels or dequantize + cuBLAS stay. A tuned config for the shape (tune_linear) keeps it off.

    H100, v21 kernel (NOTES.md v21: us against the path it replaces, same process):
    - 8-16 tokens (cmd4): 28672x4096 M=16 25.3 -> 19.9, 57344x8192 82.0 -> 60.8, 8192x28672 52.9 -> 38.9, 4096x4096
      10.4 -> 7.6; M=8 28672x4096 21.8 -> 18.4, 8192x28672 43.5 -> 39.7 (4096x14336 a tie, 20.4 both). Fewer tokens
      were not swept (v20's kernel lost at 4: 28672x4096 17.5 -> 26.8);
    - 17-128 tokens (cmd4) on layers of > 12M weights, and at 17-64 of >= 4096 rows (v20's kernel lost on 2560x6912
      at 64 tokens, 17.8 -> 19.2; not re-swept): 28672x4096 M=64 45.3 -> 29.1, 8192x28672 M=64 103 -> 64, 57344x8192
      M=128 260 -> 170;
    - 129-1024 tokens (sweep 4), every layer but 2560x6912 beyond 512 tokens (M=1024 61.6 -> 70.3): 3840x2560
      M=256 17.2 -> 11.2, 4096x4096 M=256 24.5 -> 15.9, 28672x4096 M=256 136 -> 87, M=1024 412 (dequantize +
      cuBLAS) -> 317, 57344x8192 M=1024 1755 -> 1237;
    - 1025-8192 tokens (sweep 5) on layers of >= 4096 rows: 57344x8192 M=2048 3018 -> 2668, 28672x4096 M=2048 765 ->
      678, 4096x4096 M=4096 205 -> 190 (6144x4096 lost at 2048 tokens, 155 -> 161; fewer rows lost, 2560x6912 M=2048
      108 -> 128). More tokens were not swept.
    Binary (NOTES.md v21, binary.jsonl), 8-1024 tokens where ternary runs: 28672x4096 M=16 36.5 -> 19.5, M=64 38.8 ->
    26.0, 8192x28672 M=16 46.6 -> 30.0, 57344x8192 M=1024 1750 -> 1510, 4096x14336 M=128 45.3 -> 44.9."""
    if fmt not in ("ternary", "binary") or x_bytes != 2 or device.type != "cuda" or interpreter_enabled():
        return None
    if fmt == "binary" and m > 1024:  # not swept there
        return None
    if os.environ.get(HOPPER_ENV, "1") == "0" or not _is_sm90(device) or m < 8 or m > 8192:
        return None
    if _tuned(TUNED_GEMM, device, fmt, False, m, n, k, x_bytes) is not None:
        return None
    if _tuned(TUNED_DEQUANT, device, fmt, False, m, n, k, x_bytes):
        return None
    if m <= 128 and (n * k <= 12 * 2**20 or (m <= 64 and n < 4096)):
        return None
    if (m > 512 and n < 3072) or (m > 1024 and n < 4096):  # 2560x6912 M=1024 62 -> 70, M=2048 108 -> 128
        return None
    return hopper_tile(m, n, k, fmt)


def _k_step(kp: int, want: int) -> int:
    """The longest K step (packed bytes) up to `want` that divides a row's kp bytes: whole stages (hopper.supported)."""
    step = want
    while step > 32 and kp % step:
        step //= 2
    return step


@functools.lru_cache(maxsize=4096)  # a pure function of its arguments, on every weight-only call from 8 tokens
def hopper_tile(m: int, n: int, k: int, fmt: str = "ternary") -> HopperWeightOnlyConfig:
    """The Gluon GEMM's tile for M tokens wherever it runs (hopper_weight_only_config says where; path="hopper"
    forces it anywhere): the tokens a program are the wgmma's N, 8-256. H100 sweeps (NOTES.md v21, us): tall layers
    (>= 16384 rows, >= 2x their columns) take 128 rows a program at 33-128 tokens (28672x4096 M=64 31.5 -> 29.1) and
    short K steps below 17 (M=16 22.1 -> 19.9); K-heavy layers long ones (8192x28672 M=16 40.2 -> 39.0, M=64 65.2 ->
    62.9; 4096x14336 M=64 32.5 -> 28.2); from 129 tokens 128 x 128 tiles on 8 warps where they make enough programs
    (10240 rows and more up to 256 tokens, 6144 up to 512, every layer beyond: 57344x8192 M=1024 1483 -> 1237 against
    128 x 256), else 64-row tiles (4096x4096 M=256 31.6 -> 15.9). Binary (8 activation slices a byte, not 4): the
    same tiles with one stage fewer where that fits (57344x8192 M=16 58.9 -> 58.6, 4096x4096 M=64 11.1 -> 9.6),
    else, and for tall layers at 33-64 tokens (28672x4096 M=64 31.0 -> 26.0), half the packed bytes a step."""
    if fmt == "binary":
        tile = hopper_tile(m, n, k)
        fewer = dataclasses.replace(tile, num_stages=max(2, tile.num_stages - 1))  # the same K step, fewer stages
        stage_bytes = tile.block_kp * (tile.block_n + 8 * tile.block_m * 2)
        if fewer.num_stages * stage_bytes <= 224 * 1024 and not (n >= 16384 and n >= 2 * k and 32 < m <= 64):
            return fewer
        return dataclasses.replace(tile, block_kp=tile.block_kp // 2)  # half the step: the same stage bytes
    kp = k // 4
    tall = n >= 16384 and n >= 2 * k
    k_heavy = k >= 2.5 * n
    if m <= 8:
        if tall and k <= 4096:
            return HopperWeightOnlyConfig(64, 8, _k_step(kp, 64), num_stages=4)
        return HopperWeightOnlyConfig(64, 8, _k_step(kp, 128))
    if m <= 16:
        if tall:
            return HopperWeightOnlyConfig(64, 16, _k_step(kp, 64), num_stages=4)
        if k_heavy:
            return HopperWeightOnlyConfig(64, 16, _k_step(kp, 256), num_stages=2)
        return HopperWeightOnlyConfig(64, 16, _k_step(kp, 128))
    if m <= 32:
        return HopperWeightOnlyConfig(64, 32, _k_step(kp, 64))
    if m <= 64:
        if tall:
            return HopperWeightOnlyConfig(128, 64, _k_step(kp, 64), num_warps=8, num_stages=2)
        if k_heavy:
            return HopperWeightOnlyConfig(64, 64, _k_step(kp, 128), num_stages=2)
        return HopperWeightOnlyConfig(64, 64, _k_step(kp, 64))
    wide = HopperWeightOnlyConfig(128, 128, _k_step(kp, 32), num_warps=8)
    if m <= 128:
        return wide if tall else HopperWeightOnlyConfig(64, 128, _k_step(kp, 64))
    if m <= 256:
        return wide if n >= 10240 and not k_heavy else HopperWeightOnlyConfig(64, 128, _k_step(kp, 64))
    if m <= 512:
        return wide if n >= 6144 else HopperWeightOnlyConfig(64, 256, _k_step(kp, 32))
    return wide


def dequant_min_m(n: int, k: int) -> int:
    """Tokens from which weight-only matmuls dequantize the weight and call cuBLAS (kernel.linear_triton).

    H100 (NOTES.md v5): writing the dense weight costs about one bf16 weight read, so it pays once cuBLAS's compute
    time dominates: from M = 65 on small layers (<= 12M weights), M = 257 on layers below 64M weights (v17) and M =
    1024 on the others; our Triton GEMM wins below. (v14: with the code-pair decode the GEMM won at M = 64 on
    3840x2560, 12.1 against 14.1 us, and at M = 256 on 4096x4096, 6144x4096 and 13824x2560, 24-47 against 30-65 us;
    2560x6912 lost 36 against 34 us.)"""
    if n * k <= 12 * 2**20:
        return 65
    # v17 sweep 2 (H100, 512 tokens): dequantizing won on the layers below 64M weights (6144x4096 57 against 68 us on
    # the best GEMM tile, 13824x2560 83 against 90, 2560x6912 44 against 56) and lost on the larger ones (28672x4096
    # 263 against 232, 57344x8192 1042 against 871); at 256 tokens the GEMM won on all but 2560x6912 (37 against 34)
    return 257 if n * k < 64 * 2**20 else 1024


def _stages_that_fit(
    block_m: int, block_n: int, block_kp: int, fmt: str, x_bytes: int, wanted: int, device: torch.device
) -> int:
    """Pipeline depth whose shared memory (activation + weight tiles per stage) fits the device."""
    per_stage = CODES_PER_BYTE[fmt] * block_kp * block_m * x_bytes + block_n * block_kp
    return max(1, min(wanted, _shared_memory_budget(device) // per_stage))


@functools.lru_cache(maxsize=16)
def _shared_memory_budget(device: torch.device) -> int:
    """Shared memory a kernel may plan for its pipeline stages (queried once per device: this runs on
    every GEMM launch)."""
    try:
        budget = torch.cuda.get_device_properties(device).shared_memory_per_block_optin
    except (AttributeError, RuntimeError, AssertionError):
        budget = 99 * 1024
    return budget - 16 * 1024  # layout conversions and the epilogue also use shared memory


def _split_k(tiles: int, kp: int, block_kp: int, max_programs: float, min_steps: int, most: int) -> int:
    """Split-K factor: doubled while the programs stay within max_programs and each keeps min_steps K steps."""
    split = 1
    while split < most and tiles * split * 2 <= max_programs and kp // (split * 2) >= min_steps * block_kp:
        split *= 2
    return split


def _fitted(bm, bn, bkp, warps, stages, fmt, a8, x_bytes, device, split_k=1, code_pairs=None, regs=0) -> GemmConfig:
    """The config with as many of the wanted pipeline stages as fit the device's shared memory. Weight-only tiles
    decode code pairs (kernel.code_pairs_as_halves) where a step spans at most 512 columns a row: on longer steps
    the decoded fragments outgrow the registers (H100 sweeps, NOTES.md v14: ternary 16 x 64 x 256 and binary
    64 x 128 x 128 ran 1.5x-4x slower with pairs, every tile within the bound 0.86x-1.47x the byte decode's time)."""
    stages = _stages_that_fit(bm, bn, bkp, fmt, 1 if a8 else x_bytes, stages, device)
    pairs = bkp * CODES_PER_BYTE[fmt] <= 512 if code_pairs is None else code_pairs
    return GemmConfig(
        bm, bn, bkp, num_warps=warps, num_stages=stages, split_k=split_k, code_pairs=pairs, max_registers=regs
    )


def gemm_config(m: int, n: int, k: int, fmt: str, a8: bool, device: torch.device, x_bytes: int = 1) -> GemmConfig:
    tuned = _tuned(TUNED_GEMM, device, fmt, a8, m, n, k, x_bytes)
    if tuned is not None:
        fit = _stages_that_fit(
            tuned.block_m, tuned.block_n, tuned.block_kp, fmt, 1 if a8 else x_bytes, tuned.num_stages, device
        )
        return tuned if fit == tuned.num_stages else dataclasses.replace(tuned, num_stages=fit)
    if interpreter_enabled():
        return GemmConfig(block_m=16, block_n=32, block_kp=32, num_warps=4, num_stages=1)
    sms = _sm_count(device)
    kp = -(-k // CODES_PER_BYTE[fmt])
    split_k, regs = 1, 0
    if a8 and fmt == "binary" and 128 < m <= 1024 and n * k < 64 * 2**20:
        # Binary A8 on small and mid layers (8 slices a byte; H100 sweep, NOTES.md v12): 64-token tiles, 64 rows
        # a program where 128 would leave the GPU under-filled at M <= 256 (3840x2560 M=256 17.3 -> 11.6 us,
        # 4096x4096 20.4 -> 14.7, 2560x6912 M=1024 70 -> 61).
        few = m <= 256 and triton.cdiv(m, 64) * triton.cdiv(n, 128) < 1.4 * sms
        return _fitted(64, 64 if few else 128, 64, 4, 3, fmt, a8, x_bytes, device)
    if a8 and fmt == "binary" and m > 256 and k < 2.5 * n:
        # Binary A8 from 257 tokens on layers that are not K-heavy (H100 sweep over 5 layers at M = 1024 / 4096,
        # NOTES.md v13): 64 x 128 tiles on 4 warps beat the ternary default 64 x 256 on 8 (28672x4096 M=1024 264 ->
        # 239 us, M=4096 983 -> 928, 57344x8192 3541 -> 3415); on 8192x28672 the default stays (1825 against 1920+).
        # 32-byte K steps, 128 x 256 and 128 x 128 tiles all lost.
        return _fitted(64, 128, 64, 4, 3, fmt, a8, x_bytes, device)
    if not a8 and fmt == "binary" and x_bytes == 2 and (m <= 16 or 32 < m <= 64 or 128 < m <= 256):
        # Binary weight-only, bf16/fp16 activations (H100 sweep over 5 layers, NOTES.md v13; the ternary rules below
        # gave it 1.2x-2.3x slower tiles): 2-16 tokens 16 x 256 x 64 on 8 warps on tall layers, else 16 x 128 x 64
        # (28672x4096 M=4 60 -> 32 us, 8192x28672 101 -> 49); 33-64 tokens 64 x 128 x 128 from 8192 to 32768 rows
        # (8192x28672 213 -> 90 us; byte decode, see _fitted). Split-K while the programs stay within two waves (one
        # where marked) and each keeps two K steps. The stage counts are what fits the shared memory of an H100
        # (binary rows take 8 activation slices a step), as measured.
        waves, pairs = 2, None
        if m <= 16:
            bm, bn, bkp, warps, stages = (16, 256, 64, 8, 3) if n >= 16384 else (16, 128, 64, 4, 4)
            # v14 bench: code pairs lost 6-10% on the tall tile (57344x8192 M=16 103 -> 114 us, 28672x4096 M=4 32 -> 34)
            pairs = None if n < 16384 else False
        elif m <= 64 and n >= 10240 and k < 2.5 * n:
            # v17 sweep 10b: 64 x 256 x 32 on 8 warps (28672x4096 48.6 -> 39.0 us, 57344x8192 171 -> 140; 10240x8192
            # split in two, 49.1 -> 44.0)
            bm, bn, bkp, warps, stages, waves = 64, 256, 32, 8, 4, 1
        elif m <= 64 and 8192 <= n <= 32768:
            bm, bn, bkp, warps, stages = 64, 128, 128, 4, 1
        elif m <= 64 and k >= 2.5 * n:
            # K-heavy: 32 x 64 x 64 (code pairs) within one wave (v14 sweep 6: 2560x6912 31.9 -> 20.0 us; 4096x14336
            # 34.7 against v13's 64 x 64 x 128 at 34.1-34.5; code pairs on 64 x 64 x 64 took 38.7-41.1 there)
            bm, bn, bkp, warps, stages, waves = 32, 64, 64, 4, 3, 1
        elif m <= 64 and n <= 4096:
            # v17 sweep 10b: 32 x 64 x 64 on 4 stages (4096x4096 16.0 -> 13.1 us; 6144x4096 kept the tile below)
            bm, bn, bkp, warps, stages, waves = 32, 64, 64, 4, 4, 1
        elif m <= 64:
            # v14 (code pairs): 64 x 64 x 64 on 3 stages, split within one wave (4096x4096 19.9 -> 16.0 us)
            bm, bn, bkp, warps, stages, waves = 64, 64, 64, 4, 3, 1
        else:
            # v14 (code pairs): 128 x 128 x 32 (28672x4096 132.5 -> 130.7 us, 4096x4096 29.7 -> 26.1)
            bm, bn, bkp, warps, stages, waves = 128, 128, 32, 8, 3, 1
        tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
        split_k = _split_k(tiles, kp, bkp, waves * sms, min_steps=2, most=4)
        return _fitted(bm, bn, bkp, warps, stages, fmt, a8, x_bytes, device, split_k, pairs)
    long_rows = weight_only_tall_long_rows(n, k, fmt, x_bytes)
    if _measured_weight_only(a8, fmt, x_bytes) and m == 16 and (n >= 16384 or long_rows):
        # Ternary weight-only, 16 tokens, tall layers and tall long-row ones (H100, NOTES.md v15): 16 x 64 x 128
        # code-pair tiles on 2 warps, where Triton lowers tl.dot to mma.sync instead of wgmma; split in two along K
        # on long rows. 28672x4096 / 57344x8192 / 8192x28672: 26.0 / 87.2 / 58.7 us on the tiles below (v15 sweep),
        # 24.5 / 80.1 / 53.0 on this one (bench). Not below 16: at 9 tokens this tile lost (26.8 / 89.7 / 61.7 us
        # against 25.4 / 86.1 / 57.0 at 8 on the tiles below), at 4 too.
        split_k = 2 if long_rows else 1
        return _fitted(16, 64, 128, 2, 3, fmt, a8, x_bytes, device, split_k)
    if _measured_weight_only(a8, fmt, x_bytes) and m <= 16 and n < 16384 and not long_rows:
        # Ternary weight-only, 2-16 tokens, layers of < 16384 rows (H100 sweeps, NOTES.md v13, v14): 16 x 128 x 64
        # tiles split along K up to 8 ways within two waves (3840x2560 M=4 11.0 -> 10.1 us, 4096x4096 13.1 -> 11.7,
        # 4096x14336 24.5 -> 21.9; with code pairs 6144x4096 M=16 15.5 -> 12.7, its 16 x 64 x 256 tile kept bytes).
        # From 8192 rows on 3 stages (v14 sweep 5: 8192x8192 M=4 20.7 -> 17.4 us, 10240x8192 31.6 -> 25.7, 13824x2560
        # 13.5 -> 12.6; 4 stages 2.5-3 us slower there).
        split_k = _split_k(triton.cdiv(m, 16) * triton.cdiv(n, 128), kp, 64, 2 * sms, min_steps=2, most=8)
        return _fitted(16, 128, 64, 4, 4 if n < 8192 else 3, fmt, a8, x_bytes, device, split_k)
    if not a8 and x_bytes == 2 and 32 < m <= 1024:
        # Weight-only (bf16/fp16 activations), 33-1024 tokens (eager calls dequantize from dequant_min_m on). H100
        # sweep, NOTES.md v12: 64 x 64 tiles at M <= 64 (28672x4096 M=64 85 -> 53 us, 8192x28672 211 -> 101), split
        # in two along K for long rows on few programs; up to 256, 128 x 128 on 8 warps unless that leaves one to one
        # and a half waves or fewer than half the SMs busy (57344x8192 M=256 703 -> 549 us, 10240x8192 205 -> 113).
        # v17 sweeps 1-2: 32-byte K steps on 4 stages for the 128 x 128 tile (57344x8192 M=128 328 -> 263 us, M=256
        # 531 -> 440, 8192x28672 M=256 267 -> 232, 6144x4096 M=256 37.8 -> 35.7), and that tile from 257 tokens on,
        # where the 64 x 256 one was 1.3x-1.5x slower (28672x4096 M=512 314 -> 232, 57344x8192 1236 -> 871, M=1024
        # 609 -> 446) and 64 x 64 slower still. Binary codes (their own rule above at 33-64 and 129-256 tokens) take
        # these tiles too (v17 sweeps 4-5: 6144x4096 M=128 66 -> 29 us, 4096x4096 37 -> 16, 57344x8192 327 -> 261,
        # M=512 1147 -> 874). Tall layers with long rows that make under half a wave of 128 x 128 tiles split them in
        # two along K instead (8192x28672 M=128: ternary 148 -> 142 us, binary 167 -> 128).
        if m <= 64 and n <= 4096 and k < 2.5 * n:
            # v17 sweep 12: 32 x 64 x 64 on 4 stages, unsplit, as binary (3840x2560 12.6 -> 10.3 us, 4096x4096 14.4 ->
            # 13.6; the K-heavy 2560x6912 and 6144x4096 kept the tile below)
            bm, bn, bkp, warps, stages = 32, 64, 64, 4, 4
        elif m <= 64:
            bm, bn, bkp, warps, stages = 64, 64, 64, 4, 3
            tiles = triton.cdiv(m, 64) * triton.cdiv(n, 64)
            if tiles < sms // 2:
                # v14: up to 4-way within two waves (2560x6912 23.6 -> 17.8 us, 4096x4096 17.4 -> 14.2, 4096x14336
                # 40.6 -> 31.9); 96 tiles or more stay whole (6144x4096 17.1 against 19.3 split in two)
                split_k = _split_k(tiles, kp, 64, 2 * sms, min_steps=2, most=4)
        else:
            programs = triton.cdiv(m, 128) * triton.cdiv(n, 128)
            if m > 256 and fmt == "ternary":
                # v18 sweep 1: from 257 tokens the byte decode on 3 stages, two 8-warp programs an SM (128 registers
                # a thread against code pairs' 206): 57344x8192 M=512 872 -> 815 us, 8192x28672 461 -> 423,
                # 28672x4096 230 -> 221; M=1024 5-8% too. At 129-256 tokens code pairs stay (8192x28672 M=256 226
                # against 255).
                return _fitted(128, 128, 32, 8, 3, fmt, a8, x_bytes, device, code_pairs=False)
            if m > 256 or programs >= 1.5 * sms or sms // 2 <= programs <= sms:
                bm, bn, bkp, warps, stages = 128, 128, 32, 8, 4
            elif programs < sms // 2 and n >= 8192 and k >= 2.5 * n:
                bm, bn, bkp, warps, stages, split_k = 128, 128, 32, 8, 4, 2
            else:
                bm, bn, bkp, warps, stages = 64, 64, 64, 4, 3
        return _fitted(bm, bn, bkp, warps, stages, fmt, a8, x_bytes, device, split_k)
    if a8 and fmt == "ternary" and 8 < m <= 16 and 4096 <= n < 8192 and k <= 3 * n:
        # Ternary A8, 9-16 rows (also the planes of 3-4 weight-only tokens), layers of 4096-8191 rows that are not
        # very K-heavy: 16 x 32 x 256 on 2 warps (mma.sync), unsplit. H100 (NOTES.md v16), 16 rows, sweep 10c /
        # bench: 4096x4096 8.1 -> 7.0 / 8.0 -> 7.0 us, 6144x4096 8.2 -> 7.5 / 7.8 -> 7.0. Not taken: 4096x14336 (13.7
        # -> 15.6), the BitNet-2B layers (3840x2560 6.0 -> 6.3 in the bench) and 4 rows (2560x6912 8.7 -> 10.1).
        return _fitted(16, 32, 256, 2, 3, fmt, a8, x_bytes, device)
    if a8 and 16 < m <= 32 and (fmt == "ternary" or n <= 8192):
        # A8, 17-32 rows (also the planes of 5-8 weight-only tokens), H100 sweeps 3b and 6 (NOTES.md v16): 32 x 64 x
        # 128 on 4 warps, 4 stages. Ternary: best or within 3% on all seven layers (57344x8192 85.3 -> 65.2 us,
        # 13824x2560 11.1 -> 8.5, 28672x4096 23.5 -> 20.5), split in two where the tiles fit two waves and keep 8 K
        # steps each (8192x8192 18.0 -> 14.4, 8192x28672 52.8 -> 38.6; 6144x4096 lost split, 9.0 -> 10.3). Binary (8
        # slices a byte): on layers of <= 8192 rows, unsplit (8192x8192 19.0 -> 13.8, 6144x4096 9.7 -> 8.7); taller
        # ones keep the tile below (28672x4096 16.3 against 26.7).
        split_k = 1
        if fmt == "ternary":
            split_k = _split_k(triton.cdiv(m, 32) * triton.cdiv(n, 64), kp, 128, 2 * sms, min_steps=8, most=2)
        return _fitted(32, 64, 128, 4, 4, fmt, a8, x_bytes, device, split_k)
    if m <= 32:
        # Best of the H200 sweep on 28672x4096 (NOTES.md v3); weights are the wide (BLOCK_N) side.
        bm, bn, bkp, warps, stages = (16, 64, 128, 4, 4) if m <= 16 else (32, 128, 64, 4, 4)
        if _measured_weight_only(a8, fmt, x_bytes) and k < 2.5 * n:
            # weight-only (H100 sweeps, NOTES.md v12). 2-16 tokens: longer K steps on small layers, 128-row tiles on
            # 8 warps on tall ones (28672x4096 M=4 40 -> 33 us, 57344x8192 128 -> 109, 6144x4096 19 -> 13).
            # 17-32 tokens: 32 x 64 tiles, or 16-token ones with long K steps on small layers (57344x8192 M=32
            # 155 -> 113 us, 4096x4096 18 -> 16).
            if m <= 16 and (n <= 8192 or n >= 16384):
                bm, bn, bkp, warps, stages = (16, 64, 256, 4, 3) if n <= 8192 else (16, 128, 128, 8, 3)
                # v14 (code pairs): 128 registers a thread let two 8-warp programs share an SM (180 left one,
                # ncu: 12.5% occupancy): 28672x4096 M=4 33.8 -> 26.2 us, 57344x8192 110.5 -> 89.8
                regs = 0 if n <= 8192 else 128
            elif m > 16:
                bm, bn, bkp, warps, stages = (32, 64, 64, 4, 3) if n >= 6144 else (16, 64, 256, 4, 3)
        # Fill the GPU: narrower weight tiles, then split-K, while the tiles are fewer than the SMs
        # (H200, NOTES.md v4: a gain on every shape).
        while bn > 64 and triton.cdiv(m, bm) * triton.cdiv(n, bn) < sms:
            bn //= 2
        tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
        waves, min_steps = 1, 4
        if m <= 16 and k >= 2.5 * n:
            # rows much longer than the layer is tall (down projections): longer K steps and up to two waves
            # of split-K programs (H100, NOTES.md v9: 8192x28672 M=16 48 -> 38 us, 4096x14336 17 -> 14 us)
            bkp, stages, waves, min_steps = 256, 3, 2, 2
            if not a8 and long_rows:
                waves = 0  # no split
        split_k = _split_k(tiles, kp, bkp, waves * sms, min_steps, most=8)
    elif m > 256:
        bm, bn, bkp, warps, stages = 64, 256, 64, 8, 3  # best at M = 4096 on all 8 shapes of the v5 sweep
        if a8 and fmt == "ternary" and m > 1024 and n > 2560 and (m <= 4096 or k < 2.5 * n):
            # v18 (H100 bench, quantization included): 128 x 128 x 64 on 4 warps beyond 1024 tokens, 2-7% faster
            # than 64 x 256 (published run, M=4096: 28672x4096 828 -> 782 us, 57344x8192 3023 -> 2956, 8192x28672
            # 1616 -> 1585, 13824x2560 291 -> 275; M=8192 8192x8192 988 -> 920). Not at 1024 tokens (cmd5:
            # 57344x8192 788 -> 880, 10240x8192 158 -> 175), on 2560-row layers (2560x6912 M=4096 155 -> 167) nor on
            # K-heavy ones beyond 4096 tokens (8192x28672 M=8192 3323 -> 3481).
            bm, bn, bkp, warps, stages = 128, 128, 64, 4, 3
        elif a8 and fmt == "ternary" and m <= 1024 and n * k < 64 * 2**20:
            # Small and mid ternary layers at M = 257-1024 (H100 sweep, NOTES.md v12): 128 x 128 tiles on 4 warps,
            # or 64-token tiles where those make too few programs (2560-row BitNet layers: 2560x6912 60 -> 51 us,
            # 4096x14336 122 -> 109 us, quantization included). Binary layers (8 slices a byte) lost 20-30% with
            # these tiles in the v12 bench run and keep the large one.
            if triton.cdiv(m, 128) * triton.cdiv(n, 128) < 1.5 * sms:
                bm, bn, bkp, warps, stages = 64, 128, 64, 4, 3
            else:
                bm, bn, bkp, warps, stages = 128, 128, 64, 4, 3
    else:
        # H100 sweep over 8 layer shapes (NOTES.md v5): the large tile wins where it makes enough
        # programs; layers with few output rows (N) get a smaller tile, and those whose K is much
        # longer than N share K among programs instead (split-K).
        if m <= 64:
            base, small, k_heavy = (64, 128, 64, 4, 4), (16, 64, 128, 4, 4), (32, 128, 128, 4, 4)
        else:
            base, small, k_heavy = (64, 256, 64, 8, 3), (32, 128, 128, 4, 4), (128, 128, 64, 8, 3)
        tiles = triton.cdiv(m, base[0]) * triton.cdiv(n, base[1])
        if k >= 2.5 * n and tiles < 2 * sms:
            bm, bn, bkp, warps, stages = k_heavy
            tiles = triton.cdiv(m, bm) * triton.cdiv(n, bn)
            split_k = _split_k(tiles, kp, bkp, 2 * sms, min_steps=2, most=4)
        elif tiles < sms // 2:
            bm, bn, bkp, warps, stages = small
        elif tiles < sms and m > 128:
            # less than one wave of the large tile: 128 x 128 (H100, NOTES.md v9: M=256 8192x8192 64 -> 40 us,
            # 6144x4096 36 -> 22 us)
            bm, bn, bkp, warps, stages = 128, 128, 64, 8, 3
        else:
            bm, bn, bkp, warps, stages = base
    return _fitted(bm, bn, bkp, warps, stages, fmt, a8, x_bytes, device, split_k, regs=regs)


@functools.lru_cache(maxsize=16)
def _sm_count(device: torch.device) -> int:
    try:
        return torch.cuda.get_device_properties(device).multi_processor_count
    except (AssertionError, RuntimeError):
        return 132


SAFE_GEMM = GemmConfig(64, 64, 32, group_m=8, num_warps=4, num_stages=2, fast_cvt=False, code_pairs=False)
"""Fits the shared memory of any CUDA GPU Triton supports; used when a chosen config does not."""
