"""Kernel development sweep on a CUDA GPU: correctness at real sizes, then per-call times of
bitmat_linear (default configs and candidate configs) beside cuBLAS bf16 in the same process.

Timing follows DESIGN §6: one CUDA graph replays the op over enough weight copies to exceed L2,
per-call time = replay time / copies, median over replays. Results go to --out as JSON lines.
This is the kernel author's tuning tool; published numbers come from bitmat-bench.

    python packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep.jsonl [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kmod
import torch
import torch.nn.functional as F
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.linear.kernel import linear_triton
from bitmat_kernels.ops.linear.reference import linear_reference

L2_BYTES = 50 * 2**20


def graph_time_us(call, copies: int, replays: int = 15) -> float:
    """Median per-call microseconds of call(i) for i over copies, from CUDA-graph replays."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for i in range(copies):
            call(i)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(copies):
            call(i)
    for _ in range(3):
        graph.replay()
    times = []
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1000 / copies)
    del graph
    return statistics.median(times)


def copies_for(nbytes: int) -> int:
    return max(2, min(64, math.ceil(3 * L2_BYTES / max(nbytes, 1))))


def copy_bandwidth() -> float:
    src = torch.empty(2**28, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    t = graph_time_us(lambda i: dst.copy_(src), 1, 10)
    return 2 * src.numel() * 4 / (t * 1e-6) / 1e12  # TB/s, bytes read + written


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--shapes", default="4096x4096,28672x4096,57344x8192,3840x2560")
    ap.add_argument("--batch", default="1,4,16,64,256,1024,4096")
    ap.add_argument("--sweep", default="decode,gemm")
    ap.add_argument("--sweep-shapes", default="28672x4096")
    ap.add_argument("--sweep-batch", default="1,4,16,256,4096")
    ap.add_argument("--impls", default="A8W158,A16W158,A8W1")
    ap.add_argument("--decode-max", type=int, default=0, help="also time the GEMV up to this M (path=decode)")
    ap.add_argument("--dequant", action="store_true", help="also time weight-only as dequantize + cuBLAS")
    ap.add_argument(
        "--extra-paths",
        default="",
        help="weight-only: also time these linear_triton paths (e.g. planes) up to --extra-paths-max-m",
    )
    ap.add_argument("--extra-paths-max-m", type=int, default=64)
    ap.add_argument("--sweep-modes", default="A8", help="GEMM sweep modes: A8, A16 or both (A8,A16)")
    ap.add_argument(
        "--warp-specialize", default="0", help="GEMM sweep: 0, 1 or 0,1 (Triton's automatic warp specialization)"
    )
    ap.add_argument(
        "--gemm-tiles", default="", help="GEMM sweep: only these BMxBNxBKPxWARPSxSTAGES tiles, comma-separated"
    )
    ap.add_argument("--code-pairs", default="1", help="GEMM sweep, weight-only: 0, 1 or 0,1 (the code-pair decode)")
    ap.add_argument("--gemm-max-registers", default="0", help="GEMM sweep: register caps (0: none)")
    ap.add_argument("--gemm-one-token", action="store_true", help="GEMM sweep: also at M = 1 (path=gemm)")
    ap.add_argument("--sweep-format", default="ternary", choices=["ternary", "binary"], help="weights of the sweeps")
    ap.add_argument("--split-k", default="1,2,4", help="split-K factors tried while the tiles are fewer than 2x SMs")
    ap.add_argument("--decode-block-n", default="8,16,32", help="GEMV sweep: output rows per program")
    ap.add_argument("--decode-block-w-a8", default="64,128", help="GEMV sweep, A8: int32 words a row a step")
    ap.add_argument("--decode-block-w-a16", default="128,256", help="GEMV sweep, weight-only: bytes a row a step")
    ap.add_argument("--decode-stages", default="1,2", help="GEMV sweep: pipeline stages")
    ap.add_argument("--decode-warps", default="4", help="GEMV sweep: warps a program")
    ap.add_argument("--decode-max-registers", default="0", help="GEMV sweep, weight-only M=1: register caps (0: none)")
    ap.add_argument("--decode-fused", default="0", help="GEMV sweep, A8: 0 quantizer kernel, 1 quantized in the GEMV")
    ap.add_argument("--quantize-warps", default="", help="also time M=1 A8 calls with the quantizer at these warps")
    args = ap.parse_args()
    out = open(args.out, "a")

    def emit(rec):
        rec["t"] = time.time()
        out.write(json.dumps(rec) + "\n")
        out.flush()

    dev = torch.cuda.get_device_name()
    bw = copy_bandwidth()
    env = dict(
        kind="env",
        gpu=dev,
        torch=torch.__version__,
        triton=__import__("triton").__version__,
        bitmat_kernels=bk.__version__,
        copy_tbps=bw,
        argv=sys.argv,
    )
    emit(env)
    print(env, flush=True)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    gen = torch.Generator(device="cuda").manual_seed(0)

    rows = []
    for n, k in shapes:
        w = torch.randn(n, k, device="cuda", generator=gen) * 0.02
        codes, scale = bk.ternarize(w)
        packed = bk.pack_ternary(codes)
        bcodes, bscale = bk.binarize(w)
        bpacked = bk.pack_binary(bcodes)
        wb16 = w.to(torch.bfloat16)
        del w
        c_dense = copies_for(wb16.numel() * 2)
        dense = [wb16] + [wb16.clone() for _ in range(c_dense - 1)]
        c_t = copies_for(packed.numel())
        tern = [packed] + [packed.clone() for _ in range(c_t - 1)]
        c_b = copies_for(bpacked.numel())
        binw = [bpacked] + [bpacked.clone() for _ in range(c_b - 1)]
        for m in batches:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
            t_cublas = graph_time_us(lambda i: F.linear(x, dense[i % c_dense]), c_dense)
            variants = {
                "A8W158": (tern, c_t, scale, "ternary", 8),
                "A16W158": (tern, c_t, scale, "ternary", None),
                "A8W1": (binw, c_b, bscale, "binary", 8),
                "A16W1": (binw, c_b, bscale, "binary", None),
            }
            variants = {k_: v for k_, v in variants.items() if k_ in args.impls.split(",")}
            for name, (ws, c, sc, fmt, ab) in variants.items():
                paths = ["auto"] + (["decode", "gemm"] if m <= args.decode_max else [])
                if ab is None and args.dequant and m > 1:
                    paths += ["dequant"]
                if ab is None and args.extra_paths and m <= args.extra_paths_max_m:
                    paths += args.extra_paths.split(",")
                for path in paths:
                    try:
                        kmod.DECODE_MAX_M = max(configs.DECODE_MAX_M, args.decode_max if path == "decode" else 0)
                        y = linear_triton(x, ws[0], sc, k, fmt, ab, None, path=path)
                        ref = linear_reference(x, ws[0], sc, k, fmt, ab, None, accumulate_dtype=torch.float64)
                        err = ((y.double() - ref).norm() / ref.norm()).item()
                        t = graph_time_us(lambda i: linear_triton(x, ws[i % c], sc, k, fmt, ab, None, path=path), c)
                    except Exception as e:
                        emit(dict(kind="point_error", n=n, k=k, m=m, impl=name, path=path, err=repr(e)[:300]))
                        print(f"{n}x{k} M={m:5d} {name:8s} {path}: FAILED {repr(e)[:150]}", flush=True)
                        continue
                    finally:
                        kmod.DECODE_MAX_M = configs.DECODE_MAX_M
                    roof = ws[0].numel() / (bw * 1e12) * 1e6
                    rec = dict(
                        kind="point",
                        n=n,
                        k=k,
                        m=m,
                        impl=name,
                        path=path,
                        us=t,
                        cublas_us=t_cublas,
                        speedup=t_cublas / t,
                        roofline_frac=roof / t,
                        err=err,
                    )
                    emit(rec)
                    rows.append(rec)
                    print(
                        f"{n}x{k} M={m:5d} {name:8s} {path:6s} {t:9.1f} us  cuBLAS {t_cublas:9.1f} us  "
                        f"x{t_cublas / t:5.2f}  roof {roof / t:5.1%}  err {err:.1e}",
                        flush=True,
                    )
        if args.quantize_warps:
            import bitmat_kernels.ops.quantize.kernel as qmod

            default_warps = qmod.num_warps_for
            x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16, generator=gen)
            for warps in [int(v) for v in args.quantize_warps.split(",")]:
                qmod.num_warps_for = lambda block, w=warps: w
                try:
                    t = graph_time_us(lambda i: linear_triton(x, tern[i % c_t], scale, k, "ternary", 8, None), c_t)
                finally:
                    qmod.num_warps_for = default_warps
                emit(dict(kind="quantize_warps", n=n, k=k, m=1, warps=warps, us=t))
                print(f"{n}x{k} M=1 A8W158 quantizer warps {warps}: {t:.2f} us", flush=True)
        # config sweeps for the A8 ternary kernels at a few batch sizes

        def gemm_built():
            if kmod._GEMM_FALLBACK:
                raise RuntimeError("config did not build; the safe fallback ran")

        sw_fmt = args.sweep_format
        sw_w, sw_c, sw_scale = (tern, c_t, scale) if sw_fmt == "ternary" else (binw, c_b, bscale)
        kp = sw_w[0].shape[1]  # packed bytes a row

        def sweep_point(family, n, k, m, x, ab, cfg, check_built, replays):
            """One config: correct against the float64 oracle, bit-identical over 20 calls, then timed."""
            try:
                # the family's kernel, even where auto would dequantize (weight-only at larger M)
                path = family if family in ("gemm", "decode") else "auto"
                ref = linear_reference(x, sw_w[0], sw_scale, k, sw_fmt, ab, None, accumulate_dtype=torch.float64)
                ys = [linear_triton(x, sw_w[0], sw_scale, k, sw_fmt, ab, None, path=path) for _ in range(20)]
                check_built()
                err = ((ys[0].double() - ref).norm() / ref.norm()).item()
                repeat_equal = all(torch.equal(ys[0], y_) for y_ in ys[1:])
                t = graph_time_us(
                    lambda i: linear_triton(x, sw_w[i % sw_c], sw_scale, k, sw_fmt, ab, None, path=path), sw_c, replays
                )
            except Exception as e:  # a config that does not compile or fit
                emit(
                    dict(
                        kind="sweep_error",
                        family=family,
                        n=n,
                        k=k,
                        m=m,
                        a8=ab == 8,
                        cfg=cfg.__dict__,
                        err=repr(e)[:300],
                    )
                )
                return
            emit(
                dict(
                    kind="sweep", family=family, fmt=sw_fmt, n=n, k=k, m=m, a8=ab == 8, cfg=cfg.__dict__, us=t, err=err,
                    repeat_equal=repeat_equal,
                )
            )  # fmt: skip
            print(f"  sweep {family} {n}x{k} M={m} a8={ab == 8} {cfg} {t:.1f} us err {err:.1e}", flush=True)

        key_gpu = configs.gpu_key(torch.device("cuda"))
        if f"{n}x{k}" not in args.sweep_shapes.split(","):
            dense = tern = binw = None
            continue
        sweep_batches = [int(b) for b in args.sweep_batch.split(",")]
        if "decode" in args.sweep:
            for m in [b for b in sweep_batches if b <= configs.DECODE_MAX_M]:
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
                modes = [8 if mode == "A8" else None for mode in args.sweep_modes.split(",")]
                grid = [
                    (ab, bn, bw_, warps, st, fq, regs)
                    for ab in modes
                    for fq in sorted({v == "1" and ab == 8 for v in args.decode_fused.split(",")})
                    for bn in [int(v) for v in args.decode_block_n.split(",")]
                    for bw_ in [
                        int(v) for v in (args.decode_block_w_a8 if ab == 8 else args.decode_block_w_a16).split(",")
                    ]
                    for st in [int(v) for v in args.decode_stages.split(",")]
                    for warps in [int(v) for v in args.decode_warps.split(",")]
                    for regs in [int(v) for v in args.decode_max_registers.split(",")]
                    # weight-only, one token: each thread loads 8 bf16 activations (one 16-byte load) a step; warps
                    # spread over the step's 256-byte column groups, then over rows
                    if ab == 8 or m > 1 or (bw_ % 256 == 0 and bw_ // 256 <= warps)
                ]
                for ab, bn, bw_, warps, stages, fq, regs in grid:
                    if bn * bw_ * max(m, 1) > 8192:  # register budget; larger tiles crash LLVM or spill
                        continue
                    cfg = configs.DecodeConfig(
                        block_n=bn, block_w=bw_, num_warps=warps, num_stages=stages, fused_quant=fq, max_registers=regs
                    )
                    configs.TUNED_DECODE[(key_gpu, sw_fmt, ab == 8, configs.m_bucket(m))] = cfg
                    sweep_point("decode", n, k, m, x, ab, cfg, lambda: None, 7)
                configs.TUNED_DECODE.clear()
        if "gemm" in args.sweep:
            for m in [b for b in sweep_batches if b > configs.DECODE_MAX_M or args.gemm_one_token]:
                x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
                # (BLOCK_M tokens, BLOCK_N weight rows, BLOCK_KP, warps, stages)
                cands = [
                    (16, 64, 128, 4, 4),
                    (16, 128, 128, 4, 3),
                    (16, 64, 256, 4, 3),
                    (16, 128, 64, 4, 4),
                    (16, 256, 64, 8, 3),
                    (32, 128, 128, 4, 4),
                    (64, 64, 128, 4, 4),
                    (64, 128, 128, 4, 3),
                    (64, 128, 64, 4, 4),
                    (64, 256, 64, 8, 3),
                    (128, 128, 64, 8, 3),
                    (128, 128, 128, 8, 3),
                    (256, 128, 64, 8, 3),
                    (128, 256, 64, 8, 3),
                    (128, 256, 32, 8, 4),
                    (256, 128, 128, 8, 3),
                    (128, 128, 64, 4, 4),
                ]
                if args.gemm_tiles:
                    cands = [tuple(int(v) for v in t.split("x")) for t in args.gemm_tiles.split(",")]
                sms = torch.cuda.get_device_properties(0).multi_processor_count
                modes = [8 if mode == "A8" else None for mode in args.sweep_modes.split(",")]
                for ab in modes:
                    for bm, bn, bkp, warps, stages in cands:
                        if bm > 2 * max(m, 16) or (bm < 64 and m >= 1024) or (bm < 32 and m >= 256):
                            continue
                        tiles = -(-m // bm) * -(-n // bn)
                        for split_k in [int(v) for v in args.split_k.split(",")]:
                            if split_k > 1 and (tiles * split_k > 2 * sms or kp // split_k < 2 * bkp):
                                continue
                            for ws, pairs, regs in [
                                (bool(int(v)), bool(int(p)), int(r))
                                for v in args.warp_specialize.split(",")
                                for p in (args.code_pairs.split(",") if ab is None else ["1"])
                                for r in args.gemm_max_registers.split(",")
                            ]:
                                cfg = configs.GemmConfig(
                                    bm, bn, bkp, 8, warps, stages, split_k=split_k, warp_specialize=ws, code_pairs=pairs,
                                    max_registers=regs,
                                )  # fmt: skip
                                configs.TUNED_GEMM[(key_gpu, sw_fmt, ab == 8, configs.m_bucket(m))] = cfg
                                kmod._GEMM_FALLBACK.clear()
                                sweep_point("gemm", n, k, m, x, ab, cfg, gemm_built, 5)
                    configs.TUNED_GEMM.clear()
                configs.TUNED_GEMM.clear()
        dense = tern = binw = None
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
