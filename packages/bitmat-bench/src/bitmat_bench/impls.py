"""What `bitmat-bench kernels` measures: one `KernelImpl` per implementation of y = x @ W^T.

Every implementation gets the same problem: random ternary (or binary) codes [N, K] with a
per-tensor scale, and bf16 activations x [M, K]. Each builds its own weight format from the codes,
says how many bytes one copy of its weights takes, runs, and computes a float64 reference for a
subset of rows (checked before anything is timed).

Peers are imported lazily: a missing one is "skipped" with the reason, one that fails on import,
build or call is "failed" with its error, and the run goes on.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


class Skip(Exception):
    """The implementation cannot run here (not installed, needs CUDA, shape unsupported)."""


@dataclass
class Problem:
    """One weight shape with its codes. `codes` are ternary int8 {-1,0,1}; `bcodes` binary {-1,+1}."""

    n: int
    k: int
    device: torch.device
    codes: torch.Tensor
    gamma: torch.Tensor  # float32 [1]
    bcodes: torch.Tensor
    beta: torch.Tensor  # float32 [1]

    @staticmethod
    def random(n: int, k: int, device: torch.device, seed: int = 0) -> Problem:
        g = torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + n * 31 + k)
        codes = torch.randint(-1, 2, (n, k), generator=g, dtype=torch.int8).to(device)
        bcodes = (torch.randint(0, 2, (n, k), generator=g, dtype=torch.int8) * 2 - 1).to(device)
        gamma = torch.tensor([0.02], dtype=torch.float32, device=device)
        beta = torch.tensor([0.015], dtype=torch.float32, device=device)
        return Problem(n, k, device, codes, gamma, bcodes, beta)

    def dense(self, binary: bool = False, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        c, s = (self.bcodes, self.beta) if binary else (self.codes, self.gamma)
        return c.to(dtype) * s.to(dtype)


def tensor_bytes(obj: Any, _seen: set[int] | None = None) -> int:
    """Bytes of the distinct tensors in obj (a tensor, a module, or a tuple/list/dict of them)."""
    seen = _seen if _seen is not None else set()
    if isinstance(obj, torch.Tensor):
        if obj.device.type == "meta":
            key, nbytes = id(obj), obj.numel() * obj.element_size()
        else:  # views of one storage (fused projections) count it once, whole
            key, nbytes = obj.untyped_storage().data_ptr(), obj.untyped_storage().nbytes()
        if key in seen:
            return 0
        seen.add(key)
        return nbytes
    if isinstance(obj, torch.nn.Module):
        return sum(tensor_bytes(t, seen) for t in list(obj.parameters()) + list(obj.buffers())) + sum(
            tensor_bytes(v, seen) for v in vars(obj).values() if isinstance(v, torch.Tensor)
        )
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v, seen) for v in obj)
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen) for v in obj.values())
    return 0


def clone_weights(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, tuple):
        return tuple(clone_weights(v) for v in obj)
    if isinstance(obj, list):
        return [clone_weights(v) for v in obj]
    if isinstance(obj, dict):
        return {k: clone_weights(v) for k, v in obj.items()}
    return copy.deepcopy(obj)


class KernelImpl:
    """Base class. Subclasses set the attributes and implement `build` and `run`."""

    name = "impl"
    label = "impl"
    kind = "peer"  # "baseline" | "bitmat" | "peer"
    compute = "bf16"  # which measured matmul rate bounds it: "bf16" or "int8"
    act_bytes = 2  # bytes per activation element read
    out_bytes = 2  # bytes per output element written
    tol = 2e-2  # relative-norm error allowed against the reference
    cuda_only = False
    binary = False
    description = ""

    def check_available(self, device: torch.device) -> None:
        """Raise Skip (not installed, needs CUDA) or any other exception (broken install)."""
        if self.cuda_only and device.type != "cuda":
            raise Skip("needs a CUDA device")

    def version(self) -> str | None:
        return None

    def check_shape(self, n: int, k: int, m: int, device: torch.device) -> None:
        """Raise Skip when this (N, K, M) is unsupported."""

    def build(self, prob: Problem) -> Any:
        raise NotImplementedError

    def copy(self, weights: Any) -> Any:
        return clone_weights(weights)

    def weight_bytes(self, weights: Any) -> int:
        return tensor_bytes(weights)

    def inputs(self, x: torch.Tensor, weights: Any) -> Any:
        """What `run` takes, made from the bf16 activations (untimed)."""
        return x

    def run(self, inp: Any, weights: Any) -> torch.Tensor:
        raise NotImplementedError

    def reference(self, prob: Problem, inp: Any, weights: Any, rows: torch.Tensor) -> torch.Tensor:
        """float64 [len(rows), N]: by default F.linear of the dense dequantized weight."""
        x = inp.index_select(0, rows).to(torch.float64)
        return x @ prob.dense(self.binary).T

    def output_rows(self, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return y.reshape(-1, y.shape[-1]).index_select(0, rows)


# --------------------------------------------------------------------------------------------- baselines


class CublasBF16(KernelImpl):
    name = "cublas-bf16"
    label = "cuBLAS bf16"
    kind = "baseline"
    tol = 1e-2
    description = "torch.nn.functional.linear(x_bf16, w_bf16): the reference point of every speedup"

    def build(self, prob: Problem) -> Any:
        return prob.dense(False, torch.float32).to(torch.bfloat16).contiguous()

    def run(self, inp, weights):
        return F.linear(inp, weights)

    def reference(self, prob, inp, weights, rows):
        return inp.index_select(0, rows).double() @ weights.double().T


class TorchInt8(KernelImpl):
    name = "torch-int8"
    label = "torch._int_mm int8"
    kind = "baseline"
    compute = "int8"
    act_bytes = 1
    out_bytes = 4
    tol = 1e-6
    description = "torch._int_mm(x_int8, w_int8.t()): int8 GEMM only (activations pre-quantized, int32 out)"

    def check_shape(self, n, k, m, device):
        if device.type == "cuda" and (m <= 16 or k % 8 or n % 8):
            raise Skip("torch._int_mm on CUDA needs M > 16 and K, N multiples of 8")

    def build(self, prob):
        return prob.codes.contiguous()  # [N, K]; run passes its transpose (column-major [K, N])

    def inputs(self, x, weights):
        g = torch.Generator(device="cpu").manual_seed(x.shape[0])
        return torch.randint(-127, 128, tuple(x.shape), generator=g, dtype=torch.int8).to(x.device)

    def run(self, inp, weights):
        return torch._int_mm(inp, weights.t())

    def reference(self, prob, inp, weights, rows):
        return inp.index_select(0, rows).double() @ weights.double().T


# --------------------------------------------------------------------------------------------- ours


class BitmatLinear(KernelImpl):
    """bitmat_kernels.bitmat_linear in one of its modes."""

    kind = "bitmat"
    tol = 1e-2

    def __init__(self, weight_bits: float, activation_bits: int | None):
        self.weight_bits = weight_bits
        self.activation_bits = activation_bits
        self.binary = weight_bits == 1
        wb = "1" if self.binary else "158"
        ab = "8" if activation_bits == 8 else "16"
        self.name = f"bitmat-w{wb}a{ab}"
        self.label = f"BitMat W{'1' if self.binary else '1.58'}A{ab}"
        self.compute = "int8" if activation_bits == 8 else "bf16"
        self.description = (
            f"bitmat_kernels.bitmat_linear(weight_bits={weight_bits}, activation_bits={activation_bits}); "
            "activation quantization included in the time"
        )

    def version(self):
        import bitmat_kernels

        return bitmat_kernels.__version__

    def check_available(self, device):
        import bitmat_kernels  # noqa: F401  (a required dependency: failing here is a failure)

    def build(self, prob):
        import bitmat_kernels as bk

        codes, scale = (prob.bcodes, prob.beta) if self.binary else (prob.codes, prob.gamma)
        packed = bk.pack(codes, weight_bits=self.weight_bits)
        return (packed.contiguous(), scale.clone())

    def run(self, inp, weights):
        import bitmat_kernels as bk

        packed, scale = weights
        return bk.bitmat_linear(
            inp,
            packed,
            scale,
            in_features=inp.shape[-1],
            weight_bits=self.weight_bits,
            activation_bits=self.activation_bits,
        )

    def reference(self, prob, inp, weights, rows):
        from bitmat_kernels.ops.linear.reference import linear_reference

        packed, scale = weights
        x = inp.index_select(0, rows).to(torch.float64)
        fmt = "binary" if self.binary else "ternary"
        return linear_reference(
            x, packed, scale, prob.k, fmt, self.activation_bits, None, accumulate_dtype=torch.float64
        ).to(torch.float64)


# --------------------------------------------------------------------------------------------- peers


class GemLite(KernelImpl):
    """gemlite's BitNet helpers: A16W158_INT (weight-only) and A8W158_INT_dynamic (int8 activations)."""

    cuda_only = True

    def __init__(self, a8: bool):
        self.a8 = a8
        self.name = "gemlite-a8w158" if a8 else "gemlite-a16w158"
        self.label = "gemlite A8W1.58" if a8 else "gemlite A16W1.58"
        self.compute = "int8" if a8 else "bf16"
        self.tol = 5e-2 if a8 else 2e-2
        helper = "A8W158_INT_dynamic" if a8 else "A16W158_INT"
        self.description = f"gemlite.helper.{helper}(...).from_weights(codes, gamma)"

    def version(self):
        return _dist_version("gemlite")

    def check_available(self, device):
        super().check_available(device)
        if importlib.util.find_spec("gemlite") is None:
            raise Skip("gemlite not installed")
        import gemlite.helper  # noqa: F401

    def build(self, prob):
        from gemlite import helper

        cls = helper.A8W158_INT_dynamic if self.a8 else helper.A16W158_INT
        weight = prob.codes.to(torch.bfloat16)
        layer = cls(device=str(prob.device), dtype=torch.bfloat16).from_weights(weight, prob.gamma.clone())
        # gemlite 0.6's A16W158_INT makes its scales on the CPU (no device= in torch.ones): move any such
        # tensor to the weights' device, which is what its A8W158 helper does.
        moved = _move_host_tensors(layer, prob.device)
        if moved:
            log.info("%s: moved %s from the CPU to %s (gemlite leaves them there)", self.name, moved, prob.device)
        return layer

    def copy(self, weights):
        try:
            return copy.deepcopy(weights)
        except Exception as e:  # rebuild is the fallback
            raise RuntimeError(f"could not copy the gemlite layer: {e}") from e

    def run(self, inp, weights):
        return weights(inp)


def _move_host_tensors(module: torch.nn.Module, device: torch.device) -> list[str]:
    moved = []
    for name in ("W_q", "scales", "zeros", "bias", "meta_scale"):
        t = getattr(module, name, None)
        if isinstance(t, torch.Tensor) and t.device != device:
            new = t.to(device)
            try:
                setattr(
                    module,
                    name,
                    torch.nn.Parameter(new, requires_grad=False) if isinstance(t, torch.nn.Parameter) else new,
                )
            except Exception:
                object.__setattr__(module, name, new)
            moved.append(name)
    return moved


class BitmatTL(KernelImpl):
    """The original BitMat (PyPI bitmat-tl 0.3.7): its Triton kernel `bitmat_`, imported by path
    (its package __init__ needs bitsandbytes), with its own activation quantization and scaling, as
    in its `BitMat.forward` (the weight is pre-transposed once, not per call)."""

    name = "bitmat-tl"
    label = "BitMat 0.3.7 (bitmat-tl)"
    compute = "int8"
    cuda_only = True
    tol = 5e-2
    out_bytes = 2
    description = (
        "bitmat-tl 0.3.7 triton_kernels/bitmat_kernel.py bitmat_ (int8 x packed 2-bit, fp16 out) + its quantizer"
    )

    _kernel_mod: Any = None
    _pack_fn: Any = None

    def version(self):
        return _dist_version("bitmat-tl")

    def check_available(self, device):
        super().check_available(device)
        root = find_bitmat_tl()
        if root is None:
            raise Skip("bitmat-tl not installed")
        self._kernel_mod, self._pack_fn = load_bitmat_tl(root)

    def build(self, prob):
        codes = prob.codes
        if codes.shape[1] % 4:
            raise Skip("bitmat-tl needs K divisible by 4")
        packed = self._pack_fn(codes.clone()) if self._pack_fn is not None else pack_bitmat_tl(codes)
        packed_t = packed.t().contiguous()  # [K/4, N] as bitmat_ wants
        scale_w = (1.0 / prob.gamma.to(torch.float32)).to(torch.bfloat16).reshape(())  # bitmat-tl stores 1/mean|W|
        return (packed_t, scale_w)

    def run(self, inp, weights):
        packed_t, scale_w = weights
        xq, scale_x = bitmat_tl_quantize_activations(inp)
        y = self._kernel_mod.bitmat_(xq, packed_t)
        return y / scale_w / scale_x

    def reference(self, prob, inp, weights, rows):
        return inp.index_select(0, rows).double() @ prob.dense(False).T


class _HFBitNetLayer(KernelImpl):
    """What transformers' two BitNet layer classes share: availability, copying, running, the reference."""

    compute = "bf16"
    cuda_only = True
    tol = 5e-2
    hf_class = ""  # name in transformers.integrations.bitnet

    def version(self):
        return _dist_version("transformers")

    def check_available(self, device):
        super().check_available(device)
        if importlib.util.find_spec("transformers") is None:
            raise Skip("transformers not installed")
        import transformers.integrations.bitnet as hf_bitnet

        if not hasattr(hf_bitnet, self.hf_class):
            raise Skip(f"transformers.integrations.bitnet has no {self.hf_class}")

    def copy(self, weights):
        return copy.deepcopy(weights)

    def run(self, inp, weights):
        with torch.no_grad():
            return weights(inp)

    def reference(self, prob, inp, weights, rows):
        return inp.index_select(0, rows).double() @ prob.dense(False).T


class HFBitLinear(_HFBitNetLayer):
    """transformers.integrations.bitnet.BitLinear: 2-bit packed along rows (HF's "bitnet" format),
    unpacked to bf16 on every call (torch.compile'd), int8-rounded activations, bf16 F.linear."""

    name = "hf-bitlinear"
    label = "transformers BitLinear"
    hf_class = "BitLinear"
    description = "transformers.integrations.bitnet.BitLinear (weight_scale = 1/mean|W|, unpack per call)"

    def check_shape(self, n, k, m, device):
        if n % 4:
            raise Skip("transformers BitLinear needs out_features divisible by 4")

    def build(self, prob):
        from transformers.integrations.bitnet import BitLinear, pack_weights

        layer = BitLinear(prob.k, prob.n, bias=False, device=prob.device, dtype=torch.bfloat16).to(prob.device)
        with torch.no_grad():
            layer.weight.copy_(pack_weights(prob.codes.clone()))
            layer.weight_scale.fill_(float(1.0 / prob.gamma.item()))
        return layer.eval()


class HFAutoBitLinear(_HFBitNetLayer):
    """transformers.integrations.bitnet.AutoBitLinear in offline mode: dense bf16 ternary weight,
    fake-quantized int8 activations (torch.compile'd), bf16 F.linear, times weight_scale."""

    name = "hf-autobitlinear"
    label = "transformers AutoBitLinear"
    hf_class = "AutoBitLinear"
    description = "transformers.integrations.bitnet.AutoBitLinear(online_quant=False): bf16 weights in memory"

    def build(self, prob):
        from transformers.integrations.bitnet import AutoBitLinear

        layer = AutoBitLinear(prob.k, prob.n, bias=False, device=prob.device, dtype=torch.bfloat16, online_quant=False)
        layer = layer.to(device=prob.device, dtype=torch.bfloat16)  # some transformers versions leave it on the CPU
        with torch.no_grad():
            layer.weight.copy_(prob.codes.to(torch.bfloat16))
            layer.weight_scale.fill_(float(prob.gamma.item()))
        layer.requires_grad_(False)
        return layer.eval()


# --------------------------------------------------------------------------------------------- bitmat-tl loading


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except Exception:
        return None


_KERNEL_REL = Path("bitmat") / "triton_kernels" / "bitmat_kernel.py"


def find_bitmat_tl() -> Path | None:
    """The folder holding bitmat-tl's `bitmat/` package, without importing it (our own bitmat-hf
    ships a different `bitmat` module, so `import bitmat` is not a test). BITMAT_TL_PATH overrides."""
    override = os.environ.get("BITMAT_TL_PATH")
    if override:
        p = Path(override)
        for cand in (p, p.parent):
            if (cand / _KERNEL_REL).is_file():
                return cand
    try:
        dist = importlib.metadata.distribution("bitmat-tl")
        f = Path(str(dist.locate_file(_KERNEL_REL)))
        if f.is_file():
            return f.parents[2]
    except Exception:
        pass
    for entry in sys.path:
        try:
            if entry and (Path(entry) / _KERNEL_REL).is_file():
                return Path(entry)
        except Exception:
            continue
    return None


_BITMAT_TL_PKG = "_bitmat_bench_bitmat_tl"


def load_bitmat_tl(root: Path) -> tuple[Any, Callable | None]:
    """Import bitmat-tl's kernel module (and its packing helper) by path, under a private package
    name, without running its package __init__ files."""
    base = root / "bitmat"
    if _BITMAT_TL_PKG + ".triton_kernels.bitmat_kernel" in sys.modules:
        kmod = sys.modules[_BITMAT_TL_PKG + ".triton_kernels.bitmat_kernel"]
        return kmod, getattr(sys.modules.get(_BITMAT_TL_PKG + ".utils.packing"), "pack_ternary", None)
    for name, path in (
        (_BITMAT_TL_PKG, base),
        (_BITMAT_TL_PKG + ".utils", base / "utils"),
        (_BITMAT_TL_PKG + ".triton_kernels", base / "triton_kernels"),
    ):
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(path)]  # a package whose __init__ is never run
            pkg.__package__ = name
            sys.modules[name] = pkg
    kmod = importlib.import_module(_BITMAT_TL_PKG + ".triton_kernels.bitmat_kernel")
    pack = None
    try:
        pack = importlib.import_module(_BITMAT_TL_PKG + ".utils.packing").pack_ternary
    except Exception as e:
        log.info("bitmat-tl packing helper not importable (%s); using an equivalent", e)
    return kmod, pack


def pack_bitmat_tl(codes: torch.Tensor) -> torch.Tensor:
    """bitmat-tl's layout: int8 [N, K/4], 4 consecutive columns per byte, code -1 stored as 2."""
    n, k = codes.shape
    c = codes.to(torch.int32).reshape(n, k // 4, 4)
    c = torch.where(c == -1, torch.full_like(c, 2), c)
    shifts = torch.arange(4, device=codes.device, dtype=torch.int32) * 2
    return (c << shifts).sum(-1).to(torch.uint8).view(torch.int8)


def bitmat_tl_quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """bitmat-tl 0.3.7 utils/bitmat.py quantize_activations, verbatim in behaviour (truncation, clamp
    to 128 before the int8 cast): kept here so its package __init__ (bitsandbytes) is not needed."""
    dtype = x.dtype
    # torch.max(absmax, tensor(1e-5)) in the original; clamp_min is the same and copies nothing from the host
    # (a host-to-device copy would break CUDA-graph capture).
    scale = (127 / x.abs().max(dim=-1).values.clamp_min(1e-5)).unsqueeze(-1)
    return torch.clamp((x * scale), -127, 128).to(torch.int8), scale.to(dtype)


# --------------------------------------------------------------------------------------------- registry


def all_impls() -> list[KernelImpl]:
    """Every implementation, cuBLAS first (speedups are relative to it)."""
    return [
        CublasBF16(),
        TorchInt8(),
        BitmatLinear(1.58, 8),
        BitmatLinear(1.58, None),
        BitmatLinear(1, 8),
        BitmatLinear(1, None),
        GemLite(a8=True),
        GemLite(a8=False),
        BitmatTL(),
        HFBitLinear(),
        HFAutoBitLinear(),
    ]


IMPL_GROUPS = {
    "baselines": ["cublas-bf16", "torch-int8"],
    "bitmat": ["bitmat-w158a8", "bitmat-w158a16", "bitmat-w1a8", "bitmat-w1a16"],
    "peers": ["gemlite-a8w158", "gemlite-a16w158", "bitmat-tl", "hf-bitlinear", "hf-autobitlinear"],
    "gemlite": ["gemlite-a8w158", "gemlite-a16w158"],
    "hf": ["hf-bitlinear", "hf-autobitlinear"],
    "ternary": ["bitmat-w158a8", "bitmat-w158a16"],
}


def select_impls(spec: str | None, impls: list[KernelImpl] | None = None) -> list[KernelImpl]:
    """Comma-separated names or groups (baselines, bitmat, peers, gemlite, hf, ternary, all);
    "-name" removes one. cuBLAS is always kept (speedups need it)."""
    pool = impls if impls is not None else all_impls()
    by_name = {i.name: i for i in pool}
    if spec is None or spec.strip().lower() in ("", "all", "default"):
        return list(pool)
    chosen: list[str] = []
    removed: set[str] = set()
    for item in (s.strip().lower() for s in spec.split(",")):
        if not item:
            continue
        neg = item.startswith("-")
        key = item[1:] if neg else item
        names = by_name.keys() if key == "all" else IMPL_GROUPS.get(key, [key])
        for nm in names:
            if nm not in by_name:
                raise ValueError(
                    f"--impls: unknown implementation {nm!r}; known: {sorted(by_name)} and groups {sorted(IMPL_GROUPS)}"
                )
            if neg:
                removed.add(nm)
            elif nm not in chosen:
                chosen.append(nm)
    if not chosen:
        chosen = list(by_name)
    names = [n for n in by_name if n in chosen and n not in removed]
    if "cublas-bf16" in by_name and "cublas-bf16" not in names:
        names.insert(0, "cublas-bf16")
    return [by_name[n] for n in names]


__all__ = [
    "IMPL_GROUPS",
    "BitmatLinear",
    "BitmatTL",
    "CublasBF16",
    "GemLite",
    "HFAutoBitLinear",
    "HFBitLinear",
    "KernelImpl",
    "Problem",
    "Skip",
    "TorchInt8",
    "all_impls",
    "bitmat_tl_quantize_activations",
    "find_bitmat_tl",
    "load_bitmat_tl",
    "pack_bitmat_tl",
    "select_impls",
    "tensor_bytes",
]
