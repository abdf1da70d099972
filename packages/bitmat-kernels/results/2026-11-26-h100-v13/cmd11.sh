# final: full GPU suites, then the kernel bench at the final rules
export BITMAT_BENCH_GIT_COMMIT=e7f4908a5cda459be55b12e6d1c4f7d2666df62d
timeout 200 bash tools/gpu_tests.sh -n 6 > $OUT/gpu-tests.txt 2>&1; tail -3 $OUT/gpu-tests.txt
OUT=$OUT/k KERNELS_MAX_SECONDS=330 timeout 380 bash packages/bitmat-bench/scripts/gpu_run.sh env kernels > $OUT/bench.txt 2>&1; tail -3 $OUT/bench.txt
