# ternary weight-only at M = 4 / 16 on the small layers: 16 x 128 tiles with split-K (what binary's sweep preferred)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=3840x2560,4096x4096,2560x6912,6144x4096,13824x2560,4096x14336
timeout 300 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep14.jsonl --shapes $S --batch 4,16 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 4,16 --sweep-modes A16 --gemm-tiles 16x128x128x4x4,16x128x64x4x4,16x64x256x4x3,16x64x128x4x4,16x128x128x4x3 --split-k 1,2,4,8 > $OUT/sweep14.txt 2>&1
tail -1 $OUT/sweep14.txt
