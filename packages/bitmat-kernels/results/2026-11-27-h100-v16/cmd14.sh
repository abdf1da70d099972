# v16 sweep 14: A8 tiles at 64 rows (the planes of 16 weight-only tokens; A8 at 64 tokens) on the three large layers,
# including 1-2 warp tiles (mma.sync)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=28672x4096,57344x8192,8192x28672
T=64x128x64x4x4,64x64x128x2x3,64x32x128x2x4,32x64x128x2x4,64x64x64x2x4,32x32x256x2x3,64x64x128x4x4,32x128x128x4x3,64x64x256x4x3
timeout 250 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep14.jsonl --shapes $S --batch 64 --impls A8W158 --sweep gemm --sweep-shapes $S --sweep-batch 64 --sweep-modes A8 --gemm-tiles $T --split-k 1,2 > $OUT/sweep14.txt 2>&1
tail -1 $OUT/sweep14.txt
