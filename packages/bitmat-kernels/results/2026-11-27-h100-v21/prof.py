"""ncu target (v21): the Gluon weight-only GEMM on one shape and tile, repeated.
python3 prof.py N K M BLOCK_N BLOCK_M BLOCK_KP WARPS STAGES"""
import sys

import bitmat_kernels as bk
import torch
from bitmat_kernels.ops.linear import hopper
from bitmat_kernels.ops.linear.configs import HopperWeightOnlyConfig

n, k, m, bn, bm, bkp, warps, stages = (int(v) for v in sys.argv[1:9])
cfg = HopperWeightOnlyConfig(bn, bm, bkp, warps, stages)
packed = bk.pack_ternary(torch.randint(-1, 2, (n, k), device="cuda", dtype=torch.int8))
scale = torch.rand(n, device="cuda") + 0.5
x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
y = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
for _ in range(4):
    hopper.weight_only_sm90(cfg, x, packed, scale, None, y)
torch.cuda.synchronize()
