"""Diagnose bf16 rounding differences of the fused norm / silu kernels on the GPU."""
import torch, triton, triton.language as tl
import torch.nn.functional as F
import bitmat_kernels as bk
from bitmat_kernels.ops.quantize.kernel import round_to
from bitmat_kernels.ops.norm.reference import rms_norm_reference

@triton.jit
def k(x_ptr, y_ptr, z_ptr, N: tl.constexpr):
    o = tl.arange(0, N)
    v = tl.load(x_ptr + o)
    tl.store(y_ptr + o, round_to(v, tl.bfloat16))
    tl.store(z_ptr + o, v.to(tl.bfloat16))

x = torch.randn(4096, device="cuda") * 3
y = torch.empty(4096, dtype=torch.bfloat16, device="cuda"); z = torch.empty_like(y)
c = k[(1,)](x, y, z, 4096)
t = x.to(torch.bfloat16)
print("round_to differ", (y != t).float().mean().item(), "native differ", (z != t).float().mean().item())
bad = (y != t).nonzero().flatten()[:5]
for i in bad.tolist():
    print(" x bits %08x  torch %04x  round_to %04x  native %04x" % (x[i].view(torch.int32).item() & 0xffffffff,
          t[i].view(torch.int16).item() & 0xffff, y[i].view(torch.int16).item() & 0xffff, z[i].view(torch.int16).item() & 0xffff))
ptx = c.asm["ptx"]
print("\n".join(l for l in ptx.splitlines() if any(s in l for s in ("cvt", "and.b32", "shr", "add.s32", "add.u32", "bfe", "prmt")))[:3000])
for m, kk in ((1, 4096), (2048, 4096), (3, 14336)):
    xx = (torch.randn(m, kk, device="cuda") * 3).bfloat16(); w = (torch.rand(kk, device="cuda") + 0.5).bfloat16()
    yy, q = bk.rms_norm_quantize(xx, w, eps=1e-5)
    ref = rms_norm_reference(xx, w, 1e-5)
    d = (yy != ref)
    print("norm", m, kk, "differ", d.float().mean().item(), "per row (first 4):", d.float().mean(1)[:4].tolist())
    # without weight: isolates the first rounding
    y0, _ = bk.rms_norm_quantize(xx, None, eps=1e-5)
    print("   no weight differ", (y0 != rms_norm_reference(xx, None, 1e-5)).float().mean().item())
for n in (4096, 14336):
    g = (torch.randn(1, n, device="cuda") * 3).bfloat16(); u = torch.randn(1, n, device="cuda").bfloat16()
    h, _ = bk.silu_mul_quantize(g, u)
    s_ref = F.silu(g)
    print("silu", n, "differ", (h != s_ref * u).float().mean().item())
