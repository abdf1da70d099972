# v18 cmd5 (H100): bitmat-bench, ternary A8 at 1024-4096 tokens on every bench shape, with the v18 large-M rule
# (128 x 128 x 64 on 4 warps); one process beside cuBLAS.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
export BITMAT_BENCH_GIT_COMMIT=adfa1941f8db6dd76d3b0c7bae23203e9af50cf4
timeout 250 python3 -m bitmat_bench kernels --out $OUT/a8-large-m --no-progress --batch 1024,2048,4096 --impls cublas-bf16,bitmat-w158a8 --max-seconds 220 > $OUT/a8-large-m.log 2>&1; tail -2 $OUT/a8-large-m.log
rm -f $OUT/a8-large-m/*.png
