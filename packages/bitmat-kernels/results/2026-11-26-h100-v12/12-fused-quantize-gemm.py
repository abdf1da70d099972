"""Experiment (GPU): hide the A8 quantizer behind the GEMM. One persistent kernel takes tasks from a global counter
in a fixed order: quantize the rows of token block 0, then for each block b: quantize block b+1, and the GEMM tiles of
block b. A GEMM tile spins on its block's flag (set with release semantics after the rows are written), so
quantization of later blocks runs on some SMs while others multiply. Every task a tile waits for was claimed before
it by a running program, so it cannot deadlock; under the interpreter program 0 does every task in order.

Compared, bit for bit and in time, with the two-kernel bitmat_linear (quantizer + GEMM, PDL) on the same tile."""

import importlib.util
import json
import os
import sys

import bitmat_kernels as bk
import torch
import triton
import triton.language as tl
from bitmat_kernels.backend import interpreter_enabled
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.linear.kernel import finish_output, linear_triton, stored_slice
from bitmat_kernels.ops.quantize.kernel import nan_aware_max, quantize_row, token_absmax, track_absmax  # noqa: F401


@triton.jit
def fused_quantize_gemm(
    x_ptr, xq_ptr, x_scale_ptr, row_sum_ptr, flags_ptr, counter_ptr, w_ptr, w_scale_ptr, y_ptr,
    M, N, K, KP, eps,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_KP: tl.constexpr, QROWS: tl.constexpr, QBLOCK: tl.constexpr,
    USE_PTX: tl.constexpr,
):  # fmt: skip
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    QT: tl.constexpr = BLOCK_M // QROWS  # quantize tasks a token block
    period = QT + num_n
    total = QT + num_m * period
    rj = tl.arange(0, BLOCK_KP)
    task = tl.atomic_add(counter_ptr, 1)
    while task < total:
        # task -> (is_quantize, block, index)
        if task < QT:
            is_q = True
            blk = 0
            idx = task
        else:
            t = task - QT
            blk = t // period
            r = t % period
            is_q = r < QT
            idx = r
            if is_q:
                blk = blk + 1
            else:
                idx = r - QT
        if is_q:
            if blk < num_m:
                for rr in range(0, QROWS):
                    row = blk * BLOCK_M + idx * QROWS + rr
                    if row < M:
                        x_row = x_ptr + row.to(tl.int64) * K
                        q_row = xq_ptr + row.to(tl.int64) * K
                        total_q, scale = quantize_row(x_row, q_row, K, token_absmax(x_row, K, QBLOCK), eps, QBLOCK)
                        tl.store(row_sum_ptr + row, total_q)
                        tl.store(x_scale_ptr + row, scale)
                tl.debug_barrier()  # every thread's stores of this task before the flag
                tl.atomic_add(flags_ptr + blk, 1, sem="release", scope="gpu")
        else:
            # wait for the QT quantize tasks of this token block
            while tl.atomic_add(flags_ptr + blk, 0, sem="acquire", scope="gpu") < QT:
                pass
            rm = (blk * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
            rn = (idx * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
            acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.int32)
            for j0 in range(0, KP, BLOCK_KP):
                j = j0 + rj
                p = tl.load(w_ptr + rn[:, None] * KP + j[None, :], mask=(rn[:, None] < N) & (j[None, :] < KP), other=0)
                for s in tl.static_range(4):
                    k = s * KP + j
                    xs = tl.load(xq_ptr + rm[None, :] * K + k[:, None],
                                 mask=(rm[None, :] < M) & (j[:, None] < KP) & (k[:, None] < K), other=0)  # fmt: skip
                    t8 = stored_slice(p, s, 2, USE_PTX)
                    if USE_PTX:
                        acc = tl.dot(t8, xs, acc, out_dtype=tl.int32)
                    else:
                        acc = tl.dot(t8.to(tl.float32), xs.to(tl.float32), acc.to(tl.float32), input_precision="ieee").to(tl.int32)
            row_sum = tl.load(row_sum_ptr + rm, mask=rm < M, other=0)[None, :]
            x_scale = tl.load(x_scale_ptr + rm, mask=rm < M, other=0.0)[None, :]
            y = finish_output(acc, row_sum, x_scale, rn[:, None], N, w_scale_ptr, 1, w_scale_ptr, False, 2)
            tl.store(y_ptr + rm[None, :] * N + rn[:, None], y.to(y_ptr.dtype.element_ty),
                     mask=(rm[None, :] < M) & (rn[:, None] < N))  # fmt: skip
        task = tl.atomic_add(counter_ptr, 1)


def fused_linear(x, packed, w_scale, k, bm=128, bn=128, bkp=64, warps=4, stages=3, qrows=16, programs=None):
    m = x.shape[0]
    n, kp = packed.shape
    dev = x.device
    xq = torch.empty(m, k, dtype=torch.int8, device=dev)
    x_scale = torch.empty(m, dtype=torch.float32, device=dev)
    row_sum = torch.empty(m, dtype=torch.int32, device=dev)
    ws = torch.zeros(triton.cdiv(m, bm) + 1, dtype=torch.int32, device=dev)  # flags, then the task counter
    y = torch.empty(m, n, dtype=x.dtype, device=dev)
    if programs is None:
        programs = 1 if interpreter_enabled() else 2 * torch.cuda.get_device_properties(dev).multi_processor_count
    qblock = min(triton.next_power_of_2(k), 4096 if not interpreter_enabled() else 64)
    fused_quantize_gemm[(programs,)](
        x, xq, x_scale, row_sum, ws, ws[-1:], packed, w_scale.reshape(-1), y, m, n, k, kp, 1e-5,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_KP=bkp, QROWS=qrows, QBLOCK=qblock, USE_PTX=not interpreter_enabled(),
        num_warps=warps, num_stages=stages,
    )  # fmt: skip
    return y


if __name__ == "__main__":
    if interpreter_enabled():  # CPU check of the task logic and the numbers
        torch.manual_seed(0)
        for m, n, k in [(70, 96, 256), (33, 64, 128)]:
            w = torch.randint(-1, 2, (n, k), dtype=torch.int8)
            pk = bk.pack_ternary(w)
            sc = torch.rand(n) + 0.5
            x = torch.randn(m, k, dtype=torch.bfloat16)
            y = fused_linear(x, pk, sc, k, bm=32, bn=32, bkp=16, qrows=8)
            configs.TUNED_GEMM.clear()
            ref = linear_triton(x, pk, sc, k, "ternary", 8, None, path="gemm")
            err = ((y.double() - ref.double()).norm() / ref.double().norm()).item()
            print(m, n, k, "rel diff to the two-kernel path", err)
        sys.exit(0)
    spec = importlib.util.spec_from_file_location("sw", "packages/bitmat-kernels/scripts/gpu_sweep.py")
    sw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sw)
    out = os.environ.get("OUT", "/tmp")
    key_gpu = configs.gpu_key(torch.device("cuda"))
    gen = torch.Generator(device="cuda").manual_seed(0)
    with open(f"{out}/fused-quantize-gemm.jsonl", "w") as rec:
        for n, k in [(4096, 4096), (28672, 4096), (8192, 28672), (14336, 4096)]:
            w = torch.randn(n, k, device="cuda", generator=gen) * 0.02
            codes, scale = bk.ternarize(w)
            packed = bk.pack_ternary(codes)
            c = sw.copies_for(packed.numel())
            packs = [packed] + [packed.clone() for _ in range(c - 1)]
            dense = [w.to(torch.bfloat16) for _ in range(sw.copies_for(n * k * 2))]
            del w
            for m in [2048, 4096, 8192]:
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
                res = {"n": n, "k": k, "m": m}
                res["cublas"] = sw.graph_time_us(lambda i, x=x, d=dense: torch.nn.functional.linear(x, d[i % len(d)]), len(dense))
                res["auto"] = sw.graph_time_us(lambda i, x=x: linear_triton(x, packs[i % c], scale, k, "ternary", 8, None), c)
                configs.TUNED_GEMM[(key_gpu, "ternary", True, configs.m_bucket(m))] = configs.GemmConfig(
                    128, 128, 64, num_warps=4, num_stages=3
                )
                ref = linear_triton(x, packed, scale, k, "ternary", 8, None)
                res["two_kernel_128x128"] = sw.graph_time_us(
                    lambda i, x=x: linear_triton(x, packs[i % c], scale, k, "ternary", 8, None), c
                )
                configs.TUNED_GEMM.clear()
                for qrows in (8, 16):
                    for progs in (132, 264):
                        key = f"fused_q{qrows}_p{progs}"
                        try:
                            y = fused_linear(x, packed, scale, k, qrows=qrows, programs=progs)
                            torch.cuda.synchronize()
                            res[key + "_equal"] = torch.equal(y, ref)
                            res[key] = sw.graph_time_us(
                                lambda i, x=x, q=qrows, p=progs: fused_linear(x, packs[i % c], scale, k, qrows=q, programs=p), c
                            )
                        except Exception as e:  # noqa: BLE001
                            res[key] = repr(e)[:200]
                rec.write(json.dumps(res) + "\n")
                rec.flush()
                print({kk: (round(v, 1) if isinstance(v, float) else v) for kk, v in res.items()}, flush=True)
