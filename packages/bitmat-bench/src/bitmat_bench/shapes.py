"""Standard shapes, batch sizes and model presets (DESIGN §6), and their command-line parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass

# (N = out_features, K = in_features) of the linear layers of each model family.
KERNEL_SHAPES: dict[str, list[tuple[int, int]]] = {
    "llama3-8b": [(6144, 4096), (4096, 4096), (28672, 4096), (4096, 14336)],
    "llama-70b": [(10240, 8192), (8192, 8192), (57344, 8192), (8192, 28672)],
    "bitnet-2b": [(3840, 2560), (13824, 2560), (2560, 6912)],
}
DEFAULT_BATCHES = (1, 4, 16, 64, 256, 1024, 4096, 8192)

# CPU mode: the pure-torch reference on small shapes, finishing in seconds.
CPU_SHAPES: dict[str, list[tuple[int, int]]] = {"small": [(256, 256), (512, 256)]}
CPU_BATCHES = (1, 16)


@dataclass(frozen=True)
class Shape:
    n: int
    k: int
    model: str = ""

    @property
    def name(self) -> str:
        return f"{self.n}x{self.k}"

    @property
    def label(self) -> str:
        return f"{self.model} {self.name}" if self.model else self.name


@dataclass(frozen=True)
class ModelPreset:
    """The shape of a decoder LM (Llama-style blocks): enough to build one with random weights."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    head_dim: int | None = None
    note: str = ""


MODEL_PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in (
        ModelPreset("llama3-8b", 4096, 14336, 32, 32, 8, 128256),
        ModelPreset("llama-70b", 8192, 28672, 80, 64, 8, 128256),
        ModelPreset(
            "bitnet-2b",
            2560,
            6912,
            30,
            20,
            5,
            128256,
            note="Llama blocks with BitNet-2B's sizes (no subln, SwiGLU instead of squared ReLU)",
        ),
        ModelPreset("llama3-1b", 2048, 8192, 16, 32, 8, 128256),
        ModelPreset("tiny", 256, 512, 2, 4, 2, 1024, note="a toy for CPU smoke tests"),
    )
}

_ALIASES = {
    "llama-3-8b": "llama3-8b",
    "llama3_8b": "llama3-8b",
    "llama-8b": "llama3-8b",
    "llama8b": "llama3-8b",
    "llama-3-70b": "llama-70b",
    "llama3-70b": "llama-70b",
    "llama70b": "llama-70b",
    "bitnet2b": "bitnet-2b",
    "bitnet-b1.58-2b": "bitnet-2b",
    "llama-3.2-1b": "llama3-1b",
}


def canonical(name: str) -> str:
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def default_shapes(cpu: bool) -> list[Shape]:
    table = CPU_SHAPES if cpu else KERNEL_SHAPES
    return [Shape(n, k, model) for model, shapes in table.items() for n, k in shapes]


def default_batches(cpu: bool) -> list[int]:
    return list(CPU_BATCHES if cpu else DEFAULT_BATCHES)


def parse_shapes(spec: str | None, cpu: bool = False) -> list[Shape]:
    """Comma-separated NxK (N = out, K = in) or model names (llama3-8b, llama-70b, bitnet-2b, small);
    None or "default" gives the default set (small ones on the CPU)."""
    if spec is None or spec.strip().lower() in ("", "default"):
        return default_shapes(cpu)
    out: list[Shape] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        m = re.fullmatch(r"(\d+)\s*[xX*]\s*(\d+)", item)
        if m:
            n, k = int(m.group(1)), int(m.group(2))
            if n < 1 or k < 1:
                raise ValueError(f"--shapes: sizes must be positive, got {item!r}")
            out.append(Shape(n, k))
            continue
        key = canonical(item)
        table = {**KERNEL_SHAPES, **CPU_SHAPES}
        if key == "all":
            out.extend(default_shapes(False))
        elif key in table:
            out.extend(Shape(n, k, key) for n, k in table[key])
        else:
            raise ValueError(f"--shapes: expected NxK or one of {sorted(table)} (or 'all'), got {item!r}")
    seen: set[tuple[int, int]] = set()
    unique = []
    for s in out:
        if (s.n, s.k) not in seen:
            seen.add((s.n, s.k))
            unique.append(s)
    return unique


def parse_ints(spec: str | None, default: list[int], what: str = "--batch") -> list[int]:
    """Comma-separated positive ints; None or "default" gives `default`."""
    if spec is None or spec.strip().lower() in ("", "default"):
        return list(default)
    vals = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        try:
            v = int(item)
        except ValueError:
            raise ValueError(f"{what}: expected comma-separated positive integers, got {item!r}") from None
        if v < 1:
            raise ValueError(f"{what}: values must be >= 1, got {v}")
        vals.append(v)
    if not vals:
        raise ValueError(f"{what}: no values in {spec!r}")
    return sorted(set(vals))


def model_preset(name: str) -> ModelPreset:
    key = canonical(name)
    if key not in MODEL_PRESETS:
        raise ValueError(f"--model: expected one of {sorted(MODEL_PRESETS)}, got {name!r}")
    return MODEL_PRESETS[key]


__all__ = [
    "CPU_BATCHES",
    "CPU_SHAPES",
    "DEFAULT_BATCHES",
    "KERNEL_SHAPES",
    "MODEL_PRESETS",
    "ModelPreset",
    "Shape",
    "canonical",
    "default_batches",
    "default_shapes",
    "model_preset",
    "parse_ints",
    "parse_shapes",
]
