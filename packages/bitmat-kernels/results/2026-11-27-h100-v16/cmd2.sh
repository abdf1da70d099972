# v16 sweep 2: (a) path planes again after the plane quantizer's fix (4096-value blocks: a whole 28672-value row in
# registers spilled), on the long-row layers and two controls; (b) A8 GEMM tiles at 32 and 64 rows (the planes of
# 8 and 16 tokens)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=28672x4096,57344x8192,8192x28672,13824x2560,2560x6912,8192x8192,4096x14336
timeout 250 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep2a.jsonl --shapes $S --batch 1,2,4,8,16 --impls A16W158,A16W1 --sweep none --extra-paths planes > $OUT/sweep2a.txt 2>&1
tail -2 $OUT/sweep2a.txt
T=16x64x128x4x4,32x64x128x4x4,32x128x64x4x4,32x64x64x4x3,16x128x64x4x4,64x128x64x4x4,64x64x64x4x3,32x64x256x4x3
S2=28672x4096,57344x8192,8192x8192,6144x4096,4096x4096,13824x2560
timeout 320 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep2b.jsonl --shapes 4096x4096 --batch 32 --impls A8W158 --sweep gemm --sweep-shapes $S2 --sweep-batch 32,64 --sweep-modes A8 --gemm-tiles $T --split-k 1,2 > $OUT/sweep2b.txt 2>&1
tail -2 $OUT/sweep2b.txt
