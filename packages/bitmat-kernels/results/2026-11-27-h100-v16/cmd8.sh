# v16 sweep 8: A8 GEMM tiles at 4 and 16 rows (A8 at 16 tokens; the planes of 1 and 4 weight-only tokens) on the
# three large layers and two small ones, including 1-2 warp tiles (mma.sync below 4 warps)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=28672x4096,57344x8192,8192x28672,4096x4096,13824x2560
T=16x64x128x4x4,16x128x128x4x3,16x64x256x4x3,16x128x64x4x4,16x64x64x4x4,16x32x128x4x4,16x64x128x2x4,16x32x128x2x4,16x64x128x1x4,16x32x256x2x3,16x64x128x8x4
timeout 400 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep8.jsonl --shapes $S --batch 16 --impls A8W158 --sweep gemm --sweep-shapes $S --sweep-batch 4,16 --sweep-modes A8 --gemm-tiles $T --split-k 1,2 > $OUT/sweep8.txt 2>&1
tail -1 $OUT/sweep8.txt
