"""model.generate per-step time, Llama-3-8B shape, batch 1: which fusion costs time there? One variant per process
(argv[1]: none | projections | quantization | both), and the eager prefill's share (a 32-token forward, timed)."""
import sys, time, json
import torch, bitmat_nn
from bitmat_bench.model import build_model, convert, measure_generate
from bitmat_bench.shapes import model_preset
which = sys.argv[1]
dev = torch.device("cuda")
m, cfg = build_model(model_preset("llama3-8b"), "llama", None, dev, torch.bfloat16, 0)
m, _ = convert(m, "bitmat-unfused")
if which in ("projections", "both"):
    bitmat_nn.fuse_projections(m)
if which in ("quantization", "both"):
    bitmat_nn.fuse_norms(m); bitmat_nn.fuse_gated_mlps(m)
r, _ = measure_generate(m, cfg.vocab_size, 1, 32, 128, dev, 1)
ids = torch.randint(0, cfg.vocab_size, (1, 32), device=dev)
with torch.no_grad():
    for _ in range(3):
        m(ids)
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(5):
        m(ids)
    torch.cuda.synchronize(); eager32 = (time.perf_counter() - t) / 5 * 1e3
print(json.dumps({"fused": which, "generate_ms_per_step": round(r["generate_ms_per_step"], 3),
                  "generate_tokens_per_s": round(r["generate_tokens_per_s"], 1), "eager_forward_1x32_ms": round(eager32, 2)}), flush=True)
