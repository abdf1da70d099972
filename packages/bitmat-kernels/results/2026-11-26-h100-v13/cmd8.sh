# binary weight-only GEMM tiles at M = 4-256 (the v12 weight-only rules were swept on ternary only)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=4096x4096,28672x4096,57344x8192,8192x28672,2560x6912
timeout 540 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep8.jsonl --shapes $S --batch 4,16,64,256 --impls A16W1,A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 4,16,64,256 --sweep-modes A16 --sweep-format binary > $OUT/sweep8.txt 2>&1
tail -2 $OUT/sweep8.txt
