"""Experiment (GPU): the A8 ternary GEMM as a persistent kernel (a fixed grid looping over output tiles, so one
tile's epilogue overlaps the next tile's loads), against the current one-program-per-tile kernel. Both on the same
pre-quantized activations; outputs must be bit-identical."""

import importlib.util
import json
import os

import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kmod
import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.quantize.kernel import quantize_activations_triton

spec = importlib.util.spec_from_file_location("sw", "packages/bitmat-kernels/scripts/gpu_sweep.py")
sw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sw)
stored_slice, finish_output = kmod.stored_slice, kmod.finish_output


@triton.jit
def persistent_gemm(x_ptr, x_scale_ptr, row_sum_ptr, w_ptr, w_scale_ptr, y_ptr, M, N, K, KP,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KP: tl.constexpr, GROUP_M: tl.constexpr,
                    NUM_PROGS: tl.constexpr, FLATTEN: tl.constexpr):  # fmt: skip
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    num_tiles = num_m * num_n
    group = GROUP_M * num_n
    rj = tl.arange(0, BLOCK_KP)
    for tile in tl.range(tl.program_id(0), num_tiles, NUM_PROGS, flatten=FLATTEN):
        first_m = (tile // group) * GROUP_M
        group_m = min(num_m - first_m, GROUP_M)
        pid_m = first_m + (tile % group) % group_m
        pid_n = (tile % group) // group_m
        rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
        rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.int32)
        for j0 in range(0, KP, BLOCK_KP):
            j = j0 + rj
            p = tl.load(w_ptr + rn[:, None] * KP + j[None, :], mask=(rn[:, None] < N) & (j[None, :] < KP), other=0)
            for s in tl.static_range(4):
                k = s * KP + j
                xs = tl.load(x_ptr + rm[None, :] * K + k[:, None],
                             mask=(rm[None, :] < M) & (j[:, None] < KP) & (k[:, None] < K), other=0)  # fmt: skip
                acc = tl.dot(stored_slice(p, s, 2, True), xs, acc, out_dtype=tl.int32)
        row_sum = tl.load(row_sum_ptr + rm, mask=rm < M, other=0)[None, :]
        x_scale = tl.load(x_scale_ptr + rm, mask=rm < M, other=0.0)[None, :]
        y = finish_output(acc, row_sum, x_scale, rn[:, None], N, w_scale_ptr, 1, w_scale_ptr, False, 2)
        tl.store(y_ptr + rm[None, :] * N + rn[:, None], y.to(y_ptr.dtype.element_ty),
                 mask=(rm[None, :] < M) & (rn[:, None] < N))  # fmt: skip


out = os.environ.get("OUT", "/tmp")
with open(f"{out}/persistent.jsonl", "w") as rec:

    def emit(**d):
        rec.write(json.dumps(d) + "\n")
        rec.flush()
        print(d, flush=True)

    emit(kind="env", gpu=torch.cuda.get_device_name(), triton=triton.__version__, commit=os.environ.get("GIT_COMMIT"))
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    gen = torch.Generator(device="cuda").manual_seed(0)
    common = dict(HAS_BIAS=False, BITS=2, A8=True, USE_PTX=True)
    variants = [(bm, bn, bkp, w, st, progs, fl) for (bm, bn, bkp, w, st) in [(64, 256, 64, 8, 3), (128, 128, 64, 4, 3)]
                for progs in [sms, 2 * sms] for fl in [False, True]]  # fmt: skip
    for n, k in [(28672, 4096), (8192, 28672), (4096, 4096)]:
        ncopy = sw.copies_for(n * k // 4)
        w = torch.randint(-1, 2, (n, k), device="cuda", dtype=torch.int8, generator=gen)
        packs = [bk.pack_ternary(w) for _ in range(ncopy)]
        kp = packs[0].shape[1]
        wsc = torch.rand(n, device="cuda") + 0.5
        dense = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(sw.copies_for(n * k * 2))]
        for m in [2048, 4096, 8192]:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
            xq, xs, rs = quantize_activations_triton(x, 1e-5, with_sum=True)
            y0 = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
            cfg = configs.gemm_config(m, n, k, "ternary", True, x.device, x_bytes=2)

            def cur(i, y=y0, cfg=cfg, xq=xq, xs=xs, rs=rs, packs=packs, m=m, n=n, k=k, kp=kp, ncopy=ncopy, wsc=wsc):
                args = (xq, xs, rs, packs[i % ncopy], wsc, wsc, y, m, n, k, kp, 1)
                kmod._launch_gemm(cfg, args, torch.bfloat16, common, False)

            cur(0)
            ref = y0.clone()
            res = dict(n=n, k=k, m=m, cfg=str(cfg))
            res["cublas"] = round(sw.graph_time_us(lambda i, x=x, d=dense: F.linear(x, d[i % len(d)]), len(dense)), 1)
            res["triton_gemm"] = round(sw.graph_time_us(cur, ncopy), 1)
            for bm, bn, bkp, warps, stages, progs, fl in variants:
                y1 = torch.empty_like(y0)

                def pg(i, y=y1, bm=bm, bn=bn, bkp=bkp, warps=warps, stages=stages, progs=progs, fl=fl,
                       xq=xq, xs=xs, rs=rs, packs=packs, m=m, n=n, k=k, kp=kp, ncopy=ncopy, wsc=wsc):  # fmt: skip
                    persistent_gemm[(progs,)](xq, xs, rs, packs[i % ncopy], wsc, y, m, n, k, kp, BLOCK_M=bm,
                                              BLOCK_N=bn, BLOCK_KP=bkp, GROUP_M=8, NUM_PROGS=progs, FLATTEN=fl,
                                              num_warps=warps, num_stages=stages)  # fmt: skip

                key = f"p{bm}x{bn}x{bkp}w{warps}s{stages}g{progs}{'f' if fl else ''}"
                try:
                    pg(0)
                    torch.cuda.synchronize()
                    res[key] = (round(sw.graph_time_us(pg, ncopy), 1), torch.equal(y1, ref))
                except Exception as e:  # a variant that does not compile
                    res[key] = repr(e)[:100]
            emit(kind="point", **res)
