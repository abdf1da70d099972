"""The `bitmat` command line: `bitmat demo`, `bitmat convert SRC OUT`, `bitmat generate FOLDER --prompt ...`,
`bitmat info FOLDER`, `bitmat tune FOLDER --out FILE`. Errors print one clear line (`bitmat: error: ...`) and exit
with status 1; `--debug` shows the traceback."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

logger = logging.getLogger("bitmat_hf.cli")

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
)


def _weight_bits(value: str) -> float:
    if value in ("1.58", "1.58b", "ternary", "2"):
        return 1.58
    if value in ("1", "1b", "binary"):
        return 1
    raise argparse.ArgumentTypeError(f"must be 1.58 (ternary) or 1 (binary), got {value!r}")


def _activation_bits(value: str):
    if value == "8":
        return 8
    if value.lower() in ("none", "16", "bf16", "fp16"):
        return None
    raise argparse.ArgumentTypeError(f"must be 8 or none (weight-only), got {value!r}")


def _dtype(value: str):
    import torch

    names = {"auto": "auto", "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16}
    names.update({"bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16})
    if value not in names:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(names)}, got {value!r}")
    return names[value]


def _batch_sizes(value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"must be positive integers separated by commas, got {value!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bitmat",
        description="1.58-bit (ternary) and 1-bit LLMs with HuggingFace transformers: convert, fine-tune, save, "
        "load and generate. Start with `bitmat demo`.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="pre-train, convert, fine-tune, save, reload and generate with a small model")
    d.add_argument("--out", help="folder for the checkpoints (default: a new temporary folder)")
    d.add_argument("--pretrain-steps", type=int, default=400, help="full-precision pre-training steps (400)")
    d.add_argument("--qat-steps", type=int, default=200, help="quantization-aware fine-tuning steps (200)")
    d.add_argument("--max-chars", type=int, default=None, help="cap the training text (characters)")
    d.add_argument("--hidden-size", type=int, default=96)
    d.add_argument("--layers", type=int, default=2)
    d.add_argument("--prompt", default="The river")
    d.add_argument("--new-tokens", type=int, default=40)
    d.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    d.add_argument("--seed", type=int, default=0)

    c = sub.add_parser(
        "convert",
        help="convert a full-precision (or HF 'bitnet') model folder to a packed BitMat one, or to the bitnet format",
        description="SRC is a full-precision transformers causal LM, or a transformers 'bitnet' checkpoint "
        "(quant_method 'bitnet', e.g. microsoft/bitnet-b1.58-2B-4T), whose packed ternary weights are converted "
        "as they are. With --to bitnet, SRC (full precision or BitMat) is written in the bitnet format that stock "
        "transformers loads.",
    )
    c.add_argument("src", help="folder of a full-precision or 'bitnet' transformers causal LM (safetensors)")
    c.add_argument("out", help="new folder for the converted checkpoint")
    c.add_argument(
        "--to",
        choices=("bitmat", "bitnet"),
        default="bitmat",
        help="bitmat (default): BitMat's packed format; bitnet: transformers' 'bitnet' format",
    )
    c.add_argument(
        "--linear-class",
        choices=("autobitlinear", "bitlinear"),
        default="autobitlinear",
        help="with --to bitnet: the transformers layer class to write for (default autobitlinear)",
    )
    c.add_argument("--weight-bits", type=_weight_bits, default=1.58, help="1.58 (ternary, default) or 1 (binary)")
    c.add_argument("--activation-bits", type=_activation_bits, default=8, help="8 (default) or none (weight-only)")
    c.add_argument("--per-channel", action="store_true", help="one weight scale per output row")
    c.add_argument(
        "--skip", action="append", default=None, metavar="MODULE", help="module to keep in full precision (repeat)"
    )
    c.add_argument("--keep-latent", action="store_true", help="save the latent full-precision weights (to train)")
    c.add_argument("--dtype", type=_dtype, default="auto", help="dtype of the unconverted parts (auto)")
    c.add_argument("--force", action="store_true", help="replace OUT if it exists")

    g = sub.add_parser("generate", help="generate text with a BitMat (or any transformers) model folder")
    g.add_argument("folder")
    g.add_argument("--prompt", required=True)
    g.add_argument("--max-new-tokens", type=int, default=50)
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-k", type=int, default=50)
    g.add_argument("--device", help="cpu, cuda, auto (device_map='auto') ...")

    t = sub.add_parser(
        "tune",
        help="measure kernel launch configs for a model's layer shapes on this GPU and save them",
        description="Loads FOLDER on a CUDA device, fuses its projections as prepare_for_fast_generation does (unless "
        "--no-fuse), times a small set of kernel launch configs for every distinct layer shape and bucket of tokens "
        "(bitmat_nn.tune_kernels) and writes the fastest to OUT. Processes that set "
        "BITMAT_KERNELS_TUNED_CONFIGS=OUT (or call bitmat_kernels.load_tuned_configs) run them instead of the "
        "launch rules shipped for the H100 and H200. On an H100 one large layer shape takes 20-45 s with the default "
        "batch sizes (compile included); fewer --batch-sizes or a smaller --budget-ms take less.",
    )
    t.add_argument("folder")
    t.add_argument("--out", required=True, help="JSON file for the chosen configs")
    t.add_argument(
        "--batch-sizes", type=_batch_sizes, default=None, help="tokens a call, comma-separated (default 1,2,4,...,4096)"
    )
    t.add_argument("--dtype", type=_dtype, default="bfloat16", help="activation dtype (bfloat16)")
    t.add_argument("--device", default="cuda", help="a CUDA device (cuda, cuda:1 ...)")
    t.add_argument("--budget-ms", type=float, default=50.0, help="timing per candidate config, ms (50)")
    t.add_argument("--no-fuse", action="store_true", help="tune the layers as they are, unfused")
    t.add_argument("--force", action="store_true", help="replace OUT if it exists")

    i = sub.add_parser("info", help="show a BitMat (or HF bitnet) checkpoint: layers, bits, sizes, format version")
    i.add_argument("folder")
    i.add_argument("--layers", action="store_true", help="list every packed layer")
    i.add_argument("--json", action="store_true", help="print JSON")
    return p


# ----------------------------------------------------------------------------------------------- commands


def cmd_demo(args) -> int:
    from .demo import DemoSettings, format_table, run_demo

    settings = DemoSettings(
        pretrain_steps=args.pretrain_steps,
        qat_steps=args.qat_steps,
        max_chars=args.max_chars,
        hidden_size=args.hidden_size,
        num_layers=args.layers,
        prompt=args.prompt,
        new_tokens=args.new_tokens,
        device=args.device,
        seed=args.seed,
        out=args.out,
    )
    for name in ("pretrain_steps", "qat_steps", "hidden_size", "num_layers", "new_tokens"):
        if getattr(settings, name) < 1:
            raise ValueError(f"demo: --{name.replace('_', '-')} must be at least 1, got {getattr(settings, name)}")
    if settings.hidden_size % 4:
        raise ValueError(f"demo: --hidden-size must be a multiple of 4 (4 heads), got {settings.hidden_size}")
    result = run_demo(settings)
    sys.stdout.write(format_table(result) + "\n")
    return 0


def cmd_convert(args) -> int:
    from transformers import AutoModelForCausalLM, PretrainedConfig

    from .bitnet import is_bitnet_config
    from .checkpoint import checkpoint_files
    from .config import BitMatConfig
    from .modeling import MODEL_158_FOR_MODEL_TYPE

    src, out = Path(args.src), Path(args.out)
    checkpoint_files(src)  # clear error for a missing folder or pickled weights, before anything else
    cfg, _ = PretrainedConfig.get_config_dict(str(src))
    q = cfg.get("quantization_config")
    if out.exists() and any(out.iterdir()) and not args.force:
        raise FileExistsError(
            f"convert: output folder {str(out)!r} exists and is not empty (use --force to replace it)"
        )
    if args.to == "bitnet":
        return _convert_to_bitnet(args, src, out, cfg)
    if is_bitnet_config(cfg):
        return _convert_from_bitnet(args, src, out)
    if q is not None:
        raise ValueError(
            f"convert: {str(src)!r} is already quantized ({q.get('quant_method')!r}); give its full-precision original"
        )
    qc = BitMatConfig(
        weight_bits=args.weight_bits,
        activation_bits=args.activation_bits,
        per_channel=args.per_channel,
        modules_to_not_convert=args.skip,
        keep_latent_weights=args.keep_latent,
    )
    model_type = cfg.get("model_type")
    cls = MODEL_158_FOR_MODEL_TYPE.get(model_type, AutoModelForCausalLM)
    t0 = time.perf_counter()
    logger.info("loading %s (%s) and quantizing it while loading", src, model_type)
    model = cls.from_pretrained(str(src), quantization_config=qc, dtype=args.dtype)
    from .modeling import save_pretrained

    _write_folder(src, out, lambda tmp: save_pretrained(model, tmp, keep_latent_weights=args.keep_latent))
    info = _info(out)
    sys.stdout.write(
        f"converted {src} -> {out} in {time.perf_counter() - t0:.1f} s: {type(model).__name__}, "
        f"{info['bitlinear_layers']} BitLinear layers at {qc.weight_bits} bits, "
        f"{_size(info['file_bytes'])} on disk ({info['checkpoint_format']})\n"
    )
    return 0


def _write_folder(src: Path, out: Path, write) -> None:
    """write(tmp) plus the tokenizer files of `src`, written to `out` all or nothing."""
    from .utils import write_folder_atomically

    def write_with_tokenizer(tmp: Path) -> None:
        write(tmp)
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)

    write_folder_atomically(out, write_with_tokenizer)


def _convert_from_bitnet(args, src: Path, out: Path) -> int:
    """A transformers 'bitnet' checkpoint -> BitMat's packed format (its ternary codes and scales kept as they are)."""
    from .bitnet import load_bitnet_checkpoint
    from .modeling import save_pretrained

    refused = [
        flag
        for flag, used in (
            ("--weight-bits", args.weight_bits != 1.58),
            ("--per-channel", args.per_channel),
            ("--skip", bool(args.skip)),
            ("--keep-latent", args.keep_latent),
        )
        if used
    ]
    if refused:
        raise ValueError(
            f"convert: {str(src)!r} is a 'bitnet' checkpoint (ternary weights with one scale per tensor, already "
            f"quantized): {', '.join(refused)} cannot apply to it"
        )
    t0 = time.perf_counter()
    logger.info("reading the bitnet checkpoint %s", src)
    dtype = None if args.dtype == "auto" else args.dtype
    model = load_bitnet_checkpoint(
        src, dtype=dtype, activation_bits=args.activation_bits, show_progress=not args.no_progress
    )
    _write_folder(src, out, lambda tmp: save_pretrained(model, tmp))
    info = _info(out)
    sys.stdout.write(
        f"converted bitnet checkpoint {src} -> {out} in {time.perf_counter() - t0:.1f} s: {type(model).__name__}, "
        f"{info['bitlinear_layers']} BitLinear layers at 1.58 bits, {_size(info['file_bytes'])} on disk "
        f"({info['checkpoint_format']})\n"
    )
    return 0


def _convert_to_bitnet(args, src: Path, out: Path, cfg: dict) -> int:
    """A full-precision or BitMat checkpoint -> transformers' 'bitnet' format (loads in stock transformers)."""
    from transformers import AutoModelForCausalLM

    from .bitnet import export_bitnet, is_bitnet_config
    from .config import BitMatConfig
    from .modeling import MODEL_158_FOR_MODEL_TYPE

    if is_bitnet_config(cfg):
        raise ValueError(f"convert: {str(src)!r} is already a 'bitnet' checkpoint")
    refused = [
        flag
        for flag, used in (
            ("--weight-bits 1", args.weight_bits != 1.58),
            ("--per-channel", args.per_channel),
            ("--activation-bits none", args.activation_bits is None),
            ("--keep-latent", args.keep_latent),
        )
        if used
    ]
    if refused:
        raise ValueError(
            f"convert: the bitnet format holds ternary weights, one scale per tensor and int8 activations: "
            f"{', '.join(refused)} cannot apply"
        )
    t0 = time.perf_counter()
    q = cfg.get("quantization_config")
    dtype = args.dtype
    if q is None:
        qc = BitMatConfig(modules_to_not_convert=args.skip)
        cls = MODEL_158_FOR_MODEL_TYPE.get(cfg.get("model_type"), AutoModelForCausalLM)
        model = cls.from_pretrained(str(src), quantization_config=qc, dtype=dtype)
    elif str(q.get("quant_method")) == "bitmat":
        if args.skip:
            raise ValueError(f"convert: --skip cannot apply to {str(src)!r}: it is already a BitMat checkpoint")
        model = AutoModelForCausalLM.from_pretrained(str(src), dtype=dtype)
    else:
        raise ValueError(
            f"convert: {str(src)!r} is quantized with {q.get('quant_method')!r}; give its full-precision original"
        )
    export_dtype = None if dtype == "auto" else dtype

    def write(tmp: Path) -> None:
        export_bitnet(model, tmp, linear_class=args.linear_class, dtype=export_dtype, overwrite=True)

    _write_folder(src, out, write)
    n = len([1 for m in model.modules() if type(m).__name__ == "BitLinear"])
    sys.stdout.write(
        f"converted {src} -> {out} in {time.perf_counter() - t0:.1f} s: {n} layers in transformers' bitnet format "
        f"(linear_class {args.linear_class})\n"
    )
    return 0


def _load_causal_lm(folder: Path, device: str | None, bitnet: bool, verb: str):
    """A model folder in eval mode on `device` (None: CUDA when there is one; "auto": a device map)."""
    import torch
    from transformers import AutoModelForCausalLM

    from .bitnet import load_bitnet_checkpoint

    if bitnet:
        # transformers' own "bitnet" checkpoints run on BitMat's layers and kernels, not transformers' slow path
        if device == "auto":
            raise ValueError(f"{verb}: --device auto (a device map) is not supported for 'bitnet' checkpoints")
        model = load_bitnet_checkpoint(folder, show_progress=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), **({"device_map": "auto"} if device == "auto" else {})
        )
    if device not in (None, "auto"):
        model = model.to(device)
    elif device is None and torch.cuda.is_available():
        model = model.to("cuda")
    return model.eval()


def cmd_tune(args) -> int:
    import bitmat_kernels as bk
    import torch
    from bitmat_kernels.ops.linear.tuning import describe_config
    from bitmat_nn import tune_kernels

    from .bitnet import is_bitnet_checkpoint
    from .checkpoint import inspect_checkpoint
    from .generation import prepare_for_fast_generation
    from .utils import progress

    folder, out = Path(args.folder), Path(args.out)
    if out.exists() and not args.force:
        raise ValueError(f"tune: {str(out)!r} exists; pass --force to replace it")
    if not out.parent.is_dir():
        raise ValueError(f"tune: the folder of --out, {str(out.parent)!r}, does not exist")
    device = torch.device(args.device)
    if device.type != "cuda" or not torch.cuda.is_available():
        raise ValueError(
            f"tune: needs a CUDA device (the Triton kernels are what is tuned), got --device {args.device}"
        )
    bitnet = is_bitnet_checkpoint(folder)
    if not bitnet:
        inspect_checkpoint(folder)
    model = _load_causal_lm(folder, args.device, bitnet, "tune").to(args.dtype)
    if not args.no_fuse:
        prepare_for_fast_generation(model, compile=False)
    results = tune_kernels(
        model, batch_sizes=args.batch_sizes, dtype=args.dtype, budget_ms=args.budget_ms,
        progress=lambda items, total: progress(items, desc="tuning layer shapes", total=total),
    )  # fmt: skip
    saved = bk.save_tuned_configs(out)
    lines = [f"{'layer shape':<22} {'M':>5}  {'path':<8} {'config':<40} {'us':>9} {'rules us':>9}"]
    for (n, k, bits, act), records in results.items():
        shape = f"{n}x{k} W{bits}A{act or 16}"
        for r in records:
            text = "-" if r["config"] is None else describe_config(r["config"])
            us = "-" if r["us"] is None else f"{r['us']:.1f}"
            rule = "-" if r["rule_us"] is None else f"{r['rule_us']:.1f}"
            lines.append(f"{shape:<22} {r['m']:>5}  {r['path']:<8} {text:<40} {us:>9} {rule:>9}")
    lines.append(f"{saved} configs for {len(results)} layer shapes on {torch.cuda.get_device_name(device)} -> {out}")
    lines.append(f"use them with BITMAT_KERNELS_TUNED_CONFIGS={out} or bitmat_kernels.load_tuned_configs()")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_generate(args) -> int:
    import torch
    from transformers import AutoTokenizer

    from .bitnet import is_bitnet_checkpoint
    from .checkpoint import inspect_checkpoint

    folder = Path(args.folder)
    bitnet = is_bitnet_checkpoint(folder)
    if not bitnet:
        inspect_checkpoint(folder)
    if args.max_new_tokens < 1:
        raise ValueError(f"generate: --max-new-tokens must be at least 1, got {args.max_new_tokens}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as e:
        raise ValueError(f"generate: no usable tokenizer in {str(folder)!r} ({e})") from None
    model = _load_causal_lm(folder, args.device, bitnet, "generate")
    device = next(model.parameters()).device
    enc = tokenizer(args.prompt, return_tensors="pt").to(device)
    gen = dict(max_new_tokens=args.max_new_tokens, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    if args.temperature > 0:
        gen.update(do_sample=True, temperature=args.temperature, top_k=args.top_k)
    else:
        gen.update(do_sample=False)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**enc, **gen)
    dt = time.perf_counter() - t0
    n = out.shape[1] - enc["input_ids"].shape[1]
    sys.stdout.write(tokenizer.decode(out[0], skip_special_tokens=True) + "\n")
    logger.warning("%d tokens in %.2f s (%.1f tokens/s) on %s", n, dt, n / dt if dt else 0.0, device)
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def _info(folder: Path) -> dict:
    from .bitnet import describe_bitnet_checkpoint, is_bitnet_config
    from .checkpoint import inspect_checkpoint, read_config
    from .config import BitMatConfig

    if is_bitnet_config(read_config(folder)):
        return describe_bitnet_checkpoint(folder)
    ci = inspect_checkpoint(folder)
    cfg = ci.config
    layers = []
    packed_bytes = other_bytes = 0
    in_features = _in_features(cfg)
    for name, t in sorted(ci.tensors.items()):
        if name.endswith(".packed_weight"):
            prefix = name[: -len(".packed_weight")]
            scale = ci.tensors.get(prefix + ".weight_scale")
            k = in_features.get(prefix)
            layers.append(
                {
                    "name": prefix,
                    "out_features": t.shape[0],
                    "in_features": k,
                    "packed_shape": list(t.shape),
                    "scale_shape": list(scale.shape) if scale else None,
                    "bytes": t.nbytes + (scale.nbytes if scale else 0),
                }
            )
            packed_bytes += t.nbytes + (scale.nbytes if scale else 0)
        elif not name.endswith(".weight_scale"):
            other_bytes += t.nbytes
    q = BitMatConfig.coerce(ci.quantization_config) if ci.is_bitmat else None
    latent_layers = []
    if q is not None and q.checkpoint_format == "latent":
        latent_layers = [n for n in in_features if n + ".weight" in ci.tensors]
    return {
        "folder": str(folder),
        "model_type": cfg.get("model_type"),
        "architectures": cfg.get("architectures"),
        "bitmat": ci.is_bitmat,
        "format_version": q.format_version if q else None,
        "checkpoint_format": q.checkpoint_format if q else "full precision",
        "weight_bits": q.weight_bits if q else None,
        "activation_bits": q.activation_bits if q else None,
        "per_channel": q.per_channel if q else None,
        "modules_to_not_convert": q.modules_to_not_convert if q else None,
        "bitlinear_layers": len(layers) or len(latent_layers),
        "packed_bytes": packed_bytes,
        "full_precision_bytes": other_bytes,
        "bf16_equivalent_bytes_of_packed_layers": sum(2 * x["out_features"] * (x["in_features"] or 0) for x in layers),
        "file_bytes": sum(f.stat().st_size for f in ci.files),
        "files": [f.name for f in ci.files],
        "layers": layers,
    }


def _in_features(cfg: dict) -> dict[str, int]:
    """in_features of every linear layer, from a meta-device skeleton of the model (no weights allocated)."""
    try:
        import torch
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForCausalLM

        cfg = {k: v for k, v in cfg.items() if k != "quantization_config"}
        config = AutoConfig.for_model(**cfg)
        with init_empty_weights():
            model = AutoModelForCausalLM.from_config(config)
        return {n: m.in_features for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    except Exception as e:  # informational only
        logger.debug("could not build a skeleton for in_features: %s", e)
        return {}


def cmd_info(args) -> int:
    info = _info(Path(args.folder))
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return 0
    lines = [
        f"folder:               {info['folder']}",
        f"model type:           {info['model_type']} ({', '.join(info['architectures'] or [])})",
        f"BitMat checkpoint:    {'yes' if info['bitmat'] else 'no (full precision)'}",
    ]
    if info.get("bitnet"):
        lines[2] = "BitMat checkpoint:    no: HF bitnet format (transformers quant_method 'bitnet')"
        lines.append("format:               HF bitnet; `bitmat convert` turns it into BitMat's format")
        lines += [
            f"linear class:         {info['linear_class']} (weight_scale stored as {info['weight_scale']})",
            "weight bits:          1.58 (ternary, 4 output rows per byte, one scale per tensor)",
            "activation bits:      8 (per-token absmax)",
            f"kept full precision:  {', '.join(info['modules_to_not_convert'] or []) or '-'}",
            f"quantized layers:     {info['bitlinear_layers']}",
            f"packed layers:        {_size(info['packed_bytes'])} "
            f"(bf16 would be {_size(info['bf16_equivalent_bytes_of_packed_layers'])})",
            f"full-precision rest:  {_size(info['full_precision_bytes'])}",
        ]
    if info["bitmat"]:
        act = info["activation_bits"] if info["activation_bits"] is not None else "none (weight-only)"
        lines += [
            f"format version:       {info['format_version']}",
            f"stored weights:       {info['checkpoint_format']}",
            f"weight bits:          {info['weight_bits']}{' (per-channel scales)' if info['per_channel'] else ''}",
            f"activation bits:      {act}",
            f"kept full precision:  {', '.join(info['modules_to_not_convert'] or []) or '-'}",
            f"BitLinear layers:     {info['bitlinear_layers']}",
            f"packed layers:        {_size(info['packed_bytes'])} "
            f"(bf16 would be {_size(info['bf16_equivalent_bytes_of_packed_layers'])})",
            f"full-precision rest:  {_size(info['full_precision_bytes'])}",
        ]
    lines.append(f"files:                {', '.join(info['files'])} ({_size(info['file_bytes'])})")
    if args.layers:
        w = max((len(x["name"]) for x in info["layers"]), default=4)
        lines.append("")
        lines.append(f"{'layer'.ljust(w)}  {'out':>6} {'in':>6}  packed      bytes")
        for x in info["layers"]:
            lines.append(
                f"{x['name'].ljust(w)}  {x['out_features']:>6} {x['in_features'] or '?':>6}  "
                f"{'x'.join(map(str, x['packed_shape'])):<10} {x['bytes']:>6}"
            )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


GLOBAL_FLAGS = ("-v", "--verbose", "--debug", "--no-progress")

COMMANDS = {"demo": cmd_demo, "convert": cmd_convert, "generate": cmd_generate, "info": cmd_info, "tune": cmd_tune}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # The global flags are accepted after the command too (`bitmat demo --no-progress`).
    flags = [a for a in argv if a in GLOBAL_FLAGS]
    rest = [a for a in argv if a not in GLOBAL_FLAGS]
    args = parser.parse_args(flags + rest)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    if args.no_progress:
        hf_logging.disable_progress_bar()
    if args.command == "demo" and not args.verbose:
        logging.getLogger("bitmat_hf").setLevel(logging.INFO)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        sys.stderr.write("bitmat: interrupted\n")
        return 130
    except Exception as e:
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        sys.stderr.write(f"bitmat: error: {msg}\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
