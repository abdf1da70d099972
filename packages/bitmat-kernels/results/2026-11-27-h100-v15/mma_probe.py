"""v15: the tensor-core GEMV (path="mma") at 1-16 tokens: error against the float64 oracle, then per-call time (CUDA
graph over weight copies past L2, median) for several configs, beside the current auto path and cuBLAS bf16."""

import argparse
import json
import sys

import bitmat_kernels as bk
import torch
import torch.nn.functional as F
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.linear.kernel import linear_triton
from bitmat_kernels.ops.linear.reference import linear_reference

sys.path.insert(0, "packages/bitmat-kernels/scripts")
from gpu_sweep import copies_for, graph_time_us  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--shapes", default="28672x4096,57344x8192,8192x28672,4096x4096")
ap.add_argument("--batch", default="1,4,16")
ap.add_argument("--cfgs", default="4x1x2,4x1x4")  # ROW_WARPS x STAGES x CHUNKS
ap.add_argument("--fmts", default="ternary")
ap.add_argument("--dtypes", default="bf16")
args = ap.parse_args()
out = open(args.out, "a")
gen = torch.Generator(device="cuda").manual_seed(0)
print(torch.cuda.get_device_name(), torch.__version__, flush=True)
for shape in args.shapes.split(","):
    n, k = (int(v) for v in shape.split("x"))
    w = torch.randn(n, k, device="cuda", generator=gen) * 0.02
    wb16 = w.to(torch.bfloat16)
    c_dense = copies_for(wb16.numel() * 2)
    dense = [wb16] + [wb16.clone() for _ in range(c_dense - 1)]
    for fmt in args.fmts.split(","):
        codes, scale = (bk.ternarize if fmt == "ternary" else bk.binarize)(w, per_channel=True)
        packed = bk.pack(codes, weight_bits=1.58 if fmt == "ternary" else 1)
        c = copies_for(packed.numel())
        ws = [packed] + [packed.clone() for _ in range(c - 1)]
        for dt in args.dtypes.split(","):
            dtype = torch.bfloat16 if dt == "bf16" else torch.float16
            for m in (int(v) for v in args.batch.split(",")):
                x = torch.randn(m, k, device="cuda", dtype=dtype, generator=gen) + 1.0  # mean 1: offsets matter
                bias = torch.randn(n, device="cuda", dtype=dtype, generator=gen)
                ref = linear_reference(x, packed, scale, k, fmt, None, bias, accumulate_dtype=torch.float64)
                t_cublas = graph_time_us(lambda i: F.linear(x.to(torch.bfloat16), dense[i % c_dense]), c_dense)
                rec = dict(n=n, k=k, m=m, fmt=fmt, dtype=dt, cublas_us=t_cublas)
                y = linear_triton(x, packed, scale, k, fmt, None, bias)
                rec["auto_us"] = graph_time_us(lambda i: linear_triton(x, ws[i % c], scale, k, fmt, None, bias), c)
                rec["auto_err"] = ((y.double() - ref).norm() / ref.norm()).item()
                for cfg in args.cfgs.split(","):
                    rw, st, ch = (int(v) for v in cfg.split("x"))
                    key = (configs.gpu_key(x.device), fmt, configs.m_bucket(m))
                    configs.TUNED_MMA_GEMV[key] = configs.MmaGemvConfig(rw, st, ch)
                    try:
                        ys = [linear_triton(x, packed, scale, k, fmt, None, bias, path="mma") for _ in range(5)]
                        err = ((ys[0].double() - ref).norm() / ref.norm()).item()
                        same = all(torch.equal(ys[0], y_) for y_ in ys[1:])
                        t = graph_time_us(lambda i: linear_triton(x, ws[i % c], scale, k, fmt, None, bias, path="mma"), c)
                        rec[f"mma_{cfg}"] = (round(t, 2), err, same)
                    except Exception as e:
                        rec[f"mma_{cfg}"] = repr(e)[:200]
                configs.TUNED_MMA_GEMV.clear()
                out.write(json.dumps(rec) + "\n")
                out.flush()
                print(json.dumps(rec), flush=True)
