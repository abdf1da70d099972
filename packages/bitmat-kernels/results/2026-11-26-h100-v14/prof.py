"""ncu target: one bitmat_linear call shape, repeated (python3 prof.py N K M MODE FMT [PAIRS]).
MODE: a8 or wo (weight-only); FMT ternary or binary; PAIRS 0/1 forces the GEMM decode."""
import dataclasses
import sys

import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kernel
import torch
from bitmat_kernels.ops.linear import configs

n, k, m = (int(v) for v in sys.argv[1:4])
mode, fmt = sys.argv[4], sys.argv[5]
if len(sys.argv) > 6:
    p = bool(int(sys.argv[6]))
    real = configs.gemm_config
    kernel.gemm_config = lambda *a, **kw: dataclasses.replace(real(*a, **kw), code_pairs=p)
w = torch.randn(n, k, device="cuda") * 0.02
codes, scale = (bk.ternarize if fmt == "ternary" else bk.binarize)(w)
packed = bk.pack(codes, weight_bits=1.58 if fmt == "ternary" else 1)
x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
for _ in range(4):
    kernel.linear_triton(x, packed, scale, k, fmt, 8 if mode == "a8" else None, None)
torch.cuda.synchronize()
