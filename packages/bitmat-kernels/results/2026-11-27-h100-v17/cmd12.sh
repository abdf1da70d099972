# v17 sweep 12: ternary weight-only tiles at 64 tokens on the small layers (3840x2560 read 0.83x cuBLAS, 2560x6912
# 0.98x), including the 32 x 64 x 64 tile binary took in sweep 10b
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=3840x2560,4096x4096,2560x6912,6144x4096
timeout 200 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep12.jsonl --shapes $S --batch 64 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 64 --sweep-modes A16 --gemm-tiles 32x64x64x4x4,32x64x64x4x3,64x64x64x4x3,32x128x64x4x4,32x64x128x4x4,32x32x128x4x4 --split-k 1,2,4 > $OUT/sweep12.txt 2>&1
tail -1 $OUT/sweep12.txt
