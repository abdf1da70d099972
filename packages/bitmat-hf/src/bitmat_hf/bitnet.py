"""HuggingFace's own "bitnet" checkpoints (transformers' quant_method "bitnet", the format of
microsoft/bitnet-b1.58-2B-4T) on BitMat's kernels: read them, run them, write them.

* `read_bitnet_layout(folder)` checks a checkpoint from its config and safetensors headers only (no tensor is
  read, nothing is built): quantization config, the packed layout and dtype of every quantized layer, the
  shape and dtype of its scale, and every other tensor against the architecture.
* `load_bitnet_checkpoint(folder)` builds the architecture with transformers' own modeling code (for
  "bitnet": `BitNetForCausalLM`, with its subln norms, squared-ReLU gated FFN, grouped-query attention,
  RoPE and tied embeddings) and puts a `bitmat_nn.BitLinear` holding the converted packed weights in place
  of every quantized linear layer. The result is a BitMat model: `bitmat_hf.save_pretrained` writes our
  packed format, and `AutoModelForCausalLM.from_pretrained` reads that back (quant_method "bitmat").
* `export_bitnet(model, folder, linear_class=...)` writes a BitMat model (1.58-bit, per-tensor scale,
  int8 activations) in the "bitnet" format, so that stock transformers loads it without BitMat.

The format, as read from transformers' source (5.17 - 5.24: `transformers/integrations/bitnet.py`,
`pack_weights` / `unpack_weights`, `BitLinear.forward` / `post_quant_process`, `AutoBitLinear.forward`,
`BitNetDeserialize`, `ActQuant`; `quantizers/quantizer_bitnet.py`; `utils/quantization_config.py`
`BitNetQuantConfig`):

* `<layer>.weight`: uint8 `[out / 4, in]`, packed along dim 0 in four row blocks of R = out / 4 rows:
  bits 2i..2i+1 of packed row r hold original row i * R + r, as code + 1 (0 -> -1, 1 -> 0, 2 -> +1; 3 never
  occurs). `pack_weights` handles out % 4 != 0 with ceil-sized blocks, but both layer classes allocate
  `out // 4` rows, so transformers itself only loads out % 4 == 0; we require it.
* `<layer>.weight_scale`: shape `[1]`, in the model's float dtype. `BitLinear` ("bitlinear") computes
  `y / (weight_scale * input_scale)`, so the checkpoint holds 1 / mean|W|; `AutoBitLinear` ("autobitlinear",
  offline mode) computes `F.linear(x, w) * weight_scale`, so it holds mean|W|. BitMat's scale is multiplicative
  float32: we take `1 / weight_scale` for "bitlinear" and `weight_scale` for "autobitlinear".
* `<layer>.bias` when the architecture has biases; everything else (embeddings, norms, LM head) in float.
* Activations, in both classes: per token, s = 127 / max(absmax(x), 1e-5), x_q = clamp(round(x * s), -128, 127)
  -- the quantizer of `bitmat_kernels.quantize_activations` (eps 1e-5). What differs is where transformers rounds:
  `BitLinear` quantizes and accumulates in the model dtype (in bf16 its scale s and the matmul output are
  rounded to bf16), `AutoBitLinear` quantizes in float32 but feeds the dequantized x_q / s, rounded to the model
  dtype, to a float matmul. BitMat accumulates the int8 x ternary products exactly in int32 and scales in
  float32 (DESIGN §4), i.e. it computes what both classes compute in float32. In float32 the logits agree to
  float rounding; in bf16 they differ by transformers' bf16 rounding (our result is the more exact one).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import (
    BitMatCheckpointError,
    CheckpointInfo,
    TensorInfo,
    checkpoint_files,
    inspect_files,
    read_config,
)
from .utils import write_folder_atomically

logger = logging.getLogger(__name__)

QUANT_METHOD_BITNET = "bitnet"
LINEAR_CLASSES = ("autobitlinear", "bitlinear")
ROWS_PER_BYTE = 4  # transformers' VALUES_PER_ITEM
_FLOAT_ST_DTYPES = ("F32", "BF16", "F16")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class BitNetFormatError(BitMatCheckpointError):
    """A HuggingFace "bitnet" checkpoint (or a model to export to it) does not have the layout BitMat reads/writes."""


# ----------------------------------------------------------------------------------------------- packing


def unpack_hf_bitnet(packed: torch.Tensor, *, name: str = "weight") -> torch.Tensor:
    """transformers' packed uint8 `[R, K]` -> int8 ternary codes `[4R, K]` (row i * R + r from bits 2i of row r).
    Raises BitNetFormatError for another dtype or shape, or for the unused 2-bit value 3."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.dim() != 2:
        got = f"{packed.dtype}, shape {tuple(packed.shape)}" if isinstance(packed, torch.Tensor) else type(packed)
        raise BitNetFormatError(f"bitnet tensor {name!r}: expected a 2-D uint8 packed weight, got {got}")
    fields = torch.stack([(packed >> (2 * i)) & 3 for i in range(ROWS_PER_BYTE)])  # [4, R, K]
    if bool((fields == 3).any()):
        raise BitNetFormatError(
            f"bitnet tensor {name!r}: holds the 2-bit value 3, which is no ternary code (0, 1, 2 mean -1, 0, +1): "
            "corrupt or not a bitnet packed weight"
        )
    return (fields.to(torch.int8) - 1).reshape(ROWS_PER_BYTE * packed.shape[0], packed.shape[1])


def pack_hf_bitnet(codes: torch.Tensor, *, name: str = "weight") -> torch.Tensor:
    """int8 ternary codes `[N, K]` (N % 4 == 0) -> transformers' packed uint8 `[N / 4, K]` (inverse of
    unpack_hf_bitnet; byte-identical to transformers.integrations.bitnet.pack_weights)."""
    if codes.dim() != 2 or codes.shape[0] % ROWS_PER_BYTE:
        raise BitNetFormatError(
            f"{name}: the bitnet format packs 4 output rows per byte, so out_features must be a multiple of 4; "
            f"got codes of shape {tuple(codes.shape)}"
        )
    stored = (codes.to(torch.int16) + 1).to(torch.uint8).reshape(ROWS_PER_BYTE, -1, codes.shape[1])
    out = torch.zeros_like(stored[0])
    for i in range(ROWS_PER_BYTE):
        out |= stored[i] << (2 * i)
    return out


# ----------------------------------------------------------------------------------------------- layout


def is_bitnet_config(config: Mapping[str, Any] | None) -> bool:
    """Whether a config.json dict describes a transformers "bitnet"-quantized checkpoint."""
    q = (config or {}).get("quantization_config")
    return isinstance(q, Mapping) and str(q.get("quant_method")) == QUANT_METHOD_BITNET


def is_bitnet_checkpoint(folder: str | os.PathLike) -> bool:
    try:
        return is_bitnet_config(read_config(folder))
    except BitMatCheckpointError:
        return False


@dataclass
class BitNetLayer:
    name: str
    out_features: int
    in_features: int
    weight: TensorInfo
    weight_scale: TensorInfo
    bias: TensorInfo | None = None

    @property
    def nbytes(self) -> int:
        return self.weight.nbytes + self.weight_scale.nbytes + (self.bias.nbytes if self.bias else 0)


@dataclass
class BitNetLayout:
    """What read_bitnet_layout found: the config, the linear class, the quantized and full-precision layers."""

    folder: Path
    config: dict[str, Any]
    linear_class: str
    quantization_config: dict[str, Any]
    checkpoint: CheckpointInfo
    layers: dict[str, BitNetLayer] = field(default_factory=dict)
    full_precision_linears: list[str] = field(default_factory=list)
    tied_linears: list[str] = field(default_factory=list)

    @property
    def scale_is_reciprocal(self) -> bool:
        """ "bitlinear" checkpoints store 1 / mean|W| (the layer divides by it); "autobitlinear" ones mean|W|."""
        return self.linear_class == "bitlinear"


def _model_config(cfg: Mapping[str, Any]):
    from transformers import AutoConfig

    fields = {k: v for k, v in cfg.items() if k not in ("quantization_config", "transformers_version")}
    model_type = fields.pop("model_type", None)
    if not model_type:
        raise BitNetFormatError("bitnet checkpoint: config.json has no 'model_type'")
    try:
        return AutoConfig.for_model(model_type, **fields)
    except Exception as e:
        raise BitNetFormatError(f"bitnet checkpoint: cannot build a {model_type!r} config from config.json: {e}") from e


def _skeleton(config, dtype: torch.dtype | None = None):
    """The architecture on the meta device (buffers such as RoPE frequencies stay real)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": dtype} if dtype is not None else {}
    with init_empty_weights():
        return AutoModelForCausalLM.from_config(config, **kwargs)


def _tied_linear_names(model: nn.Module) -> list[str]:
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    inp = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tie = bool(getattr(model.config, "tie_word_embeddings", False))
    if get_text := getattr(model.config, "get_text_config", None):
        tie = tie or bool(getattr(get_text(), "tie_word_embeddings", False))
    if not tie or out is None or inp is None:
        return []
    return [n for n, m in model.named_modules() if m is out]


def read_bitnet_layout(folder: str | os.PathLike) -> BitNetLayout:
    """Checks a transformers "bitnet" checkpoint folder from config.json and the safetensors headers (no tensor is
    read, no model is built, nothing is written) and describes it. Raises BitNetFormatError (a ValueError) naming
    the tensor, what was expected and what was found for: a config that is not quant_method "bitnet", an unknown
    linear_class, online mode or use_rms_norm (not supported), a packed weight that is not uint8 [out/4, in], a
    weight_scale that is not a float [1], a missing or unexpected tensor, a shape that does not fit the architecture.
    """
    folder = Path(folder)
    cfg = read_config(folder)
    q = cfg.get("quantization_config")
    where = f"bitnet checkpoint {str(folder)!r}"
    if not is_bitnet_config(cfg):
        method = q.get("quant_method") if isinstance(q, Mapping) else None
        raise BitNetFormatError(
            f"{where}: config.json must have quantization_config.quant_method 'bitnet', got "
            f"{method!r} (model_type {cfg.get('model_type')!r})"
        )
    linear_class = q.get("linear_class", "bitlinear")
    if linear_class not in LINEAR_CLASSES:
        raise BitNetFormatError(f"{where}: linear_class must be one of {LINEAR_CLASSES}, got {linear_class!r}")
    mode = q.get("quantization_mode", "offline")
    if mode != "offline":
        raise BitNetFormatError(
            f"{where}: quantization_mode must be 'offline' (packed ternary weights), got {mode!r}; an 'online' "
            "checkpoint holds full-precision weights: convert it like a float model"
        )
    if q.get("use_rms_norm", False):
        raise BitNetFormatError(
            f"{where}: use_rms_norm=True (an RMSNorm inside every quantized layer) is not supported by BitMat yet"
        )
    info = inspect_files(checkpoint_files(folder), cfg)
    skeleton = _skeleton(_model_config(cfg))
    tied = _tied_linear_names(skeleton)
    layout = BitNetLayout(folder, cfg, linear_class, dict(q), info, tied_linears=tied)
    tensors = dict(info.tensors)
    seen: set[str] = set()
    for name, module in skeleton.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        w, s = tensors.get(f"{name}.weight"), tensors.get(f"{name}.weight_scale")
        b = tensors.get(f"{name}.bias")
        n, k = module.out_features, module.in_features
        seen.update(x for x in (f"{name}.weight", f"{name}.weight_scale", f"{name}.bias") if x in tensors)
        if (module.bias is None) != (b is None):
            raise BitNetFormatError(
                f"{where}: tensor {name + '.bias'!r} is {'missing' if b is None else 'unexpected'} "
                f"(the architecture has {'a' if module.bias is not None else 'no'} bias there)"
            )
        if b is not None and (b.dtype not in _FLOAT_ST_DTYPES or b.shape != (n,)):
            raise BitNetFormatError(
                f"{where}: tensor {name + '.bias'!r} must be a float [{n}], got {b.dtype} {list(b.shape)}"
            )
        if w is None:
            if name in tied and s is None:
                continue
            raise BitNetFormatError(
                f"{where}: tensor {name + '.weight'!r} is missing (expected uint8 [{n // ROWS_PER_BYTE}, {k}] "
                "packed or a float weight): truncated checkpoint or another architecture"
            )
        if s is None and w.dtype != "U8":  # a layer kept in full precision (modules_to_not_convert, lm_head)
            if w.dtype not in _FLOAT_ST_DTYPES or w.shape != (n, k):
                raise BitNetFormatError(
                    f"{where}: tensor {name + '.weight'!r} has no weight_scale, so it must be a float [{n}, {k}] "
                    f"weight; got {w.dtype} {list(w.shape)}"
                )
            layout.full_precision_linears.append(name)
            continue
        if n % ROWS_PER_BYTE:
            raise BitNetFormatError(
                f"{where}: layer {name!r} has out_features={n}, not a multiple of 4: the bitnet format packs 4 "
                "output rows per byte (transformers cannot load it either)"
            )
        if w.dtype != "U8" or w.shape != (n // ROWS_PER_BYTE, k):
            raise BitNetFormatError(
                f"{where}: tensor {name + '.weight'!r} must be the packed uint8 [{n // ROWS_PER_BYTE}, {k}] "
                f"(out/4 rows of 4 ternary codes, out={n}, in={k}), got {w.dtype} {list(w.shape)}"
            )
        if s is None:
            raise BitNetFormatError(f"{where}: tensor {name + '.weight_scale'!r} is missing (a float [1] is expected)")
        if s.dtype not in _FLOAT_ST_DTYPES or s.shape != (1,):
            raise BitNetFormatError(
                f"{where}: tensor {name + '.weight_scale'!r} must be a per-tensor float scale of shape [1] "
                f"(F32, BF16 or F16), got {s.dtype} {list(s.shape)}"
            )
        layout.layers[name] = BitNetLayer(name, n, k, w, s, b)
    if not layout.layers:
        raise BitNetFormatError(f"{where}: no quantized layer (no uint8 weight with a weight_scale) was found")
    expected = {k: v for k, v in skeleton.state_dict().items() if k not in seen}
    tied_keys = {f"{t}.weight" for t in tied}
    for key, target in expected.items():
        if key in tied_keys:
            continue
        t = tensors.get(key)
        if t is None:
            raise BitNetFormatError(
                f"{where}: tensor {key!r} is missing (expected {list(target.shape)}): truncated checkpoint or "
                "another architecture"
            )
        if t.shape != tuple(target.shape) or (target.is_floating_point() and t.dtype not in _FLOAT_ST_DTYPES):
            raise BitNetFormatError(
                f"{where}: tensor {key!r} has {t.dtype} {list(t.shape)} but the architecture expects a float "
                f"{list(target.shape)}"
            )
    unexpected = sorted(set(tensors) - seen - set(expected))
    if unexpected:
        raise BitNetFormatError(
            f"{where}: unexpected tensor {unexpected[0]!r} ({len(unexpected)} in all) that the architecture does not "
            "have: another architecture or layout"
        )
    return layout


# ----------------------------------------------------------------------------------------------- loading


def _resolve_dtype(dtype: Any, cfg: Mapping[str, Any]) -> torch.dtype:
    if dtype in (None, "auto"):
        name = cfg.get("dtype") or cfg.get("torch_dtype") or "float32"
        dtype = _DTYPES.get(str(name).replace("torch.", ""), torch.float32)
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"load_bitnet_checkpoint: argument 'dtype' must be one of {list(_DTYPES)}, got {dtype!r}")
        dtype = _DTYPES[dtype]
    if dtype not in _DTYPES.values():
        raise ValueError(f"load_bitnet_checkpoint: argument 'dtype' must be float32, bfloat16 or float16, got {dtype}")
    return dtype


def _read(info: TensorInfo, handles: dict) -> torch.Tensor:
    from safetensors import safe_open

    if info.file not in handles:
        handles[info.file] = safe_open(info.file, framework="pt", device="cpu")
    return handles[info.file].get_tensor(info.name)


def convert_bitnet_layer(
    weight: torch.Tensor, weight_scale: torch.Tensor, *, linear_class: str, name: str = "layer"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer from transformers' bitnet format to BitMat's: (packed uint8 [N, ceil(K/4)] in
    bitmat_kernels' layout, float32 multiplicative scale [1])."""
    import bitmat_kernels as bk

    if linear_class not in LINEAR_CLASSES:
        raise ValueError(
            f"convert_bitnet_layer: argument 'linear_class' must be one of {LINEAR_CLASSES}, got {linear_class!r}"
        )
    codes = unpack_hf_bitnet(weight, name=f"{name}.weight")
    if not weight_scale.is_floating_point() or weight_scale.numel() != 1:
        raise BitNetFormatError(
            f"bitnet tensor {name + '.weight_scale'!r}: expected a float scale of shape [1], got "
            f"{weight_scale.dtype} {list(weight_scale.shape)}"
        )
    scale = weight_scale.detach().reshape(1).to(torch.float32)
    if not bool(torch.isfinite(scale).all()) or float(scale) <= 0:
        raise BitNetFormatError(
            f"bitnet tensor {name + '.weight_scale'!r}: expected a positive finite scale, got {float(scale)}"
        )
    if linear_class == "bitlinear":  # BitLinear divides by weight_scale: it holds 1 / mean|W|
        scale = torch.ones_like(scale) / scale
    return bk.pack_ternary(codes), scale


def load_bitnet_checkpoint(
    folder: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    activation_bits: int | None = 8,
    show_progress: bool = True,
):
    """Loads a transformers "bitnet" checkpoint (quant_method "bitnet", offline, linear_class "autobitlinear" or
    "bitlinear"; e.g. microsoft/bitnet-b1.58-2B-4T saved locally) as a BitMat model: transformers' own
    architecture class with a `bitmat_nn.BitLinear` (packed weights, BitMat kernels) in place of every quantized
    layer. `dtype` defaults to the config's dtype; `activation_bits=8` matches BitNet's W1.58A8 (None runs
    weight-only, which transformers does not). The whole checkpoint is checked (read_bitnet_layout, then every
    packed code and scale) before the model is assembled; on error nothing is returned and no file is touched.
    The model carries a BitMatConfig: `bitmat_hf.save_pretrained(model, out)` writes BitMat's format.
    """
    from bitmat_nn import BitLinear

    from .config import BitMatConfig
    from .convert import mark_bitmat, set_submodule
    from .utils import progress

    layout = read_bitnet_layout(folder)
    dtype = _resolve_dtype(dtype, layout.config)
    qc = BitMatConfig(
        weight_bits=1.58,
        activation_bits=activation_bits,
        modules_to_not_convert=sorted(set(layout.full_precision_linears) | set(layout.tied_linears) | {"lm_head"}),
    )
    config = _model_config(layout.config)
    model = _skeleton(config, dtype)
    handles: dict = {}
    replacements = []
    items = list(layout.layers.items())
    for name, layer in progress(items, desc="Converting bitnet layers", disable=not show_progress):
        weight, scale = _read(layer.weight, handles), _read(layer.weight_scale, handles)
        packed, scale = convert_bitnet_layer(weight, scale, linear_class=layout.linear_class, name=name)
        bias = _read(layer.bias, handles).to(dtype) if layer.bias is not None else None
        replacements.append(
            (name, BitLinear.from_packed(packed, scale, layer.in_features, bias=bias, dtype=dtype, **qc.layer_kwargs()))
        )
    rest = {}
    for key, t in layout.checkpoint.tensors.items():
        owner = key.rpartition(".")[0]
        if owner in layout.layers:
            continue
        value = _read(t, handles)
        rest[key] = value.to(dtype) if value.is_floating_point() else value
    for name, module in replacements:
        set_submodule(model, name, module)
    result = model.load_state_dict(rest, strict=False, assign=True)
    tied_keys = {f"{t}.weight" for t in layout.tied_linears}
    missing = [k for k in result.missing_keys if k not in tied_keys and k.rpartition(".")[0] not in layout.layers]
    if missing or result.unexpected_keys:  # read_bitnet_layout checked this already
        raise BitNetFormatError(f"bitnet checkpoint: missing {missing}, unexpected {result.unexpected_keys}")
    if layout.tied_linears:
        model.tie_weights()
    left = [n for n, p in model.named_parameters() if p.is_meta] + [n for n, b in model.named_buffers() if b.is_meta]
    if left:
        raise BitNetFormatError(f"bitnet checkpoint: no value was loaded for {left[:3]} ({len(left)} in all)")
    model.config.dtype = dtype
    mark_bitmat(model, qc)
    if device is not None:
        model = model.to(device)
    model.eval()
    logger.info(
        "loaded bitnet checkpoint %s (%s, %d quantized layers) as %s with BitMat kernels",
        folder,
        layout.linear_class,
        len(layout.layers),
        type(model).__name__,
    )
    return model


# ----------------------------------------------------------------------------------------------- export


def _export_config(model, linear_class: str, skip: list[str], dtype: torch.dtype) -> dict[str, Any]:
    from transformers.utils.quantization_config import BitNetQuantConfig

    from .config import base_model_type

    d = model.config.to_dict()
    d.pop("quantization_config", None)
    d["model_type"] = base_model_type(str(d.get("model_type")))
    arch = d.get("architectures") or [type(model).__name__]
    d["architectures"] = [a.replace("158ForCausalLM", "ForCausalLM") for a in arch]
    if "torch_dtype" in d:
        d["torch_dtype"] = str(dtype).replace("torch.", "")
    d["dtype"] = str(dtype).replace("torch.", "")
    qc = BitNetQuantConfig(linear_class=linear_class, quantization_mode="offline", modules_to_not_convert=skip)
    qd = qc.to_dict()
    qd["quant_method"] = QUANT_METHOD_BITNET
    d["quantization_config"] = qd
    return d


def export_bitnet(
    model,
    folder: str | os.PathLike,
    *,
    linear_class: str = "autobitlinear",
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes a BitMat model in transformers' "bitnet" format (quant_method "bitnet", offline, `linear_class`
    "autobitlinear" or "bitlinear"), so that stock `AutoModelForCausalLM.from_pretrained(folder)` loads it (a
    158 class is written as its base architecture, e.g. Llama158ForCausalLM as "llama"). Every BitLinear must be
    1.58-bit with one scale per tensor, int8 activations and no input norm, and have a multiple of 4 output
    features (what the bitnet format can hold); any other nn.Linear is written in full precision and listed
    in modules_to_not_convert. Float tensors and the scales are written in `dtype` (default: the dtype of the
    input embeddings). The folder is written atomically (a temporary folder, then a rename)."""
    import bitmat_kernels as bk
    from bitmat_nn import BitLinear
    from safetensors.torch import save_file
    from transformers import PreTrainedModel

    fn = "export_bitnet"
    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"{fn}: argument 'model' must be a transformers PreTrainedModel, got {type(model).__name__}")
    if linear_class not in LINEAR_CLASSES:
        raise ValueError(f"{fn}: argument 'linear_class' must be one of {LINEAR_CLASSES}, got {linear_class!r}")
    emb = model.get_input_embeddings()
    if dtype is None:
        dtype = emb.weight.dtype if emb is not None and emb.weight.is_floating_point() else torch.float32
    if dtype not in _DTYPES.values():
        raise ValueError(f"{fn}: argument 'dtype' must be float32, bfloat16 or float16, got {dtype}")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not overwrite:
        raise FileExistsError(f"{fn}: folder {str(folder)!r} exists and is not empty (pass overwrite=True)")
    bitlinears = [(n, m) for n, m in model.named_modules() if isinstance(m, BitLinear)]
    if not bitlinears:
        raise ValueError(f"{fn}: {type(model).__name__} has no BitLinear layer; convert it first (convert_hf_model)")
    for name, m in bitlinears:
        problems = []
        if m.weight_bits != 1.58:
            problems.append(f"weight_bits={m.weight_bits} (bitnet holds ternary 1.58-bit weights)")
        if m.per_channel:
            problems.append("per_channel=True (bitnet holds one scale per tensor)")
        if m.activation_bits != 8:
            problems.append(f"activation_bits={m.activation_bits} (transformers' bitnet layers quantize to int8)")
        if m.input_norm:
            problems.append("input_norm=True (not exported)")
        if m.out_features % ROWS_PER_BYTE:
            problems.append(f"out_features={m.out_features} is not a multiple of 4 (bitnet packs 4 rows per byte)")
        if problems:
            raise BitNetFormatError(
                f"{fn}: layer {name!r} cannot be written in the bitnet format: {'; '.join(problems)}"
            )
    quantized = {n for n, _ in bitlinears}
    skip = sorted(n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in quantized)
    tied = _tied_linear_names(model)
    state = {}
    for key, t in model.state_dict().items():
        owner = key.rpartition(".")[0]
        if owner in quantized or (owner in tied and key == f"{owner}.weight"):
            continue
        t = t.detach().to("cpu")
        state[key] = (t.to(dtype) if t.is_floating_point() else t).contiguous()
    for name, m in bitlinears:
        with torch.no_grad():
            if m.weight is not None:
                codes, scale = m._quantize(m.weight.detach())
            else:
                codes = bk.unpack_ternary(m.packed_weight, m.in_features)
                scale = m.weight_scale
        scale = scale.detach().to("cpu", torch.float32).reshape(1)
        if linear_class == "bitlinear":
            scale = torch.ones_like(scale) / scale
        state[f"{name}.weight"] = pack_hf_bitnet(codes.to("cpu"), name=name).contiguous()
        state[f"{name}.weight_scale"] = scale.to(dtype).contiguous()
        if m.bias is not None:
            state[f"{name}.bias"] = m.bias.detach().to("cpu", dtype).contiguous()
    config = _export_config(model, linear_class, skip, dtype)

    def write(tmp: Path) -> None:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        gen = getattr(model, "generation_config", None)
        if gen is not None:
            gen.save_pretrained(str(tmp))

    write_folder_atomically(folder, write)
    logger.info("wrote %d layers of %s in the bitnet format (%s) to %s", len(bitlinears), type(model).__name__,
                linear_class, folder)  # fmt: skip
    return folder


def describe_bitnet_checkpoint(folder: str | os.PathLike) -> dict[str, Any]:
    """A JSON-able summary of a bitnet checkpoint (for `bitmat info`)."""
    layout = read_bitnet_layout(folder)
    layers = []
    packed = 0
    for name, layer in layout.layers.items():
        layers.append(
            {
                "name": name,
                "out_features": layer.out_features,
                "in_features": layer.in_features,
                "packed_shape": list(layer.weight.shape),
                "scale_shape": list(layer.weight_scale.shape),
                "scale_dtype": layer.weight_scale.dtype,
                "bytes": layer.nbytes,
            }
        )
        packed += layer.nbytes
    info = layout.checkpoint
    cfg = layout.config
    return {
        "folder": str(layout.folder),
        "format": "HF bitnet (transformers quant_method 'bitnet')",
        "model_type": cfg.get("model_type"),
        "architectures": cfg.get("architectures"),
        "bitmat": False,
        "bitnet": True,
        "linear_class": layout.linear_class,
        "weight_scale": "1/mean|W| (divides)" if layout.scale_is_reciprocal else "mean|W| (multiplies)",
        "quantization_mode": layout.quantization_config.get("quantization_mode", "offline"),
        "format_version": None,
        "checkpoint_format": f"bitnet ({layout.linear_class})",
        "weight_bits": 1.58,
        "activation_bits": 8,
        "per_channel": False,
        "modules_to_not_convert": layout.full_precision_linears + layout.tied_linears,
        "bitlinear_layers": len(layers),
        "packed_bytes": packed,
        "full_precision_bytes": info.total_bytes() - packed,
        "bf16_equivalent_bytes_of_packed_layers": sum(2 * x["out_features"] * x["in_features"] for x in layers),
        "file_bytes": sum(f.stat().st_size for f in info.files),
        "files": [f.name for f in info.files],
        "layers": layers,
    }


__all__ = [
    "BitNetFormatError",
    "BitNetLayout",
    "convert_bitnet_layer",
    "describe_bitnet_checkpoint",
    "export_bitnet",
    "is_bitnet_checkpoint",
    "is_bitnet_config",
    "load_bitnet_checkpoint",
    "pack_hf_bitnet",
    "read_bitnet_layout",
    "unpack_hf_bitnet",
]
