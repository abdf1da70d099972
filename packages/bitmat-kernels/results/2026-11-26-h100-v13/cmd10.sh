# binary A8 GEMM tiles at large M: 32-byte K steps (256 codes, the ternary default's span) keep 2 CTAs an SM
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=4096x4096,28672x4096,57344x8192,8192x28672,2560x6912
T=64x256x32x8x3,64x256x32x8x4,64x256x64x8x3,128x256x32x8x3,128x256x32x8x4,128x128x32x4x4,128x128x32x8x4,64x128x32x4x4,128x128x64x4x3,64x128x64x4x3
timeout 520 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep10.jsonl --shapes $S --batch 1024,4096 --impls A8W1,A8W158 --sweep gemm --sweep-shapes $S --sweep-batch 1024,4096 --sweep-modes A8 --sweep-format binary --gemm-tiles $T --split-k 1 > $OUT/sweep10.txt 2>&1
tail -2 $OUT/sweep10.txt
