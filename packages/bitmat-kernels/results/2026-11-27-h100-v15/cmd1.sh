# v15 sweep 1: the code-pair GEMM on 1-2 warps a program (Triton lowers tl.dot to mma.sync m16n8k16 below 4 warps on
# Hopper) at 1-16 tokens, weight-only ternary bf16, against the current rules (auto) and cuBLAS in the same process
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=28672x4096,57344x8192,8192x28672,4096x4096
T=16x16x128x1x3,16x32x64x1x3,16x32x128x1x3,16x32x64x1x4,16x64x64x1x3,16x64x128x1x3,16x32x128x2x3,16x64x64x2x3,16x64x128x2x3,16x128x64x2x3,16x128x128x2x3
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv > $OUT/gpu.txt
timeout 560 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep1.jsonl --shapes $S --batch 1,4,16 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 1,4,16 --gemm-one-token --sweep-modes A16 --gemm-tiles $T --split-k 1,2 > $OUT/sweep1.txt 2>&1
tail -3 $OUT/sweep1.txt
