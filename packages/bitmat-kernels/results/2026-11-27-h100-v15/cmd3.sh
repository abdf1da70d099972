# v15 probe 2: the tensor-core GEMV with 1-4 32-byte chunks a lane group a step (more loads in flight), unmasked loads
# on whole steps (rows / tokens clamped); ROW_WARPS x STAGES x CHUNKS
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
P=packages/bitmat-kernels/results/2026-11-27-h100-v15/mma_probe.py
timeout 100 python3 $P --out $OUT/probe2-check.jsonl --shapes 4096x4096 --batch 1,9,16 --fmts ternary,binary --dtypes bf16,fp16 --cfgs 4x1x2,4x1x4 > $OUT/probe2-check.txt 2>&1; tail -1 $OUT/probe2-check.txt
timeout 450 python3 $P --out $OUT/probe2.jsonl --batch 1,4,16 --cfgs 4x1x1,4x1x2,4x1x4,2x1x2,2x1x4,8x1x2,8x1x4,4x2x2,4x3x4 > $OUT/probe2.txt 2>&1; tail -1 $OUT/probe2.txt
