#!/usr/bin/env bash
# QAT on two GPUs (issue 8): the same 1.58-bit training run on 1 GPU, with DDP on 2 GPUs and with FSDP2 on 2 GPUs,
# an FSDP resume from the mid-run checkpoint, then compare_runs.py. About 5-8 minutes on 2x H100; no network.
#   OUT=/some/folder bash examples/accelerate/gpu_2x.sh
# Results in $OUT: <run>/log.jsonl, <run>/summary.json, <run>.log, compare.txt, compare.json, env.txt.
# Checkpoints and packed exports stay in $WORK (default /tmp/bitmat-qat-2x), not in $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/bitmat-qat-2x-results}
WORK=${WORK:-/tmp/bitmat-qat-2x}
STEPS=${STEPS:-200}
mkdir -p "$OUT" "$WORK"
rm -rf "${WORK:?}"/*
export NCCL_NVLS_ENABLE=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=packages/bitmat-kernels/src:packages/bitmat-nn/src:packages/bitmat-hf/src${PYTHONPATH:+:$PYTHONPATH}
# hidden 1024, 8 layers, GQA 16/4 heads, vocab 32000: ~155M latent parameters; global batch 16 x 1024 tokens.
MODEL=(--data synthetic --vocab-size 32000 --hidden-size 1024 --intermediate-size 2816 --num-layers 8
  --num-heads 16 --num-kv-heads 4 --seq-len 1024 --batch-size 16 --lr 1e-3 --warmup-steps 20
  --steps "$STEPS" --save-every $((STEPS / 2)) --log-every 20)
{ nvidia-smi; python -c "import torch, transformers, accelerate; print(torch.__version__, transformers.__version__, accelerate.__version__)"; } > "$OUT/env.txt" 2>&1 || true

run() {  # name, config, extra args...
  local name=$1 config=$2; shift 2
  echo "== $name ($config)"
  accelerate launch --config_file "examples/accelerate/$config.yaml" examples/accelerate/train_qat.py \
    "${MODEL[@]}" --output-dir "$WORK/$name" "$@" 2>&1 | tee "$OUT/$name.log" | grep -E "step [0-9]+/|exported|rror" || true
  mkdir -p "$OUT/$name"
  cp "$WORK/$name/log.jsonl" "$WORK/$name/summary.json" "$OUT/$name/" 2>/dev/null || true
}

run single single
run ddp ddp
run fsdp fsdp
# Resume under FSDP: a fresh folder, the FSDP run's mid-run (sharded) checkpoint, the same remaining steps.
run fsdp_resumed fsdp --no-export --resume "$WORK/fsdp/checkpoints/step_$(printf %06d $((STEPS / 2)))"

python examples/accelerate/compare_runs.py "$OUT"/single/log.jsonl "$OUT"/ddp/log.jsonl "$OUT"/fsdp/log.jsonl \
  --skip 10 --json "$OUT/compare.json" | tee "$OUT/compare.txt"
echo "== FSDP resumed vs uninterrupted (steps after the checkpoint)" | tee -a "$OUT/compare.txt"
python examples/accelerate/compare_runs.py "$OUT"/fsdp/log.jsonl "$OUT"/fsdp_resumed/log.jsonl \
  --skip 10 --json "$OUT/compare_resume.json" | tee -a "$OUT/compare.txt"
