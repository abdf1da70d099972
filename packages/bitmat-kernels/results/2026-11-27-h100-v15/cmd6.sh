# v15: the committed rule (2-warp tiles at 16 tokens only) at M = 8, 9, 16 on the large layers
export BITMAT_BENCH_GIT_COMMIT=15dbaadac9b0a9fe782ba0e0b356bfc0fabe37ce
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
timeout 150 python3 -m bitmat_bench kernels --out $OUT/t --no-progress --shapes 28672x4096,57344x8192,8192x28672 --batch 8,9,16 --impls cublas-bf16,bitmat-w158a16 > $OUT/t.txt 2>&1; tail -1 $OUT/t.txt
