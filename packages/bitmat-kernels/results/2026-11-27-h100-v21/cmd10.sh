# v21: the GPU suite of bitmat-kernels with the final rules, then the published bench.
OUT=$OUT timeout 300 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests > /dev/null 2>&1; tail -3 $OUT/gpu_tests.txt
BITMAT_BENCH_GIT_COMMIT=$BENCH_COMMIT OUT=$OUT PYTHON=python3 KERNELS_MAX_SECONDS=400 timeout 290 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/bench.txt 2>&1; tail -3 $OUT/bench.txt
