# v16: GPU suite of bitmat-kernels at the small-layer A8 rule, then the bench of A8 and weight-only ternary at 1, 4
# and 16 tokens on the small and mid layers (one process)
export BITMAT_BENCH_GIT_COMMIT=2bbf972b2a76e1850483b174b880d30adbcd25a3
timeout 240 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests > /dev/null 2>&1; tail -2 $OUT/gpu_tests.txt
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
timeout 200 python3 -m bitmat_bench kernels --out $OUT/t --no-progress --shapes 4096x4096,3840x2560,2560x6912,6144x4096,4096x14336,13824x2560 --batch 1,4,16 --impls cublas-bf16,bitmat-w158a8,bitmat-w158a16 > /tmp/t.txt 2>&1; tail -1 /tmp/t.txt
