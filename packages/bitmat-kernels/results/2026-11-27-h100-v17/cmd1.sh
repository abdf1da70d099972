# v17 sweep 1: ternary weight-only (bf16) GEMM tiles at 256 and 1024 tokens, against dequantize + cuBLAS and the
# current rules, on five layers (the M = 256 / 1024 points are below cuBLAS in the v16 bench)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,6144x4096,4096x4096
T=128x128x64x8x3,64x256x64x8x3,128x256x64x8x3,128x256x32x8x4,256x128x64x8x3,128x128x64x4x4,128x128x32x8x4,64x128x64x4x4,128x64x64x4x4,64x256x32x8x4
timeout 560 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep1.jsonl --shapes $S --batch 256,1024 --impls A16W158 --dequant --sweep gemm --sweep-shapes $S --sweep-batch 256,1024 --sweep-modes A16 --gemm-tiles $T --split-k 1,2 > $OUT/sweep1.txt 2>&1
tail -1 $OUT/sweep1.txt
