"""Where the host time of an eager bitmat_linear call goes (CUDA GPU): per-call wall time of back-to-back eager
calls while the GPU is kept busy (so the host is the bottleneck), then a cProfile of the same calls.

    python packages/bitmat-kernels/scripts/host_overhead.py --out $OUT/host.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import bitmat_kernels as bk
import torch
import torch.nn.functional as F


def host_us(call, n: int = 300) -> float:
    """Per-call host microseconds: the GPU gets a long sleep kernel first, so launches only queue."""
    for _ in range(10):
        call()
    torch.cuda.synchronize()
    torch.cuda._sleep(int(2e9))  # ~1 s of GPU time: every launch below only enqueues
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    t = (time.perf_counter() - t0) / n * 1e6
    torch.cuda.synchronize()
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shape", default="4096x4096")
    ap.add_argument("--batch", default="1,16,1024")
    args = ap.parse_args()
    n, k = (int(v) for v in args.shape.split("x"))
    w = torch.randn(n, k, device="cuda") * 0.02
    codes, scale = bk.ternarize(w)
    packed = bk.pack_ternary(codes)
    wb = w.to(torch.bfloat16)
    lines = []
    for m in (int(v) for v in args.batch.split(",")):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        for name, call in {
            "cublas": lambda: F.linear(x, wb),
            "a8": lambda: bk.bitmat_linear(x, packed, scale, in_features=k),
            "a16": lambda: bk.bitmat_linear(x, packed, scale, in_features=k, activation_bits=None),
            "quantize_activations": lambda: bk.quantize_activations(x),
            "torch.empty": lambda: torch.empty(m, n, device="cuda", dtype=torch.bfloat16),
        }.items():
            with torch.no_grad():
                lines.append(f"M={m:5d} {name:22s} host {host_us(call):8.1f} us/call")
            print(lines[-1], flush=True)
        prof = cProfile.Profile()
        with torch.no_grad():
            torch.cuda._sleep(int(2e9))
            prof.enable()
            for _ in range(200):
                bk.bitmat_linear(x, packed, scale, in_features=k)
            prof.disable()
        torch.cuda.synchronize()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
        lines.append(f"--- cProfile, 200 A8 calls at M={m} (tottime) ---\n" + s.getvalue())
        print(lines[-1], flush=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
