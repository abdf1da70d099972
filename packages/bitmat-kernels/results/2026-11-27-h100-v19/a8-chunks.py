# Large-M A8 in chunks (v19 cmd2): each chunk's quantizer runs beside the previous chunk's GEMM (kernel.a8_chunks,
# PDL). Per layer and M, CUDA-graph replays (do_bench median, us) of bitmat_linear with 1 chunk, 2/4/8 chunks at 2
# quantizer programs a SM, 4 chunks at 1 and 4 a SM, and 1 chunk again; cuBLAS bf16 beside; each output checked
# bit-equal to the one-chunk output. One process.
import json, os, sys
import torch, triton
import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kernel

def replay_us(fn):
    s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2): fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g): fn()
    return 1000 * triton.testing.do_bench(g.replay, warmup=25, rep=200)

VARIANTS = [(1, 2), (2, 2), (4, 2), (8, 2), (4, 1), (4, 4), (1, 2)]
print(torch.cuda.get_device_name(), torch.__version__, triton.__version__, flush=True)
out = open(os.path.join(os.environ["OUT"], "a8-chunks.jsonl"), "w")
layers = sys.argv[1:] or ["4096x4096", "28672x4096", "8192x28672", "57344x8192"]
for shape in layers:
    n, k = map(int, shape.split("x"))
    codes, scale = bk.ternarize(torch.randn(n, k, device="cuda") * 0.02)
    packed = bk.pack(codes, weight_bits=1.58); w = (codes * scale).to(torch.bfloat16); del codes
    for m in (1024, 2048, 4096, 8192):
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        f = lambda: bk.bitmat_linear(x, packed, scale, in_features=k)
        rec = dict(n=n, k=k, m=m, cublas_us=round(replay_us(lambda: torch.nn.functional.linear(x, w)), 2))
        base = None
        for i, (chunks, per_sm) in enumerate(VARIANTS):
            kernel.a8_chunks = lambda *a, c=chunks: c
            kernel.A8_BEHIND_PER_SM = per_sm
            y = f()
            base = y if base is None else base
            name = f"c{chunks}x{per_sm}" + ("-again" if i == len(VARIANTS) - 1 else "")
            rec[name] = round(replay_us(f), 2)
            rec[name + "_equal"] = bool(torch.equal(y, base))
        print(rec, flush=True); out.write(json.dumps(rec) + "\n"); out.flush()
    del w, packed
    torch.cuda.empty_cache()
