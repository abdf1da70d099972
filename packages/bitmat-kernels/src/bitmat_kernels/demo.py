"""`python -m bitmat_kernels.demo`: quantize and pack a layer, run it, check it against the
reference, print sizes and errors. Runs on a CPU in seconds; on a GPU it runs the Triton kernels."""

from __future__ import annotations

import argparse
import logging

import torch

from . import binarize, bitmat_linear, pack, ternarize
from .backend import use_triton
from .ops.linear.reference import linear_reference

log = logging.getLogger("bitmat_kernels.demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bitmat_kernels.demo", description=__doc__)
    parser.add_argument("--out-features", type=int, default=1024)
    parser.add_argument("--in-features", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(args.seed)
    n, k = args.out_features, args.in_features
    w = torch.randn(n, k, device=device) * 0.02
    x = torch.randn(args.batch, k, device=device, dtype=dtype)
    path = "Triton kernels" if use_triton(x) else "pure-torch reference (no CUDA device)"
    print(f"bitmat-kernels demo: a {n}x{k} layer, batch {args.batch}, {dtype} on {device} via {path}")
    dense = x.float() @ w.T
    rows = []
    for name, bits, quantizer in (("ternary W1.58", 1.58, ternarize), ("binary W1", 1, binarize)):
        codes, scale = quantizer(w)
        packed = pack(codes, weight_bits=bits)
        for act in (8, None):
            y = bitmat_linear(x, packed, scale, in_features=k, weight_bits=bits, activation_bits=act)
            ref = linear_reference(
                x.cpu(),
                packed.cpu(),
                scale.cpu(),
                k,
                "ternary" if bits == 1.58 else "binary",
                act,
                None,
                accumulate_dtype=torch.float64,
            )
            kernel_err = ((y.double().cpu() - ref).norm() / ref.norm()).item()
            quant_err = ((y.double() - dense.double()).norm() / dense.double().norm()).item()
            rows.append((f"{name}{'A8' if act else ' weight-only'}", packed.numel(), kernel_err, quant_err))
    dense_bytes = n * k * 2
    print(f"\n{'mode':<24}{'weight bytes':>14}{'vs bf16':>9}{'err vs reference':>18}{'err vs float':>14}")
    for mode, nbytes, kerr, qerr in rows:
        print(f"{mode:<24}{nbytes:>14,}{dense_bytes / nbytes:>8.1f}x{kerr:>18.2e}{qerr:>14.3f}")
    print(
        f"\nbf16 weight: {dense_bytes:,} bytes. 'err vs reference' is the kernel against the float64 oracle;"
        "\n'err vs float' is what quantization costs on random weights (trained BitNet weights lose far less)."
    )
    worst = max(r[2] for r in rows)
    ok = worst < 1e-2
    print("check:", "PASS" if ok else "FAIL", f"(worst kernel error {worst:.1e})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
