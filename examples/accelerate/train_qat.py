#!/usr/bin/env python
"""Quantization-aware training (QAT) of a BitMat 1.58-bit model with accelerate: one device, DDP or FSDP2.

    python examples/accelerate/train_qat.py --steps 50                                  # one device
    accelerate launch --cpu --num_processes 2 examples/accelerate/train_qat.py --steps 20  # CPU, gloo DDP
    NCCL_NVLS_ENABLE=0 accelerate launch --config_file examples/accelerate/fsdp.yaml \\
        examples/accelerate/train_qat.py --steps 200                                     # 2 GPUs, FSDP2

What it does:
1. builds a tiny Mistral-architecture model and a byte-level BPE tokenizer locally (bitmat-hf's offline demo
   corpus), or loads `--model FOLDER` (a float transformers model or a BitMat checkpoint);
2. converts it with `bitmat_hf.convert_hf_model`: every linear layer but the LM head becomes a BitLinear that
   trains its full-precision latent weights through the fake-quantized forward (straight-through estimators);
3. trains `--steps` steps on a deterministic stream: the global batch of step s depends only on (seed, s), and
   each process takes its contiguous slice, so runs with 1, 2 or 8 processes see the same data (`--batch-size`
   is the GLOBAL batch); learning rate: linear warm-up, then cosine decay;
4. logs every step to `OUTPUT_DIR/log.jsonl` (step, loss averaged over all processes, lr, tokens/s of the whole
   job, world size, distributed type) for `compare_runs.py`;
5. saves an accelerate checkpoint (`accelerator.save_state`: model, optimizer, scheduler, RNG, step) every
   `--save-every` steps and at the end, under OUTPUT_DIR/checkpoints/step_NNNNNN; `--resume` continues from the
   latest one (or `--resume PATH` from that one) and gives the same losses as an uninterrupted run;
6. exports the packed model (`OUTPUT_DIR/packed`: safetensors, 2 bits per weight) from the unwrapped model, or,
   under FSDP, from the gathered full state dict; reloads it with `Auto158ModelForCausalLM` and checks that its
   logits equal those of the trained model; writes `OUTPUT_DIR/summary.json`.

The same command runs on CPU (gloo) and GPU (nccl); the accelerate config or `accelerate launch` flags choose.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path

import torch

logger = logging.getLogger("train_qat")

# Flags that shape the model or the data: a resumed run must use the same ones.
_SHAPE_FLAGS = (
    "model",
    "data",
    "max_chars",
    "seq_len",
    "batch_size",
    "seed",
    "hidden_size",
    "intermediate_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "vocab_size",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=100, help="optimizer steps in all (default 100)")
    p.add_argument("--batch-size", type=int, default=16, help="GLOBAL batch (sequences per step, all processes)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default 128)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of AdamW (default 2e-3)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm, 0 for none")
    p.add_argument("--output-dir", default="runs/qat", help="log.jsonl, checkpoints/, packed/, summary.json")
    p.add_argument("--save-every", type=int, default=50, help="checkpoint every K steps (0: only at the end)")
    p.add_argument(
        "--resume", nargs="?", const="latest", default=None,
        help="resume from the latest checkpoint in OUTPUT_DIR/checkpoints, or from the checkpoint folder given",
    )  # fmt: skip
    p.add_argument("--model", default=None, help="local folder: a float transformers causal LM or a BitMat one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data", choices=("corpus", "synthetic"), default="corpus",
        help="corpus: bitmat-hf's offline demo text; synthetic: a random bigram chain (any vocab)",
    )  # fmt: skip
    p.add_argument("--max-chars", type=int, default=None, help="cap the demo text (faster tokenizer build)")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--intermediate-size", type=int, default=352)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--num-heads", type=int, default=4)
    p.add_argument("--num-kv-heads", type=int, default=2)
    p.add_argument("--vocab-size", type=int, default=1024, help="tokenizer vocabulary (corpus) or token range")
    p.add_argument("--no-export", action="store_true", help="skip the packed export and the reload check")
    p.add_argument("--log-every", type=int, default=1, help="print every N steps (the JSONL log has every step)")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "seq_len"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


# --------------------------------------------------------------------------------------------------- data


class BatchStream:
    """The global batch of step s, a function of (seed, s) only; `local(step, rank, world)` slices it."""

    def __init__(self, blocks: torch.Tensor | None, vocab: int, seq_len: int, batch: int, seed: int):
        self.blocks, self.vocab, self.seq_len, self.batch, self.seed = blocks, vocab, seq_len, batch, seed
        if blocks is None:  # a random bigram chain: every token has 4 likely successors (entropy ~ ln 4)
            g = torch.Generator().manual_seed(seed + 7919)
            self.successors = torch.randint(0, vocab, (vocab, 4), generator=g)

    def global_batch(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        if self.blocks is not None:
            return self.blocks[torch.randint(0, len(self.blocks), (self.batch,), generator=g)]
        ids = torch.empty(self.batch, self.seq_len, dtype=torch.long)
        ids[:, 0] = torch.randint(0, self.vocab, (self.batch,), generator=g)
        choice = torch.randint(0, 4, (self.batch, self.seq_len), generator=g)
        for t in range(1, self.seq_len):
            ids[:, t] = self.successors[ids[:, t - 1], choice[:, t]]
        return ids

    def local(self, step: int, rank: int, world: int) -> torch.Tensor:
        per = self.batch // world
        return self.global_batch(step)[rank * per : (rank + 1) * per]


def build_tokenizer_and_blocks(args, accelerator, out: Path):
    """The demo tokenizer (built once by the main process, saved, loaded by the others) and the token blocks."""
    from bitmat_hf.data import build_tokenizer, demo_texts, token_blocks
    from transformers import PreTrainedTokenizerFast

    tok_dir = out / "tokenizer"
    train_text, _ = demo_texts(args.max_chars)
    with accelerator.main_process_first():
        if accelerator.is_main_process and not (tok_dir / "tokenizer.json").exists():
            build_tokenizer(train_text, vocab_size=args.vocab_size).save_pretrained(tok_dir)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    return tokenizer, token_blocks(tokenizer, train_text, args.seq_len)


# --------------------------------------------------------------------------------------------------- model


def build_model(args, vocab_size: int, tokenizer):
    import bitmat_hf
    from transformers import AutoConfig, AutoModelForCausalLM, MistralConfig, MistralForCausalLM

    if args.model:
        config = AutoConfig.from_pretrained(args.model, local_files_only=True)
        if getattr(config, "quantization_config", None) is not None:  # a BitMat checkpoint: latent or packed
            model = bitmat_hf.Auto158ModelForCausalLM.from_pretrained(args.model, local_files_only=True)
            bitmat_hf.prepare_for_training(model)
            return model
        model = AutoModelForCausalLM.from_pretrained(args.model, local_files_only=True, dtype=torch.float32)
        return bitmat_hf.convert_hf_model(model, show_progress=False)
    special = {}
    if tokenizer is not None:
        special = {k: getattr(tokenizer, k) for k in ("pad_token_id", "bos_token_id", "eos_token_id")}
    config = MistralConfig(
        vocab_size=vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        num_key_value_heads=args.num_kv_heads,
        max_position_embeddings=max(2 * args.seq_len, 256),
        sliding_window=None,
        tie_word_embeddings=False,
        **special,
    )
    torch.manual_seed(args.seed)  # same initial weights on every process (DDP broadcasts rank 0's anyway)
    model = MistralForCausalLM(config)
    # Latent weights kept: Mistral158ForCausalLM whose BitLinear layers train the float weights (QAT).
    return bitmat_hf.convert_hf_model(model, show_progress=False)


class TrainState:
    """The step counter, saved and restored by accelerator.save_state / load_state."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("step_*")) if folder.is_dir() else []
    return found[-1] if found else None


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # torch >= 2.13 deprecates DDP's broadcast_buffers (still honoured); torch 2.11 has no replacement yet.
    warnings.filterwarnings("ignore", message=".*broadcast_buffers.* is deprecated", category=FutureWarning)
    from accelerate import Accelerator
    from accelerate.utils import DistributedType
    from bitmat_hf import Auto158ModelForCausalLM
    from bitmat_hf.distributed import ddp_kwargs_handlers, export_packed, packed_cache_built

    # Without CUDA, cpu=True makes processes started by torchrun (or `accelerate launch --multi_gpu`) form a
    # gloo group (MULTI_CPU); `accelerate launch --cpu` alone starts a single process.
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        kwargs_handlers=ddp_kwargs_handlers(),
        step_scheduler_with_optimizer=False,
    )
    logging.basicConfig(
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
        format=f"%(asctime)s [rank {accelerator.process_index}] %(message)s",
        datefmt="%H:%M:%S",
    )
    world, rank = accelerator.num_processes, accelerator.process_index
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and accelerator.distributed_type != "FSDP":
        # accelerate enables FSDP on GPUs only; on CPU it would silently fall back to DDP (and stall at save_state).
        raise SystemExit(f"an FSDP config needs GPUs; accelerate set up {accelerator.distributed_type} here")
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} (global) must be divisible by the {world} processes")
    out = Path(args.output_dir)
    ckpt_root = out / "checkpoints"
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    # ---- data and model
    tokenizer = None
    if args.data == "corpus" and args.model and (Path(args.model) / "tokenizer.json").exists():
        from bitmat_hf.data import demo_texts, token_blocks
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
        blocks = token_blocks(tokenizer, demo_texts(args.max_chars)[0], args.seq_len)
    elif args.data == "corpus" and not args.model:
        tokenizer, blocks = build_tokenizer_and_blocks(args, accelerator, out)
    else:
        blocks = None
    model = build_model(args, len(tokenizer) if tokenizer is not None else args.vocab_size, tokenizer)
    vocab = model.config.vocab_size
    stream = BatchStream(blocks, vocab, args.seq_len, args.batch_size, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info(
        "%s, %.2fM parameters (latent), %d processes (%s), global batch %d x %d tokens",
        type(model).__name__,
        n_params / 1e6,
        world,
        accelerator.distributed_type,
        args.batch_size,
        args.seq_len,
    )

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.95))
    warm, total = max(args.warmup_steps, 0), args.steps

    def lr_lambda(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    # One prepare call: FSDP2 must see the model and its optimizer together.
    fsdp_plugin = getattr(accelerator.state, "fsdp_plugin", None)
    if accelerator.distributed_type == DistributedType.FSDP and getattr(fsdp_plugin, "fsdp_version", 1) == 2:
        # FSDP2's bf16 policy would cast the latent weights to bf16 before the ternary quantizer runs (other
        # codes and scales than on one GPU) and reduce gradients in bf16: keep both in fp32 and let the
        # autocast that accelerate wraps around forward run the matmuls in bf16, as on one GPU and under DDP.
        from torch.distributed.fsdp import MixedPrecisionPolicy

        fsdp_plugin.mixed_precision_policy = MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32)
    model, opt, sched = accelerator.prepare(model, opt, sched)
    state = TrainState()
    accelerator.register_for_checkpointing(state)

    # ---- resume
    log_path = out / "log.jsonl"
    args_path = out / "train_args.json"
    if args.resume:
        ckpt = latest_checkpoint(ckpt_root) if args.resume == "latest" else Path(args.resume)
        if ckpt is None or not ckpt.is_dir():
            raise SystemExit(f"--resume: no checkpoint found ({args.resume if args.resume != 'latest' else ckpt_root})")
        saved_args_file = ckpt / "train_args.json"
        if saved_args_file.exists():
            saved = json.loads(saved_args_file.read_text())
            diff = {k: (saved.get(k), getattr(args, k)) for k in _SHAPE_FLAGS if saved.get(k) != getattr(args, k)}
            if diff:
                raise SystemExit(f"--resume: these flags differ from the checkpoint's run (saved, now): {diff}")
        accelerator.load_state(str(ckpt))
        logger.info("resumed from %s at step %d", ckpt, state.step)
        if accelerator.is_main_process and log_path.exists():  # drop log lines past the checkpoint
            kept = [ln for ln in log_path.read_text().splitlines() if ln and json.loads(ln)["step"] <= state.step]
            log_path.write_text("".join(ln + "\n" for ln in kept))
    elif accelerator.is_main_process and log_path.exists():
        log_path.unlink()
    if accelerator.is_main_process:
        _write_json(args_path, vars(args))

    def save_checkpoint() -> None:
        folder = ckpt_root / f"step_{state.step:06d}"
        accelerator.save_state(str(folder))
        if accelerator.is_main_process:
            _write_json(folder / "train_args.json", vars(args))
        logger.info("checkpoint: %s", folder)

    # ---- train
    device = accelerator.device
    tokens_per_step = args.batch_size * args.seq_len
    distributed = str(accelerator.distributed_type).split(".")[-1]
    t_train = time.perf_counter()
    losses = []
    while state.step < args.steps:
        ids = stream.local(state.step, rank, world).to(device)
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        accelerator.backward(loss)
        if args.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.grad_clip)
        lr = sched.get_last_lr()[0]
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        mean_loss = accelerator.reduce(loss.detach().float(), reduction="mean").item()  # also syncs the device
        dt = time.perf_counter() - t0
        state.step += 1
        losses.append(mean_loss)
        record = {
            "step": state.step,
            "loss": mean_loss,
            "lr": lr,
            "step_time_s": dt,
            "tokens_per_s": tokens_per_step / dt,
            "world_size": world,
            "distributed_type": distributed,
        }
        if accelerator.is_main_process:
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if state.step % args.log_every == 0 or state.step == args.steps:
                logger.info(
                    "step %d/%d  loss %.4f  lr %.2e  %.0f tokens/s (%.0f per process)",
                    state.step,
                    args.steps,
                    mean_loss,
                    lr,
                    record["tokens_per_s"],
                    record["tokens_per_s"] / world,
                )
        if args.save_every and state.step % args.save_every == 0 and state.step < args.steps:
            save_checkpoint()
    train_time = time.perf_counter() - t_train
    save_checkpoint()
    cache_built = packed_cache_built(accelerator.unwrap_model(model))

    # ---- export packed and check the reload
    summary = {
        "steps": state.step,
        "world_size": world,
        "distributed_type": distributed,
        "final_loss": losses[-1] if losses else None,
        "train_time_s": train_time,
        "parameters": n_params,
        "packed_cache_built_during_training": cache_built,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
    }
    if not args.no_export:
        accelerator.wait_for_everyone()
        sharded = accelerator.distributed_type == DistributedType.FSDP
        full = accelerator.get_state_dict(model) if sharded else None  # every rank takes part in the gather
        if accelerator.is_main_process:
            packed_dir = out / "packed"
            # keep_fp32_wrapper=False: the comparison runs without the mixed-precision autocast that
            # accelerate wraps around forward, in the trained model's own dtype on both sides.
            unwrapped = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
            trained = export_packed(unwrapped, packed_dir, state_dict=full, device=device).to(device)
            if tokenizer is not None:
                tokenizer.save_pretrained(packed_dir)
            dtype = next(trained.parameters()).dtype
            reloaded = Auto158ModelForCausalLM.from_pretrained(packed_dir, dtype=dtype).to(device).eval()
            probe = stream.global_batch(10**9)[:2].to(device)
            with torch.no_grad():
                a, b = trained(probe).logits.float(), reloaded(probe).logits.float()
            diff = (a - b).abs().max().item()
            summary.update(
                packed_dir=str(packed_dir),
                packed_bytes=sum(p.stat().st_size for p in packed_dir.glob("*.safetensors")),
                reload_logits_equal=bool(torch.equal(a, b)),
                reload_logits_max_abs_diff=diff,
            )
            logger.info("exported %s; reloaded logits max |diff| %.3g", packed_dir, diff)
            if diff > 1e-4 * max(1.0, a.abs().max().item()):
                _write_json(out / "summary.json", summary)
                raise SystemExit(f"the reloaded packed model's logits differ from the trained model's by {diff}")
        accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_json(out / "summary.json", summary)
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
