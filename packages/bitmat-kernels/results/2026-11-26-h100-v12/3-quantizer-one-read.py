"""Experiment (GPU): the A8 quantizer's row in registers up to 32768 features (one read of x) against the current
two passes above 16384, and warps for one-read rows. Codes, scales and sums must equal the current kernel's."""
import json, os, importlib.util
import torch, triton
import bitmat_kernels.ops.quantize.kernel as qk
spec = importlib.util.spec_from_file_location("sw", "packages/bitmat-kernels/scripts/gpu_sweep.py")
sw = importlib.util.module_from_spec(spec); spec.loader.exec_module(sw)
out = os.environ.get("OUT", "/tmp")
rec = open(f"{out}/exp_quant.jsonl", "w")
def emit(**d):
    rec.write(json.dumps(d) + "\n"); rec.flush(); print(d, flush=True)
def run(x, block, warps, one):
    m, k = x.shape
    xq = torch.empty(m, k, dtype=torch.int8, device=x.device); sc = torch.empty(m, device=x.device); su = torch.empty(m, dtype=torch.int32, device=x.device)
    qk._quantize_activations_kernel[(m,)](x, xq, sc, su, k, 1e-5, BLOCK_K=block, WRITE_SUM=True, ONE_BLOCK=one, num_warps=warps)
    return xq, sc, su
for k in [28672, 14336, 6912, 4096]:
    for m in [256, 4096]:
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        ref = qk.quantize_activations_triton(x, 1e-5, with_sum=True)
        res = dict(k=k, m=m, current=round(sw.graph_time_us(lambda i: qk.quantize_activations_triton(x, 1e-5, with_sum=True), 4), 2))
        nb = triton.next_power_of_2(k)
        for block, warps in [(nb, 8), (nb, 16), (nb, 32), (max(nb // 2, 1024), 8), (max(nb // 2, 1024), 16)]:
            one = k <= block
            try:
                got = run(x, block, warps, one)
                eq = all(torch.equal(a.reshape(-1), b.reshape(-1)) for a, b in zip(got, ref))
                t = sw.graph_time_us(lambda i: run(x, block, warps, one), 4)
                res[f"b{block}w{warps}{'one' if one else 'two'}"] = (round(t, 2), eq)
            except Exception as e:
                res[f"b{block}w{warps}"] = repr(e)[:100]
        emit(kind="quant", **res)
