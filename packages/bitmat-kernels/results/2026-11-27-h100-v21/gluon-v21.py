"""v21 (GPU): the Gluon weight-only GEMM, three versions in one process: v20 (hopper_v20.py, as shipped at
fdafb8d), the new decode alone (hopper_decode_only.py: 1 LOP3 + 1 FMA a register of two weights, PRMT shared by the
4 slices) and the package's (new decode + the 4 activation slices in one 3D TMA copy: 2 copies a stage, 4 CTA
barriers a loop instead of 7). Checks against the float64 oracle; times against cuBLAS bf16 and the Triton path
(BITMAT_KERNELS_GLUON=0), per-call from CUDA-graph replays (gpu_sweep's timer)."""

import importlib.util, json, os, sys, traceback
import torch, triton
import torch.nn.functional as F
import bitmat_kernels as bk
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.linear import hopper as pkg
from bitmat_kernels.ops.linear.kernel import linear_triton
from bitmat_kernels.ops.linear.reference import linear_reference

here = os.path.dirname(os.path.abspath(__file__))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


sw = load("gpu_sweep", "packages/bitmat-kernels/scripts/gpu_sweep.py")
VARIANTS = {"v20": load("hopper_v20", f"{here}/hopper_v20.py"), "dec": load("hopper_dec", f"{here}/hopper_decode_only.py"), "new": pkg}
out = os.environ.get("OUT", "/tmp")
rec = open(f"{out}/{os.environ.get('NAME', 'gluon-v21')}.jsonl", "w")


def emit(**d):
    rec.write(json.dumps(d) + "\n")
    rec.flush()
    print(d, flush=True)


emit(kind="env", gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)
C = configs.HopperWeightOnlyConfig  # block_n, block_m, block_kp, num_warps, num_stages
EXTRA = {
    8: [C(64, 8, 64, 4, 4), C(64, 8, 128, 4, 3)],
    16: [C(64, 16, 64, 4, 4), C(64, 16, 128, 4, 3), C(64, 16, 128, 4, 4)],
    32: [C(64, 32, 64, 4, 4), C(64, 32, 64, 4, 3)],
    64: [C(64, 64, 64, 4, 3), C(64, 64, 64, 4, 4), C(128, 64, 64, 8, 2)],
    128: [C(64, 128, 64, 4, 3), C(128, 128, 32, 8, 3)],
    256: [C(128, 128, 32, 8, 3), C(128, 256, 32, 8, 3)],
    1024: [C(128, 256, 32, 8, 3), C(128, 256, 32, 8, 4)],
    2048: [C(128, 256, 32, 8, 3)],
}
SWEEP3 = {  # cmd7: K-heavy layers at 16 / 64 tokens (more programs), small layers at 256 / 512 (smaller tiles)
    16: [C(64, 16, 128, 4, 3), C(64, 16, 64, 4, 4), C(64, 16, 64, 4, 6), C(64, 16, 256, 4, 2), C(128, 16, 64, 8, 4)],
    64: [C(64, 64, 64, 4, 3), C(64, 32, 64, 4, 3), C(64, 32, 64, 4, 4), C(64, 64, 32, 4, 4), C(64, 64, 128, 4, 2)],
    256: [C(128, 128, 32, 8, 3), C(64, 128, 64, 4, 3), C(64, 256, 32, 4, 3), C(64, 128, 32, 4, 4), C(64, 64, 64, 4, 3)],
    512: [C(128, 256, 32, 8, 3), C(64, 128, 64, 4, 3), C(64, 256, 32, 4, 3), C(128, 128, 32, 8, 3)],
}
SWEEP4_TILES = [C(128, 128, 32, 8, 3), C(128, 256, 32, 8, 3), C(64, 128, 64, 4, 3), C(64, 256, 32, 4, 3), C(64, 64, 64, 4, 3)]
SWEEP4 = {256: SWEEP4_TILES, 512: SWEEP4_TILES, 1024: SWEEP4_TILES}  # cmd8: 256-1024 tokens, every bench layer
SWEEP5 = {m: [C(128, 128, 32, 8, 3), C(128, 256, 32, 8, 3)] for m in (2048, 4096, 8192)}  # cmd9: beyond 1024 tokens
if os.environ.get("SWEEP") == "5":
    EXTRA = SWEEP5
if os.environ.get("SWEEP") == "3":
    EXTRA = SWEEP3
if os.environ.get("SWEEP") == "4":
    EXTRA = SWEEP4
ONLY = os.environ.get("VARIANTS", "v20,dec,new").split(",")
gen = torch.Generator(device="cuda").manual_seed(0)


def weights(n, k, copies=1):
    w = torch.randint(-1, 2, (n, k), device="cuda", dtype=torch.int8, generator=gen)
    return [bk.pack_ternary(w) for _ in range(copies)], torch.rand(n, device="cuda", dtype=torch.float32, generator=gen) + 0.5


# correctness: tails in M and N, bias, fp16, per-tensor scale, long K
for m, n, k, dt, bias, per_tensor in ([] if os.environ.get("SKIP_CHECK") else [
    (64, 4096, 4096, torch.bfloat16, False, False),
    (50, 1000, 2048, torch.bfloat16, True, False),
    (16, 28672, 4096, torch.float16, True, False),
    (3, 2056, 1024, torch.bfloat16, False, True),
    (200, 4096, 4096, torch.bfloat16, True, False),
    (77, 8192, 28672, torch.float16, False, False),
    (1000, 4096, 1024, torch.bfloat16, True, True),
]):
    packs, wsc = weights(n, k)
    if per_tensor:
        wsc = wsc[:1].clone()
    x = torch.randn(m, k, device="cuda", dtype=dt, generator=gen)
    b = torch.randn(n, device="cuda", dtype=dt, generator=gen) if bias else None
    ref = linear_reference(x, packs[0], wsc, k, "ternary", None, b, accumulate_dtype=torch.float64)
    ref64 = linear_reference(x.double(), packs[0], wsc, k, "ternary", None, b)
    scale = ref64.abs().max().item()
    tile = configs.hopper_tile(m, n, k)
    for name, mod in VARIANTS.items():
        if name not in ONLY:
            continue
        y = torch.full((m, n), float("nan"), dtype=dt, device="cuda")
        try:
            mod.weight_only_sm90(tile, x, packs[0], wsc, b, y)
            y2 = torch.empty_like(y)
            mod.weight_only_sm90(tile, x, packs[0], wsc, b, y2)
            torch.cuda.synchronize()
            emit(kind="check", impl=name, tile=str(tile), m=m, n=n, k=k, dtype=str(dt), bias=bias, nan=bool(y.isnan().any()),
                 err=(y.double() - ref64).abs().max().item() / scale, off_rounding=(y != ref).float().mean().item(),
                 deterministic=bool(torch.equal(y, y2)))
        except Exception as e:
            emit(kind="check_error", impl=name, m=m, n=n, k=k, err=repr(e)[:400])
            traceback.print_exc()

shapes = [tuple(int(v) for v in s.split("x")) for s in os.environ.get("SHAPES", "28672x4096,57344x8192,8192x28672,4096x14336,6144x4096,4096x4096").split(",")]
batches = [int(v) for v in os.environ.get("BATCHES", "64,16,32,128,256,8,1024,2048").split(",")]
for n, k in shapes:
    ncopy = sw.copies_for(n * k // 4)
    packs, wsc = weights(n, k, ncopy)
    dense = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(sw.copies_for(n * k * 2))]
    for m in batches:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        res = dict(n=n, k=k, m=m)
        res["cublas"] = round(sw.graph_time_us(lambda i: F.linear(x, dense[i % len(dense)]), len(dense)), 2)
        os.environ[configs.HOPPER_ENV] = "0"
        res["triton"] = round(sw.graph_time_us(lambda i: linear_triton(x, packs[i % ncopy], wsc, k, "ternary", None, None), ncopy), 2)
        os.environ.pop(configs.HOPPER_ENV)
        ref = linear_triton(x, packs[0], wsc, k, "ternary", None, None, path="dequant")
        tiles = EXTRA[m]
        for name, mod in VARIANTS.items():
            if name not in ONLY:
                continue
            for c in tiles:
                y = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
                key = f"{name}:{c.block_n}x{c.block_m}x{c.block_kp}w{c.num_warps}s{c.num_stages}"
                try:
                    mod.weight_only_sm90(c, x, packs[0], wsc, None, y)
                    torch.cuda.synchronize()
                    close = (y.float() - ref.float()).abs().max().item() / ref.float().abs().max().item()
                    t = sw.graph_time_us(lambda i, y=y, c=c, mod=mod: mod.weight_only_sm90(c, x, packs[i % ncopy], wsc, None, y), ncopy)
                    res[key] = [round(t, 2), round(res["cublas"] / t, 2), f"{close:.1e}"]
                except Exception as e:
                    res[key] = repr(e)[:160]
        emit(kind="point", **res)
    del dense, packs
    torch.cuda.empty_cache()
