"""v21 (GPU) diagnostic: which change breaks which tile. Variants: v20 (as shipped), dec1 (v20 + the new decode,
"h" input, 2 bytes a call), dec1r (v20 + the new decode math on 4 bytes a call, "r" input), dec (new decode + one
buffer a slice), new (new decode + one 3D activation copy). Per tile and shape: max error against dequantize +
cuBLAS (relative to the output's max), the fraction of outputs off by more than 1% of the max, determinism over 3
runs, and where the bad outputs sit (rows mod BLOCK_M tokens, columns mod BLOCK_N)."""
import importlib.util, json, os, sys
import torch
import bitmat_kernels as bk
from bitmat_kernels.ops.linear import hopper as pkg
from bitmat_kernels.ops.linear.configs import HopperWeightOnlyConfig as C
from bitmat_kernels.ops.linear.kernel import linear_triton

here = os.path.dirname(os.path.abspath(__file__))


def load(name):
    spec = importlib.util.spec_from_file_location(name, f"{here}/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


V = {k: v for k, v in {"v20": load("hopper_v20"), "dec1": load("hopper_dec1"), "dec1r": load("hopper_dec1r"), "dec": load("hopper_decode_only"), "new": pkg}.items() if k in os.environ.get("VARIANTS", "v20,dec1,dec1r,dec,new").split(",")}
out = open(f"{os.environ.get('OUT', '/tmp')}/{os.environ.get('NAME', 'diag')}.jsonl", "w")
gen = torch.Generator(device="cuda").manual_seed(1)
CASES = [
    ((28672, 4096), 64, C(64, 64, 64, 4, 3)),
    ((28672, 4096), 64, C(64, 64, 64, 4, 4)),
    ((28672, 4096), 16, C(64, 16, 64, 4, 4)),
    ((4096, 4096), 128, C(64, 128, 64, 4, 3)),
    ((28672, 4096), 128, C(128, 128, 32, 8, 3)),
    ((4096, 4096), 1024, C(128, 256, 32, 8, 3)),
    ((4096, 4096), 256, C(128, 128, 32, 8, 3)),
]
for (n, k), m, c in CASES:
    w = torch.randint(-1, 2, (n, k), device="cuda", dtype=torch.int8, generator=gen)
    packed = bk.pack_ternary(w)
    wsc = torch.rand(n, device="cuda", generator=gen) + 0.5
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    ref = linear_triton(x, packed, wsc, k, "ternary", None, None, path="dequant").float()
    scale = ref.abs().max().item()
    for name, mod in V.items():
        try:
            ys = []
            for _ in range(3):
                y = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device="cuda")
                mod.weight_only_sm90(c, x, packed, wsc, None, y)
                ys.append(y.float())
            torch.cuda.synchronize()
            err = (ys[0] - ref).abs() / scale
            bad = (err > 1e-2) | ys[0].isnan()
            rows, cols = bad.nonzero(as_tuple=True)
            d = dict(tile=str(c), n=n, k=k, m=m, impl=name, err=err.nan_to_num(9.0).max().item(), bad=bad.float().mean().item(),
                     deterministic=all(torch.equal(ys[0], t) for t in ys[1:]),
                     bad_rows_mod=sorted(set((rows % c.block_m).tolist()))[:24], bad_cols_mod=sorted(set((cols % c.block_n).tolist()))[:24],
                     bad_tiles=len(set(zip((rows // c.block_m).tolist(), (cols // c.block_n).tolist()))))
        except Exception as e:
            d = dict(tile=str(c), n=n, k=k, m=m, impl=name, error=repr(e)[:300])
        out.write(json.dumps(d) + "\n"); out.flush()
        print(d, flush=True)
