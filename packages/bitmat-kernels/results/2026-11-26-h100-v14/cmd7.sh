# v14 final: GPU suites, then the kernel bench at the last rules
export BITMAT_BENCH_GIT_COMMIT=98a2cf42f35fabf9332ec522f18de9e00ba3c25d
timeout 200 bash tools/gpu_tests.sh -n 6 > $OUT/gpu-tests.txt 2>&1; tail -3 $OUT/gpu-tests.txt
OUT=$OUT/k KERNELS_MAX_SECONDS=330 timeout 380 bash packages/bitmat-bench/scripts/gpu_run.sh env kernels > $OUT/bench.txt 2>&1; tail -3 $OUT/bench.txt
