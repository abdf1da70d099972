"""v21 (GPU): binary weights on the Gluon weight-only GEMM (8 activation slices a stage, w = +-1 from the sign
bit): the forced path against the float64 oracle, then per-call times against cuBLAS bf16 and the current binary
path (Triton GEMM / planes / dequantize + cuBLAS), by tile, from CUDA-graph replays (gpu_sweep's timer)."""
import importlib.util, json, os, sys
import torch, triton
import torch.nn.functional as F
import bitmat_kernels as bk
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.linear import hopper
from bitmat_kernels.ops.linear.kernel import linear_triton
from bitmat_kernels.ops.linear.reference import linear_reference

spec = importlib.util.spec_from_file_location("gpu_sweep", "packages/bitmat-kernels/scripts/gpu_sweep.py")
sw = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sw)
out = open(f"{os.environ.get('OUT', '/tmp')}/binary.jsonl", "w")


def emit(**d):
    out.write(json.dumps(d) + "\n")
    out.flush()
    print(d, flush=True)


emit(kind="env", gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)
gen = torch.Generator(device="cuda").manual_seed(0)


def weights(n, k, copies=1):
    w = torch.randint(0, 2, (n, k), device="cuda", dtype=torch.int8, generator=gen) * 2 - 1
    return [bk.pack(w, weight_bits=1) for _ in range(copies)], torch.rand(n, device="cuda", generator=gen) + 0.5


for m, n, k, dt, bias in [(64, 4096, 4096, torch.bfloat16, False), (50, 1000, 2048, torch.bfloat16, True),
                          (16, 28672, 4096, torch.float16, True), (300, 4096, 4096, torch.bfloat16, True),
                          (77, 8192, 28672, torch.bfloat16, False), (1000, 4096, 1024, torch.float16, True)]:
    packs, wsc = weights(n, k)
    x = torch.randn(m, k, device="cuda", dtype=dt, generator=gen)
    b = torch.randn(n, device="cuda", dtype=dt, generator=gen) if bias else None
    ref = linear_reference(x, packs[0], wsc, k, "binary", None, b, accumulate_dtype=torch.float64)
    ref64 = linear_reference(x.double(), packs[0], wsc, k, "binary", None, b)
    try:
        ys = [linear_triton(x, packs[0], wsc, k, "binary", None, b, path="hopper") for _ in range(3)]
        emit(kind="check", m=m, n=n, k=k, dtype=str(dt), tile=str(configs.hopper_tile(m, n, k, "binary")),
             err=(ys[0].double() - ref64).abs().max().item() / ref64.abs().max().item(),
             off_rounding=(ys[0] != ref).float().mean().item(), deterministic=all(torch.equal(ys[0], t) for t in ys[1:]))
    except Exception as e:
        emit(kind="check_error", m=m, n=n, k=k, err=repr(e)[:300])

C = configs.HopperWeightOnlyConfig
for n, k in [(28672, 4096), (57344, 8192), (8192, 28672), (4096, 4096), (8192, 8192), (4096, 14336)]:
    ncopy = sw.copies_for(n * k // 8)
    packs, wsc = weights(n, k, ncopy)
    dense = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(sw.copies_for(n * k * 2))]
    for m in (8, 16, 32, 64, 128, 256, 1024):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        res = dict(kind="point", n=n, k=k, m=m)
        res["cublas"] = round(sw.graph_time_us(lambda i: F.linear(x, dense[i % len(dense)]), len(dense)), 2)
        res["current"] = round(sw.graph_time_us(lambda i: linear_triton(x, packs[i % ncopy], wsc, k, "binary", None, None), ncopy), 2)
        ref = linear_triton(x, packs[0], wsc, k, "binary", None, None, path="dequant").float()
        rule = configs.hopper_tile(m, n, k, "binary")
        tiles = [rule] + [t for t in (C(rule.block_n, rule.block_m, rule.block_kp * 2, rule.num_warps, max(2, rule.num_stages - 1)),
                                      C(rule.block_n, rule.block_m, max(16, rule.block_kp // 2), rule.num_warps, rule.num_stages + 1)) if t != rule]
        for c in tiles:
            key = f"g{c.block_n}x{c.block_m}x{c.block_kp}w{c.num_warps}s{c.num_stages}"
            y = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
            try:
                hopper.weight_only_sm90(c, x, packs[0], wsc, None, y)
                torch.cuda.synchronize()
                close = (y.float() - ref).abs().max().item() / ref.abs().max().item()
                t = sw.graph_time_us(lambda i, y=y, c=c: hopper.weight_only_sm90(c, x, packs[i % ncopy], wsc, None, y), ncopy)
                res[key] = [round(t, 2), round(res["cublas"] / t, 2), f"{close:.1e}"]
            except Exception as e:
                res[key] = repr(e)[:120]
        emit(**res)
    del dense, packs
    torch.cuda.empty_cache()
