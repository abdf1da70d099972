"""v16 probe: one weight-only token as activation planes on the A8 GEMV (path planes-gemv) at several tiles, against
the weight-only GEMV (decode), the planes on the GEMM (planes-gemm) and A8 itself, same process. JSON lines out.
Needs the planes-gemv path of commit 9162f3d (removed after this probe: it lost everywhere, NOTES.md v16)."""

import argparse
import importlib.util
import json
from pathlib import Path

import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kmod
import torch
from bitmat_kernels.ops.linear.configs import DecodeConfig
from bitmat_kernels.ops.linear.reference import linear_reference

spec = importlib.util.spec_from_file_location("gpu_sweep", Path(__file__).parents[2] / "scripts" / "gpu_sweep.py")
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--shapes", default="28672x4096,8192x28672,8192x8192,4096x4096")
ap.add_argument("--fmts", default="ternary,binary")
ap.add_argument("--tiles", default="16x128x4,16x64x4,8x128x4,4x256x4,32x64x4,8x64x2")
args = ap.parse_args()
out = open(args.out, "a")
real_decode_config = kmod.decode_config
gen = torch.Generator(device="cuda").manual_seed(0)
for shape in args.shapes.split(","):
    n, k = (int(v) for v in shape.split("x"))
    w = torch.randn(n, k, device="cuda", generator=gen) * 0.02
    x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    for fmt in args.fmts.split(","):
        codes, scale = (bk.ternarize if fmt == "ternary" else bk.binarize)(w)
        packed = bk.pack(codes, weight_bits=1.58 if fmt == "ternary" else 1)
        c = sweep.copies_for(packed.numel())
        ws = [packed] + [packed.clone() for _ in range(c - 1)]
        ref = linear_reference(x, packed, scale, k, fmt, None, None, accumulate_dtype=torch.float64)
        runs = [("decode", None, None), ("planes-gemm", None, None), ("a8", None, 8)]
        runs += [("planes-gemv", t, None) for t in args.tiles.split(",")]
        for path, tile, ab in runs:
            if tile:
                bn, bw, warps = (int(v) for v in tile.split("x"))
                kmod.decode_config = lambda *a, _c=DecodeConfig(bn, bw, warps, 1, False), **kw: _c
            try:
                p = "auto" if path == "a8" else path
                y = kmod.linear_triton(x, ws[0], scale, k, fmt, ab, None, path=p)
                err = ((y.double() - ref).norm() / ref.norm()).item()
                t = sweep.graph_time_us(lambda i: kmod.linear_triton(x, ws[i % c], scale, k, fmt, ab, None, path=p), c)
                rec = dict(n=n, k=k, fmt=fmt, path=path, tile=tile, us=t, err=err)
            except Exception as e:  # noqa: BLE001 - a probe records failures
                rec = dict(n=n, k=k, fmt=fmt, path=path, tile=tile, error=repr(e)[:300])
            finally:
                kmod.decode_config = real_decode_config
            out.write(json.dumps(rec) + "\n")
            out.flush()
            print(rec, flush=True)
