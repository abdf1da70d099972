# v16 sweep 3: (a) path planes after the plane quantizer's second fix (16 values a thread, no spill; the
# 4096-value blocks of cmd2 re-read x once a digit), 1-16 tokens; (b) A8 GEMM tiles at 32 and 64 rows (the planes
# of 8 and 16 tokens) on six layers
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=28672x4096,57344x8192,8192x28672,8192x8192,4096x14336,4096x4096,3840x2560,6144x4096,13824x2560,2560x6912
timeout 250 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep3a.jsonl --shapes $S --batch 1,2,4,8,16 --impls A16W158 --sweep none --extra-paths planes > $OUT/sweep3a.txt 2>&1
tail -2 $OUT/sweep3a.txt
T=16x64x128x4x4,32x64x128x4x4,32x128x64x4x4,32x64x64x4x3,16x128x64x4x4,64x128x64x4x4,64x64x64x4x3,32x64x256x4x3
S2=28672x4096,57344x8192,8192x8192,6144x4096,13824x2560,8192x28672
timeout 320 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep3b.jsonl --shapes $S2 --batch 32 --impls A8W158 --sweep gemm --sweep-shapes $S2 --sweep-batch 32,64 --sweep-modes A8 --gemm-tiles $T --split-k 1,2 > $OUT/sweep3b.txt 2>&1
tail -2 $OUT/sweep3b.txt
