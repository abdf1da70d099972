"""(1) fused-kernel variants on the prefill sizes; (2) why BitMat's eager prefill is slower after the bf16 model's
graph decoding in the same process: GPU time vs wall time, GC, Triton launch cost."""
import gc, json, sys, time
import torch
import triton
from torch.profiler import ProfilerActivity, profile
import bitmat_kernels as bk
import bitmat_kernels.ops.activation.kernel as act

out = {}
dev = torch.device("cuda")
# ---- 1: silu_mul_quantize variants at M=2048, I=14336 (fused gate/up halves)
both = torch.randn(2048, 2 * 14336, device=dev, dtype=torch.bfloat16)
g, u = both[:, :14336], both[:, 14336:]
ref_h, ref_q = bk.silu_mul_quantize(g, u)
for name, block, reread in (("one-block-16384", 16384, False), ("chunks-2048-recompute", 2048, False),
                            ("chunks-2048-reread", 2048, True), ("chunks-4096-reread", 4096, True),
                            ("chunks-8192-reread", 8192, True), ("chunks-1024-reread", 1024, True)):
    act.MAX_ONE_BLOCK, act.REREAD = block, reread
    h, q = bk.silu_mul_quantize(g, u)
    same = bool(torch.equal(h, ref_h) and torch.equal(q.values, ref_q.values) and torch.equal(q.scale, ref_q.scale))
    ms = triton.testing.do_bench(lambda: bk.silu_mul_quantize(g, u), warmup=25, rep=200)
    out[f"silu {name}"] = (round(ms * 1000, 1), same)
act.MAX_ONE_BLOCK, act.REREAD = 16384, False
x = torch.randn(2048, 4096, device=dev, dtype=torch.bfloat16); w = torch.rand(4096, device=dev, dtype=torch.bfloat16)
out["norm 2048x4096 us"] = round(triton.testing.do_bench(lambda: bk.rms_norm_quantize(x, w), warmup=25, rep=200) * 1000, 1)
print(json.dumps(out, indent=1), flush=True)
del both, g, u, ref_h, ref_q, x, w

# ---- 2: order effect
from bitmat_bench.model import build_model, convert, measure_prefill, measure_graph, _cleanup, _reset_compiled
from bitmat_bench.shapes import model_preset
p = model_preset("llama3-8b")

def launch_us():
    """Host time of one small Triton launch (quantize of a 1x4096 row), averaged."""
    xs = torch.randn(1, 4096, device=dev, dtype=torch.bfloat16)
    for _ in range(20):
        bk.quantize_activations(xs)
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(2000):
        bk.quantize_activations(xs)
    host = (time.perf_counter() - t) / 2000 * 1e6
    torch.cuda.synchronize()
    return round(host, 2)

def bitmat_prefill(tag, disable_gc=False):
    m, cfg = build_model(p, "llama", None, dev, torch.bfloat16, 0)
    m, note = convert(m, "bitmat")
    _cleanup(dev)
    if disable_gc:
        gc.collect(); gc.disable()
    r = measure_prefill(m, cfg.vocab_size, 2048, dev, 0)
    ids = torch.randint(0, cfg.vocab_size, (1, 2048), device=dev)
    with torch.no_grad():
        m(ids); torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            t = time.perf_counter(); m(ids); torch.cuda.synchronize(); wall = (time.perf_counter() - t) * 1e3
    gpu = sum(e.device_time for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA) / 1e3
    if disable_gc:
        gc.enable()
    res = {"tok_s": round(r["prefill_tokens_per_s"]), "wall_ms (profiled)": round(wall, 1), "gpu_ms": round(gpu, 1),
           "launch_us": launch_us(), "gc_objects": len(gc.get_objects())}
    print(tag, json.dumps(res), flush=True)
    del m; _cleanup(dev)
    return res

bitmat_prefill("1 fresh process")
m, cfg = build_model(p, "llama", None, dev, torch.bfloat16, 0)
from bitmat_hf import GraphGreedyDecoder
dec = GraphGreedyDecoder(m, max_cache_len=160, compile="auto", pdl=None)
r, _ = measure_graph(dec, cfg.vocab_size, 1, 32, 128, dev, 1)
print("bf16 graph b1 step ms", r["step_ms"], flush=True)
dec.close(); del dec, m; _reset_compiled(); _cleanup(dev)
bitmat_prefill("2 after bf16 graph")
bitmat_prefill("3 after bf16 graph, gc disabled", disable_gc=True)
gc.collect(); gc.freeze()
bitmat_prefill("4 after gc.freeze()")
