# v21: the published bench (bitmat-bench kernels) with the v21 Gluon kernel and rules.
BITMAT_BENCH_GIT_COMMIT=$BENCH_COMMIT OUT=$OUT PYTHON=python3 KERNELS_MAX_SECONDS=400 timeout 580 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/bench.txt 2>&1; tail -5 $OUT/bench.txt
