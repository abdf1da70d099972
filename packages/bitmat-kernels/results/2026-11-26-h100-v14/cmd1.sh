# v14 sweep 1: weight-only ternary GEMM, byte decode (code_pairs=0) against the code-pair decode (1), M = 1-256
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
S=28672x4096,4096x4096,3840x2560,8192x28672
T=16x64x128x4x4,16x128x128x8x3,16x128x64x4x4,16x64x256x4x3,16x256x64x8x3,64x64x64x4x3,64x128x64x4x3,128x128x64x8x3,64x256x64x8x3
timeout 540 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep1.jsonl --shapes $S --batch 1,4,16,64,256 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 1,4,16,64,256 --sweep-modes A16 --gemm-one-token --code-pairs 0,1 --gemm-tiles $T --split-k 1,2,4 > $OUT/sweep1.txt 2>&1
tail -3 $OUT/sweep1.txt
