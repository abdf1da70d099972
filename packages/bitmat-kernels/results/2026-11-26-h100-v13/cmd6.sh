# full GPU suites, then the kernel bench at the committed rule
export BITMAT_BENCH_GIT_COMMIT=54f50424a535cafd0bbd7ac7566627df4ba74e3a
timeout 200 bash tools/gpu_tests.sh -n 6 > $OUT/gpu-tests.txt 2>&1; tail -4 $OUT/gpu-tests.txt
OUT=$OUT/k KERNELS_MAX_SECONDS=330 timeout 380 bash packages/bitmat-bench/scripts/gpu_run.sh env kernels > $OUT/bench.txt 2>&1; tail -3 $OUT/bench.txt
