# Large-M A8: how the time splits between the activation quantizer and the GEMM (v19 cmd1). CUDA-graph replays of
# (1) quantize_activations_triton alone, (2) the GEMM on pre-quantized activations (bitmat_linear(quantized=)),
# (3) the whole bitmat_linear, (4) cuBLAS bf16, one process, median of triton.testing.do_bench.
import json, os, sys
import torch, triton
import bitmat_kernels as bk
from bitmat_kernels.ops.quantize.kernel import quantize_activations_triton

def replay_us(fn):
    s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2): fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g): fn()
    return 1000 * triton.testing.do_bench(g.replay, warmup=25, rep=200)  # ms -> us

print(torch.cuda.get_device_name(), torch.__version__, triton.__version__, flush=True)
out = open(os.path.join(os.environ["OUT"], "a8-split.jsonl"), "w")
for spec in sys.argv[1:] or ["4096x4096:4096", "28672x4096:4096", "8192x28672:4096", "4096x4096:8192"]:
    shape, m = spec.split(":"); n, k = map(int, shape.split("x")); m = int(m)
    codes, scale = bk.ternarize(torch.randn(n, k, device="cuda") * 0.02)
    packed = bk.pack(codes, weight_bits=1.58); w = (codes * scale).to(torch.bfloat16); del codes
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    xq, xs, rs = quantize_activations_triton(x, 1e-5, with_sum=True)
    q = bk.QuantizedActivations(xq, xs, rs, 1e-5)
    t = dict(
        quantize=replay_us(lambda: quantize_activations_triton(x, 1e-5, with_sum=True)),
        gemm=replay_us(lambda: bk.bitmat_linear(x, packed, scale, in_features=k, quantized=q)),
        whole=replay_us(lambda: bk.bitmat_linear(x, packed, scale, in_features=k)),
        cublas=replay_us(lambda: torch.nn.functional.linear(x, w)),
    )
    qbytes = m * k * 3 + m * 8
    rec = dict(n=n, k=k, m=m, **{f"{a}_us": round(b, 2) for a, b in t.items()},
               quantize_tbps=round(qbytes / t["quantize"] / 1e6, 2), gemm_tops=round(2 * m * n * k / t["gemm"] / 1e6, 0),
               whole_vs_cublas=round(t["cublas"] / t["whole"], 3), gemm_vs_cublas=round(t["cublas"] / t["gemm"], 3))
    print(rec, flush=True); out.write(json.dumps(rec) + "\n")
