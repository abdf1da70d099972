# v16 sweep 6: (a1) the ternary 32-row A8 tile split or not on 10240x8192 (160 tiles: 1.2 waves unsplit; the bench
# of cmd5 read 37 us at 8 weight-only tokens); (a2) binary A8 tiles at 32 rows on six layers; (b) binary weight-only
# planes at 9 and 16 tokens on small layers (3840x2560 M=16 read 0.98x cuBLAS in cmd5)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
timeout 90 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep6a1.jsonl --shapes 10240x8192 --batch 32 --impls A8W158 --sweep gemm --sweep-shapes 10240x8192 --sweep-batch 32 --sweep-modes A8 --gemm-tiles 32x64x128x4x4,32x64x256x4x3,16x64x128x4x4 --split-k 1,2,4 > $OUT/sweep6a1.txt 2>&1
tail -1 $OUT/sweep6a1.txt
S=28672x4096,10240x8192,8192x8192,6144x4096,4096x4096,3840x2560
timeout 200 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep6a2.jsonl --shapes $S --batch 32 --impls A8W1 --sweep gemm --sweep-format binary --sweep-shapes $S --sweep-batch 32 --sweep-modes A8 --gemm-tiles 32x64x64x4x4,32x64x128x4x4,32x128x64x4x4,16x64x128x4x4,32x64x64x4x3 --split-k 1,2 > $OUT/sweep6a2.txt 2>&1
tail -1 $OUT/sweep6a2.txt
timeout 100 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep6b.jsonl --shapes 3840x2560,4096x4096,2560x6912,6144x4096 --batch 9,16 --impls A16W1,A16W158 --sweep none --extra-paths planes > $OUT/sweep6b.txt 2>&1
tail -1 $OUT/sweep6b.txt
