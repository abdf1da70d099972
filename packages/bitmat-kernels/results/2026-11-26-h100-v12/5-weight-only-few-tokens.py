"""Experiment (GPU): weight-only (bf16 activations) decode through the tensor-core GEMM (codes -> bf16 by byte
permutes, wgmma with the token padded to 16) against the CUDA-core GEMV, beside cuBLAS."""
import json, os, importlib.util
import torch, triton
import torch.nn.functional as F
import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kmod
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.linear.reference import linear_reference
spec = importlib.util.spec_from_file_location("sw", "packages/bitmat-kernels/scripts/gpu_sweep.py")
sw = importlib.util.module_from_spec(spec); spec.loader.exec_module(sw)
out = os.environ.get("OUT", "/tmp")
rec = open(f"{out}/exp_wo.jsonl", "w")
def emit(**d):
    rec.write(json.dumps(d) + "\n"); rec.flush(); print(d, flush=True)
G = configs.GemmConfig
CFGS = [G(16, 64, 128, num_warps=4, num_stages=4), G(16, 128, 128, num_warps=4, num_stages=3), G(16, 64, 256, num_warps=4, num_stages=3),
        G(16, 128, 64, num_warps=4, num_stages=4), G(16, 64, 128, num_warps=4, num_stages=4, split_k=2), G(16, 64, 128, num_warps=4, num_stages=4, split_k=4),
        G(16, 128, 128, num_warps=8, num_stages=3), G(16, 256, 64, num_warps=8, num_stages=3)]
orig = kmod.gemm_config
gen = torch.Generator(device="cuda").manual_seed(0)
for n, k in [(28672, 4096), (57344, 8192), (8192, 28672), (4096, 4096), (14336, 4096), (4096, 14336), (6144, 4096)]:
    ncopy = sw.copies_for(n * k // 4)
    w = torch.randint(-1, 2, (n, k), device="cuda", dtype=torch.int8, generator=gen)
    packs = [bk.pack_ternary(w) for _ in range(ncopy)]
    wsc = torch.rand(1, device="cuda") + 0.5
    dense = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(sw.copies_for(n * k * 2))]
    for m in [1, 4, 16]:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        ref = linear_reference(x, packs[0], wsc, k, "ternary", None, None, accumulate_dtype=torch.float64)
        def err(y):
            return ((y.double() - ref).norm() / ref.norm()).item()
        res = dict(n=n, k=k, m=m)
        res["cublas"] = round(sw.graph_time_us(lambda i: F.linear(x, dense[i % len(dense)]), len(dense)), 1)
        res["auto"] = round(sw.graph_time_us(lambda i: kmod.linear_triton(x, packs[i % ncopy], wsc, k, "ternary", None, None), ncopy), 1)
        res["auto_err"] = err(kmod.linear_triton(x, packs[0], wsc, k, "ternary", None, None))
        for c in CFGS:
            kmod.gemm_config = lambda *a, c=c, **kw: c
            try:
                y = kmod.linear_triton(x, packs[0], wsc, k, "ternary", None, None, path="gemm")
                e = err(y)
                ys = [kmod.linear_triton(x, packs[0], wsc, k, "ternary", None, None, path="gemm") for _ in range(5)]
                rep = all(torch.equal(ys[0], t) for t in ys[1:])
                t = sw.graph_time_us(lambda i: kmod.linear_triton(x, packs[i % ncopy], wsc, k, "ternary", None, None, path="gemm"), ncopy)
                res[f"g{c.block_m}x{c.block_n}x{c.block_kp}w{c.num_warps}s{c.num_stages}k{c.split_k}"] = (round(t, 1), f"{e:.1e}", rep)
            except Exception as ex:
                res[f"g{c.block_m}x{c.block_n}x{c.block_kp}w{c.num_warps}s{c.num_stages}k{c.split_k}"] = repr(ex)[:80]
            finally:
                kmod.gemm_config = orig
        emit(kind="wo", **res)
