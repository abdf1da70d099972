"""Host-side profile (cProfile) of one eager BitMat prefill forward, Llama-3-8B shape, 1 x 2048."""
import cProfile, pstats, io, time
import torch
from bitmat_bench.model import build_model, convert
from bitmat_bench.shapes import model_preset
dev = torch.device("cuda")
m, cfg = build_model(model_preset("llama3-8b"), "llama", None, dev, torch.bfloat16, 0)
m, note = convert(m, "bitmat")
ids = torch.randint(0, cfg.vocab_size, (1, 2048), device=dev)
with torch.no_grad():
    for _ in range(3):
        m(ids)
    torch.cuda.synchronize()
    # host time alone: enqueue with the GPU made slow to drain? no: measure enqueue time of one forward
    t = time.perf_counter(); m(ids); enq = time.perf_counter() - t; torch.cuda.synchronize(); tot = time.perf_counter() - t
    print(f"one forward: host returns after {enq*1e3:.1f} ms, done after {tot*1e3:.1f} ms")
    pr = cProfile.Profile(); pr.enable(); m(ids); torch.cuda.synchronize(); pr.disable()
s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(30); print(s.getvalue()[:6000])
