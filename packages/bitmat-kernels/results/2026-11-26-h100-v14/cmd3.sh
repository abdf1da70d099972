# v14: GPU suites, then the kernel bench at the code-pair rules
export BITMAT_BENCH_GIT_COMMIT=a2612366a4daa2d32bc707a689917c77eb8dd5f4
timeout 200 bash tools/gpu_tests.sh -n 6 > $OUT/gpu-tests.txt 2>&1; tail -3 $OUT/gpu-tests.txt
OUT=$OUT/k KERNELS_MAX_SECONDS=330 timeout 380 bash packages/bitmat-bench/scripts/gpu_run.sh env kernels > $OUT/bench.txt 2>&1; tail -3 $OUT/bench.txt
