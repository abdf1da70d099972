# v16 sweep 10: (a) binary A8 tiles at 1024 / 4096 rows on the BitNet-2B layers (below cuBLAS there: 2560x6912
# M=1024 0.79x, 3840x2560 0.98x); (b) ternary A8 at 1024 rows on the same layers; (c) A8 tiles at 16 rows on small
# layers (4096x4096 gained 8.0 -> 7.0 us with 16 x 32 x 256 on 2 warps in sweep 8)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=2560x6912,3840x2560
T=64x128x64x4x3,128x128x64x8x3,128x128x32x4x3,64x64x64x4x3,128x64x64x4x3,64x128x32x4x4,64x256x64x8x3,128x256x32x8x3
timeout 200 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep10a.jsonl --shapes $S --batch 1024 --impls A8W1 --sweep gemm --sweep-format binary --sweep-shapes $S --sweep-batch 1024,4096 --sweep-modes A8 --gemm-tiles $T --split-k 1,2 > $OUT/sweep10a.txt 2>&1
tail -1 $OUT/sweep10a.txt
timeout 100 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep10b.jsonl --shapes $S --batch 256 --impls A8W158 --sweep gemm --sweep-shapes $S --sweep-batch 256,1024 --sweep-modes A8 --gemm-tiles $T --split-k 1,2 > $OUT/sweep10b.txt 2>&1
tail -1 $OUT/sweep10b.txt
S2=4096x4096,3840x2560,2560x6912,6144x4096,4096x14336
T2=16x64x128x4x4,16x32x256x2x3,16x32x128x2x4,16x64x256x4x3,16x32x256x4x3
timeout 120 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep10c.jsonl --shapes $S2 --batch 16 --impls A8W158 --sweep gemm --sweep-shapes $S2 --sweep-batch 4,16 --sweep-modes A8 --gemm-tiles $T2 --split-k 1,2 > $OUT/sweep10c.txt 2>&1
tail -1 $OUT/sweep10c.txt
