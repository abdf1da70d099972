# a second process: the issue-3 layers at M = 1 and 16 (cuBLAS's spread), then one-token tiles with 8-byte steps
export BITMAT_BENCH_GIT_COMMIT=fa698d40d4cbbf6a84fb5bf17756a5664205474e
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
timeout 200 python3 -m bitmat_bench kernels --out $OUT/repeat --no-progress --shapes 28672x4096,57344x8192,8192x28672,4096x4096 --batch 1,16 --impls cublas-bf16,bitmat-w158a8,bitmat-w158a16,bitmat-w1a16 > $OUT/repeat.txt 2>&1; tail -2 $OUT/repeat.txt
S=4096x4096,28672x4096,57344x8192,8192x28672,3840x2560,6144x4096
timeout 150 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep7.jsonl --shapes $S --batch 1 --impls A16W158 --sweep decode --sweep-shapes $S --sweep-batch 1 --sweep-modes A16 --decode-block-n 4,8 --decode-block-w-a16 128,256 --decode-warps 1 --decode-stages 3,4 > $OUT/sweep7.txt 2>&1
tail -1 $OUT/sweep7.txt
