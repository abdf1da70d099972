"""replace_linear_with_bitlinear: swap nn.Linear for BitLinear in any torch model, keeping the weights."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from torch import nn

from .linear import BitLinear

logger = logging.getLogger(__name__)


def _skipped(name: str, skip: tuple[str, ...]) -> bool:
    """Whether `name` or one of its ancestors equals an entry or ends with '.' + entry."""
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        for entry in skip:
            if prefix == entry or prefix.endswith("." + entry):
                return True
    return False


def replace_linear_with_bitlinear(
    model: nn.Module, *, modules_to_not_convert: Iterable[str] = ("lm_head",), **bitlinear_kwargs
) -> nn.Module:
    """Swap every ``nn.Linear`` of `model` (in place) for a :class:`BitLinear` sharing its weight and bias.

    A module is skipped when its qualified name, or the name of a module containing it, equals an
    entry of `modules_to_not_convert` or ends with ``"." + entry`` (so ``"lm_head"`` skips
    ``model.lm_head`` and ``"mlp"`` skips everything inside ``layers.0.mlp``). Only exact
    ``nn.Linear`` instances are converted: subclasses may override forward with other semantics.
    Every replacement is built before any is installed, so a failure leaves the model unchanged.
    `bitlinear_kwargs` go to BitLinear (weight_bits, activation_bits, per_channel, input_norm, eps).
    Returns `model`.
    """
    fn = "replace_linear_with_bitlinear"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: argument 'model' must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(modules_to_not_convert, str):
        modules_to_not_convert = (modules_to_not_convert,)
    skip = tuple(modules_to_not_convert or ())
    for entry in skip:
        if not isinstance(entry, str) or not entry:
            raise TypeError(f"{fn}: argument 'modules_to_not_convert' must hold non-empty strings, got {entry!r}")
    if type(model) is nn.Linear:
        raise TypeError(f"{fn}: argument 'model' is itself an nn.Linear; use BitLinear.from_linear(model) instead")

    # Pass 1: build every replacement. A Linear reached under several names is converted once and
    # stays shared; one reached under any skipped name stays a Linear everywhere.
    targets: list[tuple[nn.Module, str, nn.Linear]] = []
    skipped_ids: set[int] = set()
    for name, module in model.named_modules(remove_duplicate=False):
        for child_name, child in module._modules.items():  # named_children() would hide repeated children
            if child is None:
                continue
            qualified = f"{name}.{child_name}" if name else child_name
            if type(child) is not nn.Linear:
                if isinstance(child, nn.Linear) and not isinstance(child, BitLinear):
                    logger.debug("%s: %s is a subclass of nn.Linear, left as is", fn, qualified)
                continue
            if _skipped(qualified, skip):
                skipped_ids.add(id(child))
            else:
                targets.append((module, child_name, child))
    converted: dict[int, BitLinear] = {}
    for _, _, linear in targets:
        if id(linear) not in skipped_ids and id(linear) not in converted:
            converted[id(linear)] = BitLinear.from_linear(linear, **bitlinear_kwargs)
    # Pass 2: install them (plain attribute sets, which cannot fail half-way for valid modules).
    for parent, child_name, linear in targets:
        if id(linear) in converted:
            setattr(parent, child_name, converted[id(linear)])

    logger.info("%s: converted %d nn.Linear module(s) to BitLinear", fn, len(converted))
    return model
