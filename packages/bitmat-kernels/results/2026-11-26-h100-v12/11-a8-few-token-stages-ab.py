"""Experiment (GPU): A8 at M = 4 / 16, the 16 x 64 x 128 GEMM tile with 4 pipeline stages (the rule) against 3,
alternated five times in one process (the v12 sweep saw 3 stages 7% faster on 28672x4096 and 10% slower on
57344x8192). cuBLAS bf16 timed in the same rounds."""

import importlib.util
import json
import os
import statistics

import bitmat_kernels as bk
import torch
import torch.nn.functional as F
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.linear.kernel import linear_triton

spec = importlib.util.spec_from_file_location("sw", "packages/bitmat-kernels/scripts/gpu_sweep.py")
sw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sw)

out = os.environ.get("OUT", "/tmp")
key_gpu = configs.gpu_key(torch.device("cuda"))
gen = torch.Generator(device="cuda").manual_seed(0)
with open(f"{out}/few-token-stages-ab.jsonl", "w") as rec:
    for n, k in [(28672, 4096), (14336, 4096), (57344, 8192), (8192, 8192), (6144, 4096)]:
        w = torch.randn(n, k, device="cuda", generator=gen) * 0.02
        codes, scale = bk.ternarize(w)
        packed = bk.pack_ternary(codes)
        c = sw.copies_for(packed.numel())
        packs = [packed] + [packed.clone() for _ in range(c - 1)]
        dense = [w.to(torch.bfloat16) for _ in range(sw.copies_for(n * k * 2))]
        del w
        for m in [4, 16]:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
            times = {"cublas": [], "stages4": [], "stages3": []}
            ref = None
            for _ in range(5):
                times["cublas"].append(sw.graph_time_us(lambda i, x=x: F.linear(x, dense[i % len(dense)]), len(dense)))
                for stages in (4, 3):
                    cfg = configs.GemmConfig(16, 64, 128, num_warps=4, num_stages=stages)
                    configs.TUNED_GEMM[(key_gpu, "ternary", True, configs.m_bucket(m))] = cfg
                    y = linear_triton(x, packs[0], scale, k, "ternary", 8, None)
                    ref = y if ref is None else ref
                    assert torch.equal(y, ref)
                    t = sw.graph_time_us(lambda i, x=x: linear_triton(x, packs[i % c], scale, k, "ternary", 8, None), c)
                    times[f"stages{stages}"].append(t)
                    configs.TUNED_GEMM.clear()
            r = {"n": n, "k": k, "m": m, **{f"{key}_median": statistics.median(v) for key, v in times.items()}, **times}
            rec.write(json.dumps(r) + "\n")
            print(n, k, m, {key: round(statistics.median(v), 2) for key, v in times.items()}, flush=True)
