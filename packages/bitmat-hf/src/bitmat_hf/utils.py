"""Small shared helpers: progress bars that honour transformers' switch, all-or-nothing folder writes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    try:
        from transformers.utils import logging as hf_logging

        return bool(hf_logging.is_progress_bar_enabled())
    except Exception:  # pragma: no cover - transformers always has it
        return True


def progress(items: Iterable[T], *, desc: str, disable: bool = False, total: int | None = None) -> Iterator[T]:
    """tqdm over `items`, shown only when transformers' progress bars are enabled (and not `disable`)."""
    from tqdm.auto import tqdm

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    yield from tqdm(items, desc=desc, total=total, disable=disable or not progress_enabled(), leave=False)


HUB_KEYS = ("cache_dir", "local_files_only", "revision", "subfolder", "token")


def hub_kwargs(kwargs: dict) -> dict:
    """The from_pretrained keyword arguments that locate files (for reading a config before loading)."""
    return {k: kwargs[k] for k in HUB_KEYS if k in kwargs}


def write_folder_atomically(out: Path, write: Callable[[Path], object]) -> None:
    """Runs write(tmp) into a temporary folder beside `out`, then renames it to `out`: a failure leaves nothing
    behind (and leaves an existing `out` as it was)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
