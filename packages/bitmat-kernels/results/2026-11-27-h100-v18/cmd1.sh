# v18 cmd1 (H100): (a) v17's next-cmd sweep: weight-only 128 x 128 x 32 tiles with the byte decode on 2-4 stages
# against the code-pair tile of the v17 rules, 128-1024 tokens, five layers; (b) how long tune_linear takes on a GPU
# (three large layers, A8 and weight-only, the default batch sizes and budget), with what it picked.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,6144x4096,4096x4096
T=128x128x32x8x4,128x128x32x8x3,128x128x32x8x2,128x128x64x8x2
timeout 290 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep1.jsonl --shapes $S --batch 128,256,512,1024 --impls A16W158 --dequant --sweep gemm --sweep-shapes $S --sweep-batch 128,256,512,1024 --sweep-modes A16 --gemm-tiles $T --code-pairs 0,1 --split-k 1 > $OUT/sweep1.txt 2>&1
tail -1 $OUT/sweep1.txt
timeout 270 python3 - > $OUT/tuning-time.txt 2>&1 <<'PY'
import json, logging, os, sys, time
import torch
import bitmat_kernels as bk
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
out = open(os.path.join(os.environ["OUT"], "tuning-time.jsonl"), "w")
print(torch.cuda.get_device_name(), torch.__version__, __import__("triton").__version__, flush=True)
for n, k in ((28672, 4096), (57344, 8192), (8192, 28672)):
    codes, scale = bk.ternarize(torch.randn(n, k, device="cuda") * 0.02)
    packed = bk.pack(codes, weight_bits=1.58)
    del codes
    for act in (8, None):
        torch.cuda.synchronize(); t0 = time.perf_counter()
        recs = bk.tune_linear(packed, scale, in_features=k, weight_bits=1.58, activation_bits=act)
        torch.cuda.synchronize(); wall = time.perf_counter() - t0
        print(f"== {n}x{k} a{act or 16}: {wall:.1f} s for {len(recs)} batch sizes", flush=True)
        out.write(json.dumps(dict(n=n, k=k, a=act, wall_s=wall, records=[{**r, "config": str(r["config"])} for r in recs])) + "\n"); out.flush()
PY
grep "^==" $OUT/tuning-time.txt; tail -2 $OUT/tuning-time.txt
