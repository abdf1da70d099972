# tune_linear's wall time and picks on three large ternary layers, A8 and weight-only (v18 cmd1, cmd3)
import json, logging, os, sys, time
import torch
import bitmat_kernels as bk
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
out = open(os.path.join(os.environ["OUT"], "tuning-time.jsonl"), "w")
print(torch.cuda.get_device_name(), torch.__version__, __import__("triton").__version__, flush=True)
layers = [tuple(map(int, a.split("x"))) for a in sys.argv[1:]] or [(28672, 4096), (57344, 8192), (8192, 28672)]
for n, k in layers:
    codes, scale = bk.ternarize(torch.randn(n, k, device="cuda") * 0.02)
    packed = bk.pack(codes, weight_bits=1.58)
    del codes
    for act in (8, None):
        torch.cuda.synchronize(); t0 = time.perf_counter()
        recs = bk.tune_linear(packed, scale, in_features=k, weight_bits=1.58, activation_bits=act)
        torch.cuda.synchronize(); wall = time.perf_counter() - t0
        print(f"== {n}x{k} a{act or 16}: {wall:.1f} s for {len(recs)} batch sizes", flush=True)
        out.write(json.dumps(dict(n=n, k=k, a=act, wall_s=wall, records=[{**r, "config": str(r["config"])} for r in recs])) + "\n"); out.flush()
