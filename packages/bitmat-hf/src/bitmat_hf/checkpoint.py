"""The saved format and its validation.

A BitMat checkpoint is a transformers folder (`config.json`, `model.safetensors` or shards with
`model.safetensors.index.json`) where

* `config.json` holds `quantization_config` = BitMatConfig.to_dict() (quant_method "bitmat",
  `format_version`, bits, skipped modules, `checkpoint_format` "packed" or "latent");
* every safetensors file carries metadata `bitmat_format_version` (and `bitmat_checkpoint_format`);
* each converted linear layer `<name>` is stored as `<name>.packed_weight` (uint8 [N, ceil(K/4)] for
  1.58 bits, [N, ceil(K/8)] for 1 bit; layout in bitmat_kernels.formats), `<name>.weight_scale`
  (float32 [1] or [N, 1]) and `<name>.bias` if any; with `checkpoint_format` "latent" it is stored as
  `<name>.weight` (full precision) and `<name>.bias` instead.

Everything here reads headers only (never tensors, never pickle), so a bad file is reported before
a model is built or changed.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import BitMatConfig, BitMatConfigError, check_format_version

METADATA_FORMAT_VERSION = "bitmat_format_version"
METADATA_CHECKPOINT_FORMAT = "bitmat_checkpoint_format"
METADATA_WEIGHT_BITS = "bitmat_weight_bits"

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"

_MAX_HEADER = 100 * 1024 * 1024

SAFETENSORS_DTYPES: dict[str, tuple[torch.dtype | None, float]] = {
    "BOOL": (torch.bool, 1),
    "U8": (torch.uint8, 1),
    "I8": (torch.int8, 1),
    "I16": (torch.int16, 2),
    "U16": (getattr(torch, "uint16", None), 2),
    "I32": (torch.int32, 4),
    "U32": (getattr(torch, "uint32", None), 4),
    "I64": (torch.int64, 8),
    "U64": (getattr(torch, "uint64", None), 8),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "F32": (torch.float32, 4),
    "F64": (torch.float64, 8),
    "F8_E4M3": (getattr(torch, "float8_e4m3fn", None), 1),
    "F8_E5M2": (getattr(torch, "float8_e5m2", None), 1),
}
_TORCH_TO_ST = {v[0]: k for k, v in SAFETENSORS_DTYPES.items() if v[0] is not None}


class BitMatCheckpointError(ValueError):
    """A checkpoint file is missing, truncated, tampered with, from a future format or does not fit the model."""


@dataclass
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str

    @property
    def torch_dtype(self) -> torch.dtype | None:
        return SAFETENSORS_DTYPES.get(self.dtype, (None, 0))[0]

    @property
    def nbytes(self) -> int:
        return int(math.prod(self.shape) * SAFETENSORS_DTYPES[self.dtype][1])


@dataclass
class CheckpointInfo:
    folder: Path | None
    files: list[Path]
    tensors: dict[str, TensorInfo]
    metadata: dict[str, dict[str, str]]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def quantization_config(self) -> dict[str, Any] | None:
        q = self.config.get("quantization_config")
        return q if isinstance(q, dict) else None

    @property
    def is_bitmat(self) -> bool:
        q = self.quantization_config
        return q is not None and str(q.get("quant_method")) == "bitmat"

    @property
    def format_version(self) -> int | None:
        for meta in self.metadata.values():
            if METADATA_FORMAT_VERSION in meta:
                return int(meta[METADATA_FORMAT_VERSION])
        return None

    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parses and checks the header of one safetensors file: every tensor's dtype, shape and byte range must be
    consistent with each other and with the file's size (so a truncated or tampered file is caught here)."""
    path = Path(path)
    if not path.is_file():
        raise BitMatCheckpointError(f"checkpoint file {str(path)!r} does not exist")
    size = path.stat().st_size
    if size < 8:
        raise BitMatCheckpointError(f"checkpoint file {str(path)!r} is truncated: {size} bytes, too short for a header")
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > _MAX_HEADER or 8 + header_len > size:
            raise BitMatCheckpointError(
                f"checkpoint file {str(path)!r} has a corrupt safetensors header: it announces {header_len} header "
                f"bytes but the file holds {size} bytes (truncated or tampered)"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BitMatCheckpointError(
            f"checkpoint file {str(path)!r} has a corrupt safetensors header (not valid JSON: {e})"
        ) from None
    if not isinstance(header, dict):
        raise BitMatCheckpointError(
            f"checkpoint file {str(path)!r} has a corrupt safetensors header (not a JSON object)"
        )
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise BitMatCheckpointError(f"checkpoint file {str(path)!r} has corrupt safetensors metadata: {metadata!r}")
    data_size = size - 8 - header_len
    tensors: dict[str, TensorInfo] = {}
    ranges = []
    for name, entry in header.items():
        where = f"checkpoint file {str(path)!r}, tensor {name!r}"
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise BitMatCheckpointError(f"{where}: corrupt header entry {entry!r}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            raise BitMatCheckpointError(f"{where}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise BitMatCheckpointError(f"{where}: corrupt shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise BitMatCheckpointError(f"{where}: corrupt data offsets {offsets!r}")
        info = TensorInfo(name, dtype, tuple(shape), str(path))
        if offsets[1] - offsets[0] != info.nbytes:
            raise BitMatCheckpointError(
                f"{where}: header says shape {tuple(shape)} {dtype} ({info.nbytes} bytes) but gives it "
                f"{offsets[1] - offsets[0]} bytes (tampered header)"
            )
        if offsets[1] > data_size:
            raise BitMatCheckpointError(
                f"{where}: its bytes end at {offsets[1]} but the file holds only {data_size} data bytes "
                "(truncated file)"
            )
        tensors[name] = info
        ranges.append((offsets[0], offsets[1], name))
    ranges.sort()
    end = 0
    for begin, stop, name in ranges:
        if begin != end:
            raise BitMatCheckpointError(
                f"checkpoint file {str(path)!r}: tensor {name!r} starts at byte {begin}, expected {end} "
                "(overlapping or gapped data: tampered header)"
            )
        end = stop
    if end != data_size:
        raise BitMatCheckpointError(
            f"checkpoint file {str(path)!r}: the header describes {end} data bytes but the file holds {data_size} "
            "(truncated or tampered)"
        )
    return tensors, {str(k): v for k, v in metadata.items()}


def checkpoint_files(folder: str | os.PathLike) -> list[Path]:
    """The safetensors files of a transformers folder (single file or sharded with an index)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BitMatCheckpointError(f"checkpoint folder {str(folder)!r} does not exist or is not a folder")
    single = folder / SAFE_WEIGHTS_NAME
    index = folder / SAFE_WEIGHTS_INDEX_NAME
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
            raise BitMatCheckpointError(f"checkpoint index {str(index)!r} is corrupt: {e!r}") from None
        files = [folder / n for n in names]
        for f in files:
            if not f.is_file():
                raise BitMatCheckpointError(
                    f"checkpoint shard {str(f)!r} listed in {SAFE_WEIGHTS_INDEX_NAME} does not exist"
                )
        return files
    pickled = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
    if pickled:
        raise BitMatCheckpointError(
            f"checkpoint folder {str(folder)!r} holds only pickled weights ({', '.join(sorted(pickled))}); "
            "BitMat reads safetensors only"
        )
    raise BitMatCheckpointError(
        f"checkpoint folder {str(folder)!r} has no {SAFE_WEIGHTS_NAME} (nor {SAFE_WEIGHTS_INDEX_NAME}): missing file"
    )


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise BitMatCheckpointError(f"checkpoint folder {str(folder)!r} has no {CONFIG_NAME}: missing file")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BitMatCheckpointError(f"{str(path)!r} is not valid JSON ({e}): truncated or corrupt file") from None
    if not isinstance(config, dict):
        raise BitMatCheckpointError(f"{str(path)!r} must hold a JSON object")
    return config


def inspect_files(files: Iterable[str | os.PathLike], config: dict[str, Any] | None = None) -> CheckpointInfo:
    """Reads and checks the headers of the given safetensors files (and the format version, for BitMat files)."""
    files = [Path(f) for f in files]
    for f in files:
        if f.suffix != ".safetensors":
            raise BitMatCheckpointError(
                f"checkpoint file {str(f)!r} is not a safetensors file; BitMat reads safetensors only"
            )
    tensors: dict[str, TensorInfo] = {}
    metadata: dict[str, dict[str, str]] = {}
    for f in files:
        t, meta = read_safetensors_header(f)
        dup = set(t) & set(tensors)
        if dup:
            raise BitMatCheckpointError(f"tensor {sorted(dup)[0]!r} appears in more than one checkpoint file")
        tensors.update(t)
        metadata[str(f)] = meta
        if METADATA_FORMAT_VERSION in meta:
            try:
                check_format_version(meta[METADATA_FORMAT_VERSION], f"checkpoint file {str(f)!r}")
            except BitMatConfigError as e:
                raise BitMatCheckpointError(str(e)) from None
    info = CheckpointInfo(files[0].parent if files else None, files, tensors, metadata, dict(config or {}))
    q = info.quantization_config
    if info.is_bitmat:
        qc = BitMatConfig.coerce(q)  # BitMatConfigError for a bad or future config
        for f, meta in metadata.items():
            if METADATA_FORMAT_VERSION not in meta:
                raise BitMatCheckpointError(
                    f"checkpoint file {f!r} carries no '{METADATA_FORMAT_VERSION}' metadata although {CONFIG_NAME} "
                    "says it is a BitMat checkpoint (not written by bitmat-hf, or tampered)"
                )
            if int(meta[METADATA_FORMAT_VERSION]) != qc.format_version:
                raise BitMatCheckpointError(
                    f"checkpoint file {f!r} has packed-format version {meta[METADATA_FORMAT_VERSION]} but "
                    f"{CONFIG_NAME} says {qc.format_version}"
                )
    return info


def inspect_checkpoint(folder: str | os.PathLike) -> CheckpointInfo:
    """Reads and checks config.json and every safetensors header of a checkpoint folder."""
    config = read_config(folder)
    return inspect_files(checkpoint_files(folder), config)


def _dtype_name(dtype: torch.dtype | str | None) -> str:
    if isinstance(dtype, str):
        return dtype
    return str(dtype).replace("torch.", "")


def check_against_model(
    info: CheckpointInfo,
    expected: Mapping[str, torch.Tensor],
    *,
    exact_dtype_suffixes: tuple[str, ...] = (".packed_weight", ".weight_scale"),
    required_suffixes: tuple[str, ...] = (".packed_weight", ".weight_scale"),
    rename: Mapping[str, str] | None = None,
) -> None:
    """Checks the checkpoint's tensors against the model's (meta) state dict: shapes of every shared key; exact
    dtypes of packed weights and scales; float tensors only need a float dtype (they are cast on load). Every
    expected key ending in `required_suffixes` must be present."""
    rename = rename or {}
    names = {rename.get(k, k): t for k, t in info.tensors.items()}
    for key, target in expected.items():
        t = names.get(key)
        if t is None:
            if key.endswith(required_suffixes):
                raise BitMatCheckpointError(
                    f"checkpoint has no tensor {key!r} (expected shape {tuple(target.shape)} "
                    f"{_dtype_name(target.dtype)}): missing or truncated checkpoint, or saved from another model"
                )
            continue
        if tuple(t.shape) != tuple(target.shape):
            raise BitMatCheckpointError(
                f"checkpoint tensor {key!r} has shape {tuple(t.shape)} but the model expects {tuple(target.shape)} "
                f"(file {t.file!r})"
            )
        src = t.torch_dtype
        if key.endswith(exact_dtype_suffixes):
            if src != target.dtype:
                raise BitMatCheckpointError(
                    f"checkpoint tensor {key!r} has dtype {_dtype_name(src or t.dtype)} but the model expects "
                    f"{_dtype_name(target.dtype)} (file {t.file!r})"
                )
        elif target.is_floating_point() and not (src is not None and src.is_floating_point):
            raise BitMatCheckpointError(
                f"checkpoint tensor {key!r} has dtype {_dtype_name(src or t.dtype)} but the model expects a floating "
                f"point tensor ({_dtype_name(target.dtype)}) (file {t.file!r})"
            )


def safetensors_metadata(config: BitMatConfig) -> dict[str, str]:
    return {
        METADATA_FORMAT_VERSION: str(config.format_version),
        METADATA_CHECKPOINT_FORMAT: config.checkpoint_format,
        METADATA_WEIGHT_BITS: str(config.weight_bits),
    }


__all__ = [
    "BitMatCheckpointError",
    "CheckpointInfo",
    "TensorInfo",
    "check_against_model",
    "checkpoint_files",
    "inspect_checkpoint",
    "inspect_files",
    "read_config",
    "read_safetensors_header",
    "safetensors_metadata",
]
