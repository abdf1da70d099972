# v15 probe 3: the tensor-core GEMV with each step's weights loaded one step ahead in registers
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
P=packages/bitmat-kernels/results/2026-11-27-h100-v15/mma_probe.py
timeout 100 python3 $P --out $OUT/probe3-check.jsonl --shapes 4096x4096,2560x6912 --batch 1,9,16 --fmts ternary,binary --dtypes bf16,fp16 --cfgs 4x1x2 > $OUT/probe3-check.txt 2>&1; tail -1 $OUT/probe3-check.txt
timeout 300 python3 $P --out $OUT/probe3.jsonl --shapes 28672x4096,57344x8192,4096x4096 --batch 1,4,16 --cfgs 4x1x1,4x1x2,4x1x4,2x1x4,8x1x4,1x1x4,1x1x2 > $OUT/probe3.txt 2>&1; tail -1 $OUT/probe3.txt
