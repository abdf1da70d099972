# v17 sweep 10: weight-only GEMM tiles at 64 tokens (issue 3 wants >= 3x there; the v16 bench read 2.0x-2.7x on the
# large layers), ternary then binary, six layers, with 32-byte K steps and deeper pipelines (after sweeps 1-5)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,4096x4096,6144x4096,10240x8192
T=64x64x64x4x3,64x64x32x4x6,64x128x32x4x4,64x128x32x8x4,64x256x32x8x4,32x128x64x4x4,64x128x64x4x4,64x64x32x4x4,32x64x64x4x4,128x128x32x8x4,64x128x128x4x1
timeout 270 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep10.jsonl --shapes $S --batch 64 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 64 --sweep-modes A16 --gemm-tiles $T --split-k 1,2 > $OUT/sweep10.txt 2>&1
tail -1 $OUT/sweep10.txt
timeout 250 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep10b.jsonl --shapes $S --batch 64 --impls A16W1 --sweep gemm --sweep-shapes $S --sweep-batch 64 --sweep-modes A16 --sweep-format binary --gemm-tiles $T --split-k 1,2 > $OUT/sweep10b.txt 2>&1
tail -1 $OUT/sweep10b.txt
