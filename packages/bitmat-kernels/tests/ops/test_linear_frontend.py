"""The CUDA path's kernels through Triton's front end (Python AST -> Triton IR) on a CPU.

The interpreter runs the kernels with USE_PTX=False, so the branches taken only on a GPU (inline
PTX, fast conversions, split-K with PTX) would otherwise meet Triton's compiler first on a GPU.
Here the launchers run with their GPU settings, the launch arguments are captured, and each kernel
is lowered to Triton IR for an sm_90 target: no GPU, no ptxas. Skipped if this Triton's internal
compiler API differs.
"""

from __future__ import annotations

import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kernel
import pytest
import torch

triton = pytest.importorskip("triton")
if not torch.cuda.is_available():
    pass  # the lowering needs no GPU
try:
    from triton._C.libtriton import ir
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
except ImportError:  # pragma: no cover - internal API moved
    pytest.skip("this Triton's internal compiler API is not the one this test knows", allow_module_level=True)

TORCH_TO_TRITON = {
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.int16: "i16",
    torch.int32: "i32",
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
}


class Capture:
    """Stands in for a @triton.jit kernel: records the launch instead of running it."""

    def __init__(self, fn, launches):
        self.fn, self.launches = fn, launches  # fn: the JITFunction

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.launches.append((self.fn, args, kwargs))

        return launch


def lower(fn, args, kwargs):
    bound = dict(zip(fn.arg_names, args))
    bound.update({k: v for k, v in kwargs.items() if k in fn.arg_names})
    constexpr_names = {p.name for p in fn.params if p.is_constexpr}
    signature, constexprs = {}, {}
    for i, name in enumerate(fn.arg_names):
        value = bound.get(name, fn.params[i].default)
        if name in constexpr_names or value is None:
            signature[name] = "constexpr"
            constexprs[(i,)] = value
        elif isinstance(value, torch.Tensor):
            signature[name] = "*" + TORCH_TO_TRITON[value.dtype]
        elif isinstance(value, float):
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
    src = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=constexprs)
    target = GPUTarget("cuda", 90, 32)
    backend = make_backend(target)
    options = backend.parse_options({"num_warps": kwargs.get("num_warps", 4)})
    ctx = ir.context()
    ir.load_dialects(ctx)
    backend.load_dialects(ctx)
    return str(src.make_ir(target, options, backend.get_codegen_implementation(options), backend.get_module_map(), ctx))


def lower_all_launches(dtype, weight_bits, activation_bits, m, split_k, pdl=False):
    """Runs the launcher with GPU settings, captures its launches and lowers each kernel."""
    from unittest import mock

    from bitmat_kernels.ops.linear.configs import DecodeConfig, GemmConfig

    launches = []

    def quantize_stub(x, eps, with_sum=False, pdl=False):
        out = (torch.zeros(x.shape, dtype=torch.int8), torch.ones(x.shape[0], 1))
        return (*out, torch.zeros(x.shape[0], dtype=torch.int32)) if with_sum else out

    patches = [
        mock.patch.object(kernel, name, Capture(getattr(kernel, name), launches))
        for name in (
            "_bitmat_gemm_kernel",
            "_bitmat_gemv_kernel",
            "_bitmat_gemv_weight_only_kernel",
            "_split_k_finish_kernel",
            "_weight_only_row_offsets_kernel",
        )
    ]
    patches += [
        mock.patch.object(kernel, "interpreter_enabled", lambda: False),  # the GPU settings (USE_PTX=True)
        mock.patch.object(kernel, "pdl_enabled", lambda device: pdl),
        mock.patch.object(kernel, "gemm_config", lambda *a, **kw: GemmConfig(16, 64, 64, split_k=split_k)),
        mock.patch.object(kernel, "decode_config", lambda *a, **kw: DecodeConfig(64, 64, fused_quant=False)),
        mock.patch.object(kernel, "use_dequant", lambda *a, **kw: False),  # the Triton GEMM, not cuBLAS
        mock.patch.object(kernel, "quantize_activations_triton", quantize_stub),
    ]
    for p in patches:
        p.start()
    try:
        k, n = 256, 128
        codes = torch.randint(-1, 2, (n, k), dtype=torch.int8)
        packed = bk.pack(codes if weight_bits == 1.58 else codes.clamp(min=0) * 2 - 1, weight_bits=weight_bits)
        fmt = "ternary" if weight_bits == 1.58 else "binary"
        x = torch.zeros(m, k, dtype=dtype)
        kernel.linear_triton(x, packed, torch.ones(1), k, fmt, activation_bits, torch.zeros(n))
    finally:
        for p in patches:
            p.stop()
    assert launches
    if activation_bits is None and dtype != torch.float32 and m > 1:  # the code-pair decode and its offsets
        assert any(kw.get("CODE_PAIRS") for _, _, kw in launches), launches
        assert any(fn is kernel._weight_only_row_offsets_kernel for fn, _, _ in launches), launches
    if pdl:  # the GEMV / GEMM waits for the quantizer, which lets it launch early
        assert any(kw.get("GDC") and kw.get("launch_pdl") for _, _, kw in launches), launches
        from bitmat_kernels.ops.quantize.kernel import _quantize_activations_kernel

        q_args = (torch.zeros(m, 256, dtype=dtype), torch.zeros(m, 256, dtype=torch.int8), torch.zeros(m),
                  torch.zeros(m, dtype=torch.int32), m, 256, 1e-5)  # fmt: skip
        lower(_quantize_activations_kernel, q_args, dict(BLOCK_K=256, WRITE_SUM=False, ONE_BLOCK=True, GDC=True))
        # a later chunk's quantizer of a chunked A8 GEMM: lets the next GEMM launch, then waits for the one before
        ir_text = lower(_quantize_activations_kernel, q_args, dict(BLOCK_K=256, WRITE_SUM=True, GDC=True, BEHIND=True))
        launch = ir_text.find("launch_dependents")
        wait = max(ir_text.find("grid_dependency_wait"), ir_text.find("griddepcontrol.wait"))  # Triton >= 3.7 / 3.6
        assert 0 <= launch < ir_text.find("scf.for") < wait, ir_text[:3000]
    for fn, args, kwargs in launches:
        ir_text = lower(fn, args, kwargs)
        if kwargs.get("CODE_PAIRS"):  # each slice pair picked its own decoding PTX
            bits, bf16 = kwargs["BITS"], kwargs["HALF_IS_BF16"]
            for s in range(0, 8 // bits, 2):
                assert kernel._code_pairs_as_halves_asm(bits, s, bf16) in ir_text, (bits, s, bf16)


CASES = [
    (d, wb, ab, m, sk, False)
    for d in ("bfloat16", "float16", "float32")
    for wb, ab in ((1.58, 8), (1.58, None), (1, 8), (1, None))
    for m, sk in ((1, 1), (20, 1), (20, 2))
] + [  # programmatic dependent launch (Hopper): the one-token GEMV and the GEMM, split-K too
    ("bfloat16", wb, 8, m, sk, True) for wb in (1.58, 1) for m, sk in ((1, 1), (20, 1), (20, 2))
]


def test_gpu_kernels_lower_to_triton_ir():
    """In a subprocess without the interpreter (it replaces the kernels with Python functions)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRITON_INTERPRET": "0"}
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import test_linear_frontend as t; t.main()"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    failures = {case: err for case, err in results.items() if err}
    assert not failures, failures


def main():
    import json

    results = {}
    for d, wb, ab, m, sk, pdl in CASES:
        name = f"{d}-{wb}-{ab}-M{m}-split{sk}" + ("-pdl" if pdl else "")
        try:
            lower_all_launches(getattr(torch, d), wb, ab, m, sk, pdl)
            results[name] = ""
        except Exception as e:  # reported by the test
            results[name] = f"{type(e).__name__}: {str(e)[-400:]}"
    print(json.dumps(results))
