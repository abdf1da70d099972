# Large-M A8 with a streaming quantizer (v19 cmd5): a few programs a SM quantize tokens in order and count each
# token block's finished tokens in a flag; the GEMM (launched with PDL right after the quantizer starts) spins on its
# tile's flag, then multiplies. kernel.a8_stream gives the programs a SM (0: the rules' path, one quantizer then one
# GEMM, or chunks where a8_chunks says). Per layer and M: CUDA-graph replays (do_bench median, us) of the rules, the
# stream at 0.5 / 1 / 2 programs a SM, and the rules again; cuBLAS beside. Race check: each stream variant's output
# is compared bit for bit with the rules' on 4 different inputs. One process.
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

VARIANTS = [0, 0.5, 1, 2, 0]
print(torch.cuda.get_device_name(), torch.__version__, triton.__version__, flush=True)
out = open(os.path.join(os.environ["OUT"], "a8-stream.jsonl"), "w")
layers = sys.argv[1:] or ["4096x4096", "28672x4096", "6144x4096", "8192x8192", "57344x8192", "8192x28672"]
for shape in layers:
    n, k = map(int, shape.split("x"))
    codes, scale = bk.ternarize(torch.randn(n, k, device="cuda") * 0.02)
    packed = bk.pack(codes, weight_bits=1.58); w = (codes * scale).to(torch.bfloat16); del codes
    for m in (1024, 2048, 4096, 8192):
        xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(4)]
        x = xs[0]
        f = lambda: bk.bitmat_linear(x, packed, scale, in_features=k)
        rec = dict(n=n, k=k, m=m, cublas_us=round(replay_us(lambda: torch.nn.functional.linear(x, w)), 2))
        kernel.a8_stream = lambda *a: 0
        want = [bk.bitmat_linear(v, packed, scale, in_features=k) for v in xs]
        for i, per_sm in enumerate(VARIANTS):
            kernel.a8_stream = lambda *a, p=per_sm: p
            name = f"stream{per_sm}" if per_sm else "rules" + ("-again" if i else "")
            try:
                rec[name + "_equal"] = all(torch.equal(bk.bitmat_linear(v, packed, scale, in_features=k), y)
                                           for v, y in zip(xs, want))
                rec[name] = round(replay_us(f), 2)
            except Exception as e:  # noqa: BLE001
                rec[name] = repr(e)[:200]
        print(rec, flush=True); out.write(json.dumps(rec) + "\n"); out.flush()
    del w, packed
    torch.cuda.empty_cache()
