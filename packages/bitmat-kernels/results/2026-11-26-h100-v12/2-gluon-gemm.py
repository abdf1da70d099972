"""Experiment (GPU): the Gluon sm_90 ternary A8 GEMM against the Triton GEMM (both on pre-quantized
activations; outputs must be bit-identical), the full bitmat_linear call, and cuBLAS bf16."""
import json, os, sys, importlib.util, traceback
import torch, triton
import torch.nn.functional as F
import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kmod
from bitmat_kernels.ops.linear import configs
from bitmat_kernels.ops.quantize.kernel import quantize_activations_triton
hspec = importlib.util.spec_from_file_location("gluon_gemm_sm90", os.path.join(os.path.dirname(__file__), "gluon_gemm_sm90.py"))
hopper = importlib.util.module_from_spec(hspec); sys.modules["gluon_gemm_sm90"] = hopper; hspec.loader.exec_module(hopper)
spec = importlib.util.spec_from_file_location("sw", "packages/bitmat-kernels/scripts/gpu_sweep.py")
sw = importlib.util.module_from_spec(spec); spec.loader.exec_module(sw)
out = os.environ.get("OUT", "/tmp")
rec = open(f"{out}/exp_hopper.jsonl", "w")
def emit(**d):
    rec.write(json.dumps(d) + "\n"); rec.flush(); print(d, flush=True)
emit(kind="env", gpu=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__, commit=os.environ.get("GIT_COMMIT"), gluon=hopper.available())
H = hopper.HopperGemmConfig
CFGS = [H(128, 128, 64, 8, 3), H(64, 128, 64, 4, 3), H(64, 128, 64, 4, 2, warp_specialized=True, maxnreg=128), H(64, 128, 32, 4, 4, warp_specialized=True, maxnreg=128), H(64, 256, 32, 4, 4, warp_specialized=True, maxnreg=128), H(64, 256, 64, 4, 2, warp_specialized=True), H(64, 128, 64, 4, 3, warp_specialized=True, maxnreg=128), H(64, 256, 32, 4, 3, warp_specialized=True)]
gen = torch.Generator(device="cuda").manual_seed(0)
common = dict(HAS_BIAS=False, BITS=2, A8=True, USE_PTX=True)

def setup(n, k, copies=1):
    w = torch.randint(-1, 2, (n, k), device="cuda", dtype=torch.int8, generator=gen)
    packs = [bk.pack_ternary(w) for _ in range(copies)]
    wsc = torch.rand(n, device="cuda", dtype=torch.float32) + 0.5
    return packs, wsc

# correctness on tails (M, N, K not multiples of the tiles), with bias, fp16 and fp32 outputs too
for m, n, k, dt, bias in [(1000, 4000, 4096, torch.bfloat16, False), (333, 1544, 2112, torch.bfloat16, True),
                          (2048, 4096, 4096, torch.float16, True), (77, 1024, 1024, torch.float32, False)]:
    packs, wsc = setup(n, k)
    x = torch.randn(m, k, device="cuda", dtype=dt, generator=gen)
    xq, xs, rs = quantize_activations_triton(x, 1e-5, with_sum=True)
    b = torch.randn(n, device="cuda", dtype=dt) if bias else None
    ref = torch.empty(m, n, dtype=dt, device="cuda")
    cfg = configs.gemm_config(m, n, k, "ternary", True, x.device, x_bytes=x.element_size())
    kmod._launch_gemm(cfg, (xq, xs, rs, packs[0], wsc, b if bias else wsc, ref, m, n, k, packs[0].shape[1], 1), dt, dict(common, HAS_BIAS=bias), False)
    for c in CFGS:
        y = torch.full((m, n), float("nan"), dtype=dt, device="cuda")
        try:
            hopper.gemm_a8_ternary_sm90(c, xq, xs, rs, packs[0], wsc, b, y, 1)
            torch.cuda.synchronize()
            emit(kind="check", m=m, n=n, k=k, dtype=str(dt), bias=bias, cfg=str(c), equal=torch.equal(y, ref), maxdiff=(y.float() - ref.float()).abs().max().item())
        except Exception as e:
            emit(kind="check_error", m=m, n=n, k=k, cfg=str(c), err=repr(e)[:400])
            traceback.print_exc()

shapes = [(28672, 4096), (8192, 28672), (4096, 4096), (2560, 6912)]
batches = [int(b) for b in os.environ.get("BATCHES", "256,1024,4096").split(",")]
for n, k in shapes:
    ncopy = sw.copies_for(n * k // 4)
    packs, wsc = setup(n, k, ncopy)
    kp = packs[0].shape[1]
    dense = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(sw.copies_for(n * k * 2))]
    for m in batches:
        if n * k * m > 57344 * 8192 * 4096:
            continue
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
        xq, xs, rs = quantize_activations_triton(x, 1e-5, with_sum=True)
        y0 = torch.empty(m, n, dtype=torch.bfloat16, device="cuda")
        cfg = configs.gemm_config(m, n, k, "ternary", True, x.device, x_bytes=2)
        def cur(i, y=y0):
            kmod._launch_gemm(cfg, (xq, xs, rs, packs[i % ncopy], wsc, wsc, y, m, n, k, kp, 1), torch.bfloat16, common, False)
        cur(0); ref = y0.clone()
        res = dict(n=n, k=k, m=m, cfg=str(cfg))
        res["cublas"] = round(sw.graph_time_us(lambda i: F.linear(x, dense[i % len(dense)]), len(dense)), 1)
        res["quant"] = round(sw.graph_time_us(lambda i: quantize_activations_triton(x, 1e-5, with_sum=True), 4), 1)
        res["full"] = round(sw.graph_time_us(lambda i: kmod.linear_triton(x, packs[i % ncopy], wsc, k, "ternary", 8, None), ncopy), 1)
        res["triton_gemm"] = round(sw.graph_time_us(cur, ncopy), 1)
        for c in CFGS:
            y1 = torch.empty_like(y0)
            def hg(i, y=y1, c=c):
                hopper.gemm_a8_ternary_sm90(c, xq, xs, rs, packs[i % ncopy], wsc, None, y, 1)
            try:
                hg(0); torch.cuda.synchronize()
                eq = torch.equal(y1, ref)
                t = sw.graph_time_us(hg, ncopy)
                res[f"g{c.block_n}x{c.block_m}x{c.block_kp}w{c.num_warps}s{c.stages}{'ws' if c.warp_specialized else ''}"] = (round(t, 1), eq)
            except Exception as e:
                res[f"g{c.block_n}x{c.block_m}x{c.block_kp}w{c.num_warps}s{c.stages}{'ws' if c.warp_specialized else ''}"] = repr(e)[:100]
        emit(kind="point", **res)
