# v15 probe 1: first run of the tensor-core GEMV (mma.sync from registers), correctness on all formats/dtypes on a
# small layer, then ternary bf16 timings on the issue-3 layers (configs ROW_WARPS x STAGES)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
P=packages/bitmat-kernels/results/2026-11-27-h100-v15/mma_probe.py
timeout 120 python3 $P --out $OUT/probe1-check.jsonl --shapes 4096x4096,2560x6912 --batch 1,3,9,16 --fmts ternary,binary --dtypes bf16,fp16 --cfgs 4x1 > $OUT/probe1-check.txt 2>&1; tail -2 $OUT/probe1-check.txt
timeout 400 python3 $P --out $OUT/probe1.jsonl --batch 1,4,16 --cfgs 4x1,4x3,2x1,2x3,8x1,8x3 > $OUT/probe1.txt 2>&1; tail -2 $OUT/probe1.txt
