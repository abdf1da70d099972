"""The `bitmat-bench` command line: `bitmat-bench <verb> [options]`, verbs kernels, layers, model, roofline."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import logging
import signal
import sys
from pathlib import Path

from .__about__ import __version__

log = logging.getLogger("bitmat_bench")

_EPILOG = (
    "Without a CUDA device every verb runs the pure-torch reference on small sizes and says so: "
    "those numbers are not GPU performance. Results go to --out (default "
    "bench-results/<gpu>/<date-time>/): results.json, results.csv, summary.md and PNG plots."
)


def _default_out(verb: str) -> Path:
    from .env import gpu_slug

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = stamp if verb == "kernels" else f"{stamp}-{verb}"
    return Path("bench-results") / gpu_slug() / name


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common options")
    g.add_argument("--out", type=Path, default=None, help="output folder (default: bench-results/<gpu>/<date-time>/)")
    g.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present (reference path)")
    g.add_argument("--replays", type=int, default=10, help="timed CUDA-graph replays per measurement (default 10)")
    g.add_argument("--warmup", type=int, default=2, help="untimed warm-up calls/replays (default 2)")
    g.add_argument("--no-graph", action="store_true", help="time eager calls only (no CUDA graphs)")
    g.add_argument("--max-seconds", type=float, default=None, help="stop starting new measurements after this long")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    g.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitmat-bench",
        description="Benchmarks of BitMat's ternary/binary kernels, layers and models against cuBLAS and peers.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"bitmat-bench {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="{kernels,layers,model,roofline,report}")

    k = sub.add_parser(
        "kernels",
        help="bitmat_linear in each mode vs cuBLAS bf16, torch int8 and peers",
        description=(
            "bitmat_kernels.bitmat_linear (W1.58A8, W1.58A16, W1A8, W1A16) against cuBLAS bf16 (F.linear), "
            "torch._int_mm int8, and, when installed, gemlite's ternary helpers, the original BitMat "
            "(bitmat-tl) and transformers' BitNet layers. Each output is checked against a float64 "
            "reference before it is timed."
        ),
        epilog=_EPILOG,
    )
    k.add_argument(
        "--shapes",
        default=None,
        help="comma-separated NxK (N=out, K=in) or model names: llama3-8b, llama-70b, bitnet-2b, all "
        "(default: DESIGN §6's 11 shapes; 256x256,512x256 on the CPU)",
    )
    k.add_argument(
        "--batch",
        "-m",
        default=None,
        help="comma-separated M values (default 1,4,16,64,256,1024,4096,8192; 1,16 on CPU)",
    )
    k.add_argument(
        "--impls",
        default=None,
        help="comma-separated implementations or groups (baselines, bitmat, peers, gemlite, hf, ternary, all); "
        "'-name' drops one. Default: all. Names: cublas-bf16, torch-int8, bitmat-w158a8, bitmat-w158a16, "
        "bitmat-w1a8, bitmat-w1a16, gemlite-a8w158, gemlite-a16w158, bitmat-tl, hf-bitlinear, hf-autobitlinear",
    )
    k.add_argument("--check-rows", type=int, default=256, help="rows checked against the reference (default 256)")
    k.add_argument("--no-roofline", action="store_true", help="skip the bandwidth/matmul-rate measurement")
    k.add_argument("--max-copies", type=int, default=64, help="cap on the rotated weight copies (default 64)")
    k.add_argument(
        "--budget",
        type=float,
        default=0.25,
        help="seconds of timed replays per measurement for slow ops: fewer replays (at least 3) when one "
        "replay is long (default 0.25; 0 = always --replays)",
    )
    k.add_argument("--list", action="store_true", help="list implementations, shapes and batches, then exit")
    _common(k)

    ly = sub.add_parser(
        "layers",
        help="BitLinear, BitFFN, BitAttention forward and training step vs nn.Linear counterparts",
        description=(
            "bitmat_nn's BitLinear, BitFFN and BitAttention (forward in eval mode, and a training step: "
            "forward + backward) against the same modules built with nn.Linear. Needs bitmat-nn; what it "
            "lacks is reported as skipped."
        ),
        epilog=_EPILOG,
    )
    ly.add_argument(
        "--dims",
        default=None,
        help="model presets for the sizes (default llama3-8b,bitnet-2b; tiny on CPU)",
    )
    ly.add_argument(
        "--tokens", default=None, help="comma-separated tokens per call (batch 1 x T) (default 1,16,256,2048)"
    )
    ly.add_argument("--layers", default="linear,ffn,attention", help="which: linear, ffn, attention (default all)")
    ly.add_argument("--no-train", action="store_true", help="forward only")
    _common(ly)

    md = sub.add_parser(
        "model",
        help="generation speed: a ternary (BitMat) model vs the same model in bf16, static cache + CUDA graphs",
        description=(
            "Builds decoder LMs of named shapes with random weights (transformers; no download), in bf16 and "
            "converted to BitMat (latent weights dropped), and measures prefill tokens/s, decode tokens/s (static KV "
            "cache; the decode step in one CUDA graph, and model.generate with transformers' reduce-overhead "
            "compile), peak memory and linear-layer weight memory. headline.md has the ratios to bf16."
        ),
        epilog=_EPILOG,
    )
    md.add_argument(
        "--model",
        default=None,
        help="comma-separated presets: llama3-8b, bitnet-2b, llama-70b, llama3-1b, tiny "
        "(default llama3-8b,bitnet-2b; tiny on CPU)",
    )
    md.add_argument(
        "--arch",
        default="auto",
        choices=("auto", "llama", "bitnet"),
        help="transformers architecture: llama, bitnet (BitNetForCausalLM), auto (bitnet for bitnet-2b)",
    )
    md.add_argument("--num-layers", type=int, default=None, help="decoder layers (default: the model's; 2 on CPU)")
    md.add_argument("--batch", default=None, help="batch sizes of the graph mode (default 1,4,16; 1 on CPU)")
    md.add_argument(
        "--generate-batch", default=None, help="batch sizes of the generate mode (default 1,16; --batch on CPU)"
    )
    md.add_argument("--prompt-len", type=int, default=None, help="prompt tokens per sequence (default 32; 8 on CPU)")
    md.add_argument("--new-tokens", type=int, default=None, help="generated tokens (default 128; 8 on CPU)")
    md.add_argument(
        "--prefill-len", type=int, default=None, help="tokens of the [1, L] prefill measurement (default 2048)"
    )
    md.add_argument(
        "--impls",
        default="bf16,bitmat",
        help="bf16, bitmat (= bitmat-hf), bitmat-nn, bitmat-kernels, bitmat-kernels-a16, hf-bitnet "
        "(default bf16,bitmat)",
    )
    md.add_argument("--modes", default="prefill,graph,generate", help="prefill, graph, generate (default all three)")
    md.add_argument(
        "--compile",
        default="auto",
        choices=("auto", "regional", "full", "none"),
        help="compilation in the graph mode: full (the whole step; default on CUDA), regional (norms + MLPs), none",
    )
    md.add_argument(
        "--pdl",
        default="auto",
        choices=("auto", "on", "off"),
        help="inductor's programmatic dependent launch in the compiled steps of every model (graph and generate "
        "modes): auto (on for Hopper and newer), on, off. BitMat kernels' own PDL: BITMAT_KERNELS_PDL=0 turns it off",
    )
    md.add_argument(
        "--baseline-last",
        action="store_true",
        help="measure the bf16 baseline after the other variants (default: first) to check for order effects "
        "between models measured in one process",
    )
    md.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure each (model, variant) in a fresh process of its own (python -m bitmat_bench model), bf16 "
        "included, and merge the results: models measured one after another in one process are not independent "
        "(whichever came second read slower on an H100). Default: on with CUDA and more than one (model, variant), "
        "off on the CPU",
    )
    # an isolated run's generated tokens, for its parent's token agreement (torch.save of {(mode, batch): tokens})
    md.add_argument("--tokens-file", type=Path, default=None, help=argparse.SUPPRESS)
    _common(md)

    rf = sub.add_parser(
        "roofline",
        help="the card's copy bandwidth and bf16/int8 matmul rates",
        description=(
            "Measures device-to-device copy bandwidth ((read + write) bytes / time) and cuBLAS bf16 and int8 "
            "matmul rates at 8192^3: the ceilings used for '%% of roofline'."
        ),
        epilog=_EPILOG,
    )
    _common(rf)

    rp = sub.add_parser(
        "report",
        help="merge results of several runs and rewrite the tables and plots",
        description=(
            "Reads one or more result folders (or results.json files) of the same bench, merges their records "
            "(the first run wins where two measured the same shape, M and implementation) and writes "
            "results.json, results.csv, summary.md and the plots into --out. With one input it just re-renders."
        ),
    )
    rp.add_argument("inputs", nargs="+", type=Path, help="result folders or results.json files")
    rp.add_argument("--out", type=Path, required=True, help="output folder")
    rp.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    rp.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return parser


def _setup_logging(args) -> None:
    level = logging.WARNING if getattr(args, "quiet", False) else logging.INFO
    if getattr(args, "verbose", 0) >= 2:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("bitmat_bench").setLevel(level)


def _device(args):
    import torch

    from .env import has_cuda

    if args.cpu or not has_cuda():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def _on_sigterm(signum, frame):  # pragma: no cover - signal path
    raise KeyboardInterrupt(f"signal {signum}")


def _cmd_kernels(args, argv) -> int:
    from .impls import select_impls
    from .kernels import KernelsConfig, run_kernels
    from .shapes import default_batches, parse_ints, parse_shapes

    device = _device(args)
    cpu = device.type != "cuda"
    shapes = parse_shapes(args.shapes, cpu=cpu)
    batches = parse_ints(args.batch, default_batches(cpu), "--batch")
    impls = select_impls(args.impls)
    if args.list:
        print("implementations:")
        for i in impls:
            print(f"  {i.name:18s} {i.label:28s} {i.description}")
        print("shapes:", ", ".join(s.label for s in shapes))
        print("batches:", ", ".join(map(str, batches)))
        return 0
    cfg = KernelsConfig(
        shapes=shapes,
        batches=batches,
        impls=impls,
        out_dir=args.out or _default_out("kernels"),
        device=device,
        replays=args.replays,
        warmup=args.warmup,
        check_rows=args.check_rows,
        roofline=not args.no_roofline,
        max_seconds=args.max_seconds,
        progress=not args.no_progress,
        seed=args.seed,
        max_copies=args.max_copies,
        use_graph=not args.no_graph,
        budget_s=args.budget if args.budget and args.budget > 0 else None,
        argv=argv,
    )
    writer = run_kernels(cfg)
    print(writer.out / "summary.md")
    return 0 if writer.complete else 130


def _cmd_roofline(args, argv) -> int:
    from . import roofline
    from .env import CPU_NOTICE, environment
    from .report import ResultWriter

    device = _device(args)
    if device.type != "cuda":
        log.warning(CPU_NOTICE)
    writer = ResultWriter(args.out or _default_out("roofline"), "roofline", environment(argv))
    try:
        writer.roofline = roofline.measure(device, replays=max(3, args.replays))
        for line in roofline.describe(writer.roofline):
            print(line)
        writer.finish(complete=True)
    except KeyboardInterrupt:
        writer.finish(complete=False)
        return 130
    print(writer.out / "summary.md")
    return 0


def _cmd_layers(args, argv) -> int:
    from .layers import run_layers

    writer = run_layers(args, argv, _device(args), args.out or _default_out("layers"))
    print(writer.out / "summary.md")
    return 0 if writer.complete else 130


def _cmd_model(args, argv) -> int:
    from .model import run_model

    writer = run_model(args, argv, _device(args), args.out or _default_out("model"))
    print(writer.out / "summary.md")
    return 0 if writer.complete else 130


def _cmd_report(args, argv) -> int:
    from .report import load, merge, write_document

    docs = []
    for p in args.inputs:
        try:
            docs.append(load(p))
        except (OSError, ValueError) as e:
            raise ValueError(f"report: cannot read results from {p}: {e}") from e
    writer = write_document(merge(docs, [str(p) for p in args.inputs]), args.out)
    print(writer.out / "summary.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 2
    _setup_logging(args)
    with contextlib.suppress(ValueError, OSError):  # not the main thread
        signal.signal(signal.SIGTERM, _on_sigterm)
    handlers = {
        "kernels": _cmd_kernels,
        "layers": _cmd_layers,
        "model": _cmd_model,
        "roofline": _cmd_roofline,
        "report": _cmd_report,
    }
    try:
        return handlers[args.verb](args, argv)
    except ValueError as e:
        parser.error(str(e))
        return 2
    except KeyboardInterrupt:
        log.warning("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
