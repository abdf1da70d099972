"""v20 (GPU): the Gluon weight-only GEMM (gluon_weight_only.py) against the float64 oracle, the current
bitmat_linear weight-only path (auto) and cuBLAS bf16, per-call times from CUDA-graph replays (gpu_sweep's timer)."""

import importlib.util, json, os, sys, traceback
import torch, triton
import torch.nn.functional as F
import bitmat_kernels as bk
from bitmat_kernels.ops.linear.kernel import linear_triton
from bitmat_kernels.ops.linear.reference import linear_reference

here = os.path.dirname(os.path.abspath(__file__))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


from bitmat_kernels.ops.linear import hopper as gwo  # cmd2 and cmd3 ran its first version, gluon_weight_only.py (bb5d4c1, cdb75f7)
from bitmat_kernels.ops.linear.configs import HopperWeightOnlyConfig
sw = load("gpu_sweep", "packages/bitmat-kernels/scripts/gpu_sweep.py")
out = os.environ.get("OUT", "/tmp")
rec = open(f"{out}/{os.environ.get('NAME', 'gluon-weight-only')}.jsonl", "w")


def emit(**d):
    rec.write(json.dumps(d) + "\n")
    rec.flush()
    print(d, flush=True)


emit(
    kind="env",
    gpu=torch.cuda.get_device_name(),
    torch=torch.__version__,
    triton=triton.__version__,
    gluon=gwo.available(),
)
C = HopperWeightOnlyConfig  # block_n, block_m, block_kp, num_warps, num_stages
CFGS = {
    8: [C(64, 8, 64, 4, 4), C(64, 8, 128, 4, 3)],
    16: [C(64, 16, 64, 4, 4), C(64, 16, 128, 4, 3), C(128, 16, 64, 8, 4), C(64, 16, 32, 4, 6)],
    64: [C(64, 64, 32, 4, 4), C(64, 64, 64, 4, 3), C(128, 64, 32, 8, 3), C(128, 64, 64, 8, 2), C(64, 64, 32, 4, 6)],
    128: [C(128, 128, 32, 8, 3), C(64, 128, 32, 4, 4)],
}
SWEEP2 = {  # cmd3: wider tiles by token count
    32: [C(64, 32, 64, 4, 3), C(64, 32, 64, 4, 4), C(64, 32, 128, 4, 2), C(64, 32, 32, 4, 6)],
    64: [C(64, 64, 64, 4, 3), C(64, 64, 64, 4, 2), C(64, 64, 128, 4, 2), C(64, 64, 64, 4, 4)],
    128: [C(64, 128, 32, 4, 4), C(128, 128, 32, 8, 3), C(64, 128, 64, 4, 3), C(128, 128, 64, 8, 2)],
    256: [
        C(128, 128, 32, 8, 3),
        C(128, 128, 32, 8, 4),
        C(128, 128, 64, 8, 2),
        C(128, 256, 32, 8, 3),
        C(256, 128, 32, 8, 2),
        C(256, 128, 32, 8, 3),
    ],
}


def cfgs_for(m):
    if os.environ.get("SWEEP") == "2":
        return SWEEP2[32 if m <= 32 else 64 if m <= 64 else 128 if m <= 128 else 256]
    bm = 8 if m <= 8 else 16 if m <= 16 else 64 if m <= 64 else 128
    return CFGS[bm]


gen = torch.Generator(device="cuda").manual_seed(0)


def weights(n, k, copies=1):
    w = torch.randint(-1, 2, (n, k), device="cuda", dtype=torch.int8, generator=gen)
    return [bk.pack_ternary(w) for _ in range(copies)], torch.rand(
        n, device="cuda", dtype=torch.float32, generator=gen
    ) + 0.5


# correctness: tails in M and N, bias, fp16, every config
for m, n, k, dt, bias in (
    []
    if os.environ.get("SKIP_CHECK")
    else [
        (64, 4096, 4096, torch.bfloat16, False),
        (50, 1000, 2048, torch.bfloat16, True),
        (16, 28672, 4096, torch.float16, True),
        (3, 2056, 1024, torch.bfloat16, False),
        (200, 4096, 4096, torch.bfloat16, True),
        (9, 8192, 28672, torch.bfloat16, False),
    ]
):
    packs, wsc = weights(n, k)
    x = torch.randn(m, k, device="cuda", dtype=dt, generator=gen)
    b = torch.randn(n, device="cuda", dtype=dt, generator=gen) if bias else None
    ref = linear_reference(x, packs[0], wsc, k, "ternary", None, b, accumulate_dtype=torch.float64)
    ref64 = linear_reference(x.double(), packs[0], wsc, k, "ternary", None, b)  # unrounded
    cur = linear_triton(x, packs[0], wsc, k, "ternary", None, b)
    scale = ref64.abs().max().item()
    emit(
        kind="check",
        impl="auto",
        m=m,
        n=n,
        k=k,
        dtype=str(dt),
        bias=bias,
        err=(cur.double() - ref64).abs().max().item() / scale,
        ulp_diff=(cur != ref).float().mean().item(),
    )
    for c in sum(CFGS.values(), []):
        y = torch.full((m, n), float("nan"), dtype=dt, device="cuda")
        try:
            gwo.weight_only_sm90(c, x, packs[0], wsc, b, y)
            y2 = torch.empty_like(y)
            gwo.weight_only_sm90(c, x, packs[0], wsc, b, y2)
            torch.cuda.synchronize()
            emit(
                kind="check",
                impl=str(c),
                m=m,
                n=n,
                k=k,
                dtype=str(dt),
                bias=bias,
                nan=bool(y.isnan().any()),
                err=(y.double() - ref64).abs().max().item() / scale,
                ulp_diff=(y != ref).float().mean().item(),
                deterministic=bool(torch.equal(y, y2)),
            )
        except Exception as e:
            emit(kind="check_error", impl=str(c), m=m, n=n, k=k, err=repr(e)[:400])
            traceback.print_exc()

shapes = [
    tuple(int(v) for v in s.split("x"))
    for s in os.environ.get("SHAPES", "28672x4096,57344x8192,8192x28672,4096x4096").split(",")
]
batches = [int(v) for v in os.environ.get("BATCHES", "16,64,4,256").split(",")]
for n, k in shapes:
    ncopy = sw.copies_for(n * k // 4)
    packs, wsc = weights(n, k, ncopy)
    dense = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(sw.copies_for(n * k * 2))]
    for m in batches:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        res = dict(n=n, k=k, m=m)
        res["cublas"] = round(sw.graph_time_us(lambda i: F.linear(x, dense[i % len(dense)]), len(dense)), 2)
        res["auto"] = round(
            sw.graph_time_us(lambda i: linear_triton(x, packs[i % ncopy], wsc, k, "ternary", None, None), ncopy), 2
        )
        if m >= 512:
            res["dequant"] = round(
                sw.graph_time_us(
                    lambda i: linear_triton(x, packs[i % ncopy], wsc, k, "ternary", None, None, path="dequant"), ncopy
                ),
                2,
            )
        ref = linear_triton(x, packs[0], wsc, k, "ternary", None, None)
        for c in cfgs_for(m):
            y = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
            name = f"g{c.block_n}x{c.block_m}x{c.block_kp}w{c.num_warps}s{c.num_stages}"
            try:
                gwo.weight_only_sm90(c, x, packs[0], wsc, None, y)
                torch.cuda.synchronize()
                close = (y.float() - ref.float()).abs().max().item() / ref.float().abs().max().item()
                t = sw.graph_time_us(
                    lambda i, y=y, c=c: gwo.weight_only_sm90(c, x, packs[i % ncopy], wsc, None, y), ncopy
                )
                res[name] = [round(t, 2), round(res["cublas"] / t, 2), f"{close:.1e}"]
            except Exception as e:
                res[name] = repr(e)[:160]
        res["auto_x"] = round(res["cublas"] / res["auto"], 2)
        emit(kind="point", **res)
    del dense, packs
    torch.cuda.empty_cache()
