"""Experiment (GPU): one tl.dot of K = 4*BKP an iteration on slice-interleaved activations, against the
current 4-dot GEMM, both on pre-quantized activations, beside the quantizer, torch._int_mm and cuBLAS bf16."""
import json, os, sys, time, importlib.util
import torch, triton, triton.language as tl
import torch.nn.functional as F
import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kmod
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.quantize.kernel import quantize_activations_triton
spec = importlib.util.spec_from_file_location("sw", "packages/bitmat-kernels/scripts/gpu_sweep.py")
sw = importlib.util.module_from_spec(spec); spec.loader.exec_module(sw)
stored_slice, finish_output = kmod.stored_slice, kmod.finish_output

@triton.jit
def join_gemm(x_ptr, x_scale_ptr, row_sum_ptr, w_ptr, w_scale_ptr, y_ptr, M, N, KP, w_scale_stride,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KP: tl.constexpr, GROUP_M: tl.constexpr, USE_PTX: tl.constexpr = True):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M); num_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_n
    first_m = (pid // group) * GROUP_M
    group_m = min(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % group_m
    pid_n = (pid % group) // group_m
    rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    rj = tl.arange(0, BLOCK_KP)
    rr = tl.arange(0, 4 * BLOCK_KP)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.int32)
    for j0 in range(0, KP, BLOCK_KP):
        j = j0 + rj
        p = tl.load(w_ptr + rn[:, None] * KP + j[None, :], mask=(rn[:, None] < N) & (j[None, :] < KP), other=0)
        t = tl.reshape(tl.join(tl.join(stored_slice(p, 0, 2, USE_PTX), stored_slice(p, 2, 2, USE_PTX)),
                               tl.join(stored_slice(p, 1, 2, USE_PTX), stored_slice(p, 3, 2, USE_PTX))), (BLOCK_N, 4 * BLOCK_KP))
        r = 4 * j0 + rr
        xs = tl.load(x_ptr + rm[None, :] * (4 * KP) + r[:, None], mask=(rm[None, :] < M) & (r[:, None] < 4 * KP), other=0)
        acc = tl.dot(t, xs, acc, out_dtype=tl.int32)
    row_sum = tl.load(row_sum_ptr + rm, mask=rm < M, other=0)[None, :]
    x_scale = tl.load(x_scale_ptr + rm, mask=rm < M, other=0.0)[None, :]
    y = finish_output(acc, row_sum, x_scale, rn[:, None], N, w_scale_ptr, w_scale_stride, w_scale_ptr, False, 2)
    tl.store(y_ptr + rm[None, :] * N + rn[:, None], y.to(y_ptr.dtype.element_ty), mask=(rm[None, :] < M) & (rn[:, None] < N))

out = os.environ.get("OUT", "/tmp")
rec = open(f"{out}/exp_join.jsonl", "w")
def emit(**d):
    rec.write(json.dumps(d) + "\n"); rec.flush(); print(d, flush=True)
emit(kind="env", gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__, commit=os.environ.get("GIT_COMMIT"))
gen = torch.Generator(device="cuda").manual_seed(0)
TILES = [(64, 256, 32, 8, 3), (64, 256, 64, 8, 3), (64, 256, 32, 8, 4), (128, 128, 32, 4, 4), (128, 128, 64, 4, 3),
         (128, 256, 32, 8, 3), (128, 128, 32, 8, 4), (256, 128, 32, 8, 3)]
shapes = [(28672, 4096), (8192, 28672), (4096, 4096), (57344, 8192)]
batches = [int(b) for b in os.environ.get("BATCHES", "2048,4096,8192").split(",")]
for n, k in shapes:
    w = torch.randint(-1, 2, (n, k), device="cuda", dtype=torch.int8, generator=gen)
    from bitmat_kernels import pack_ternary
    ncopy = sw.copies_for(n * k // 4)
    packs = [pack_ternary(w) for _ in range(ncopy)]
    kp = packs[0].shape[1]
    wsc = torch.rand(n, device="cuda", dtype=torch.float32) + 0.5
    dense = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(sw.copies_for(n * k * 2))]
    wi8 = (w + 1).to(torch.int8)  # stored codes, for the int8 reference
    for m in batches:
        if n * k * m > 57344 * 8192 * 4096:
            continue
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        xq, xs, rs = quantize_activations_triton(x, 1e-5, with_sum=True)
        xp = xq.view(m, 4, kp).transpose(1, 2).reshape(m, 4 * kp).contiguous()
        y0 = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
        cfg = configs.gemm_config(m, n, k, "ternary", True, x.device, x_bytes=2)
        common = dict(HAS_BIAS=False, BITS=2, A8=True, USE_PTX=True)
        def cur(i, y=y0):
            kmod._launch_gemm(cfg, (xq, xs, rs, packs[i % ncopy], wsc, wsc, y, m, n, k, kp, 1), torch.bfloat16, common, False)
        cur(0); ref = y0.clone()
        res = dict(n=n, k=k, m=m, cfg=str(cfg))
        res["cublas"] = sw.graph_time_us(lambda i: F.linear(x, dense[i % len(dense)]), len(dense))
        res["quant"] = sw.graph_time_us(lambda i: quantize_activations_triton(x, 1e-5, with_sum=True), 4)
        res["full"] = sw.graph_time_us(lambda i: kmod.linear_triton(x, packs[i % ncopy], wsc, k, "ternary", 8, None), ncopy)
        res["cur_gemm"] = sw.graph_time_us(cur, ncopy)
        res["int_mm"] = sw.graph_time_us(lambda i: torch._int_mm(xq, wi8.t()), 2)
        for bm, bn, bkp, warps, stages in TILES:
            y1 = torch.empty_like(y0)
            def jg(i, y=y1, bm=bm, bn=bn, bkp=bkp, warps=warps, stages=stages):
                grid = (triton.cdiv(m, bm) * triton.cdiv(n, bn),)
                join_gemm[grid](xp, xs, rs, packs[i % ncopy], wsc, y, m, n, kp, 1, BLOCK_M=bm, BLOCK_N=bn, BLOCK_KP=bkp,
                                GROUP_M=8, num_warps=warps, num_stages=stages)
            try:
                jg(0)
                torch.cuda.synchronize()
                eq = torch.equal(y1, ref)
                t = sw.graph_time_us(jg, ncopy)
            except Exception as e:
                res[f"join{bm}x{bn}x{bkp}w{warps}s{stages}"] = repr(e)[:120]
                continue
            res[f"join{bm}x{bn}x{bkp}w{warps}s{stages}"] = (round(t, 1), eq)
        emit(kind="point", **res)
