"""Compile the GEMM kernel for sm_90 on any machine (Triton ships ptxas; no GPU needed) and print what
costs no device time to know: registers, local-memory stack (spills), shared memory, whether loads are
pipelined (cp.async / TMA), the wgmma shapes. METHOD.md: read the resource report before spending GPU time.

    python packages/bitmat-kernels/scripts/inspect_gemm.py
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import triton
from bitmat_kernels.ops.linear.kernel import _bitmat_gemm_kernel as kernel
from triton.backends.compiler import GPUTarget

CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
PARAMS = [
    "x_ptr",
    "x_scale_ptr",
    "row_sum_ptr",
    "w_ptr",
    "w_scale_ptr",
    "bias_ptr",
    "y_ptr",
    "M",
    "N",
    "K",
    "KP",
    "w_scale_stride",
]


def inspect(
    a8: bool, bm: int, bn: int, bkp: int, warps: int, stages: int, bits: int = 2, planes: bool = False, pairs=False
) -> str:
    """pairs: the weight-only code-pair decode (kernel.code_pairs_as_halves; the weights read as int16 pairs)."""
    w_type = "*i16" if pairs else "*u8"
    types = ["*i8" if a8 else "*bf16", "*fp32", "*i32" if a8 else "*fp32", w_type, "*fp32", "*fp32", "*bf16"] + [
        "i32"
    ] * 5
    signature = dict(zip(PARAMS, types))
    constants = dict(
        HAS_BIAS=False,
        BITS=bits,
        A8=a8,
        FP32_X=False,
        USE_PTX=True,
        BLOCK_M=bm,
        BLOCK_N=bn,
        BLOCK_KP=bkp,
        GROUP_M=8,
        SPLIT_K=1,
        FAST_CVT=True,
        HALF_IS_BF16=True,
        GDC=False,
        WARP_SPEC=False,
        PLANES=planes,
        CODE_PAIRS=pairs,
    )
    signature.update({name: "constexpr" for name in constants})
    signature["ws_ptr"] = "*i32"  # a pointer argument (unused without split-K), not a constant
    # The JIT specialises pointers (16-byte aligned) and sizes (multiples of 16) on alignment; without these
    # hints the loads cannot be vectorised, so nothing is pipelined (cp.async) and the report misleads.
    aligned = [p for p in PARAMS if p not in ("M", "w_scale_stride")] + ["ws_ptr"]
    src = triton.compiler.ASTSource(
        fn=kernel,
        signature=signature,
        constexprs={(kernel.arg_names.index(k),): v for k, v in constants.items()},
        attrs={(kernel.arg_names.index(a),): [["tt.divisibility", 16]] for a in aligned},
    )
    compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps, "num_stages": stages})
    cubin = Path("/tmp/bitmat_inspect.cubin")
    cubin.write_bytes(compiled.asm["cubin"])
    usage = subprocess.run([str(CUOBJDUMP), "-res-usage", str(cubin)], capture_output=True, text=True).stdout
    regs = re.search(r"REG:(\d+)", usage)
    stack = re.search(r"STACK:(\d+)", usage)
    ptx = compiled.asm["ptx"]
    waits = re.findall(r"wgmma.wait_group.sync.aligned (\d+)", ptx)
    shapes = sorted(set(re.findall(r"wgmma.mma_async.sync.aligned.(m[0-9]+n[0-9]+k[0-9]+)", ptx)))
    return (
        f"{'A8' if a8 else 'A16'}{' planes' if planes else ''}{' pairs' if pairs else ''} tile ({bm},{bn},{bkp}) warps {warps} stages {stages}: "
        f"regs {regs.group(1) if regs else '?'}, stack {stack.group(1) if stack else '?'} B, "
        f"shared {compiled.metadata.shared} B, cp.async {ptx.count('cp.async.cg') + ptx.count('cp.async.ca')}, "
        f"TMA {ptx.count('cp.async.bulk')}, wgmma {shapes}, wgmma waits {waits}"
    )


if __name__ == "__main__":
    for args in [
        (True, 16, 64, 128, 4, 4),
        (True, 64, 128, 64, 4, 4),
        (True, 64, 256, 64, 8, 3),
        (False, 64, 256, 64, 8, 3),
        (True, 16, 64, 128, 4, 4, 2, True),
        (True, 64, 128, 64, 4, 4, 2, True),
    ]:
        print(inspect(*args))
