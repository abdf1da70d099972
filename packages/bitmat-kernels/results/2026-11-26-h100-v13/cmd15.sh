# session end: full GPU suites, then the kernel bench at the last rules
export BITMAT_BENCH_GIT_COMMIT=16251d68624d0c431f44055e0bbe0bd8b668db74
timeout 200 bash tools/gpu_tests.sh -n 6 > $OUT/gpu-tests.txt 2>&1; tail -3 $OUT/gpu-tests.txt
OUT=$OUT/k KERNELS_MAX_SECONDS=330 timeout 380 bash packages/bitmat-bench/scripts/gpu_run.sh env kernels > $OUT/bench.txt 2>&1; tail -3 $OUT/bench.txt
