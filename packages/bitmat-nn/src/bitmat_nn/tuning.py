"""Kernel launch configurations measured for a model's own layer shapes on its GPU.

``tune_kernels(model)`` runs :func:`bitmat_kernels.tune_linear` once for every distinct packed matmul the model
makes (each BitLinear, or the FusedBitLinear that serves it after ``fuse_projections``), so later calls of those
shapes run the fastest measured config instead of the rules bitmat-kernels ships (tuned on an H100 and an H200).
``bitmat_kernels.save_tuned_configs(path)`` keeps the result for other processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import bitmat_kernels as bk
import torch
from torch import nn

from .fuse import FusedBitLinear
from .linear import BitLinear

logger = logging.getLogger(__name__)


def _matmuls(model: nn.Module) -> dict[tuple, tuple[torch.Tensor, torch.Tensor]]:
    """(out_features, in_features, weight_bits, activation_bits) -> (packed, scale) of each distinct matmul."""
    found: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
    for module in model.modules():
        if isinstance(module, FusedBitLinear):
            packed, scale = module.packed_weight, module.weight_scale
        elif isinstance(module, BitLinear):
            group = module._fused_group
            if group is not None and group[0].intact(group[1]):
                continue  # its group's matmul serves it
            packed, scale = module._current_packed()
        else:
            continue
        key = (packed.shape[0], module.in_features, module.weight_bits, module.activation_bits)
        found.setdefault(key, (packed, scale))
    return found


def tune_kernels(
    model: nn.Module,
    batch_sizes: Sequence[int] | None = None,
    dtype: torch.dtype | None = None,
    budget_ms: float = 50.0,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> dict[tuple, list[dict]]:
    """Tune bitmat_linear's launch configurations for every distinct packed layer shape of `model` (on a CUDA
    device), for inputs of `batch_sizes` tokens (default: bitmat_kernels' 1 to 4096) in `dtype` (default: the model's
    floating dtype). Returns {(out_features, in_features, weight_bits, activation_bits): tune_linear's records}. Each
    shape and bucket compiles and times up to 25 kernel configs (on an H100, 20-45 s a large layer shape with the
    default batch sizes). progress(items, total), e.g. a tqdm, wraps the iteration over the shapes."""
    fn = "tune_kernels"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: argument 'model' must be a torch.nn.Module, got {type(model).__name__}")
    if dtype is None:
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.bfloat16)
    matmuls = _matmuls(model)
    if not matmuls:
        raise ValueError(f"{fn}: {type(model).__name__} has no BitLinear layers to tune")
    kwargs = {} if batch_sizes is None else {"batch_sizes": batch_sizes}
    results = {}
    items = sorted(matmuls.items(), key=lambda kv: kv[0][:2])
    with torch.no_grad():
        for i, ((n, k, bits, act), (packed, scale)) in enumerate(
            items if progress is None else progress(items, len(items))
        ):
            logger.info("%s: layer shape %d of %d, %dx%d W%sA%s", fn, i + 1, len(matmuls), n, k, bits, act or 16)
            results[(n, k, bits, act)] = bk.tune_linear(
                packed, scale, in_features=k, weight_bits=bits, activation_bits=act, dtype=dtype,
                budget_ms=budget_ms, **kwargs,
            )  # fmt: skip
    return results
