# v20 cmd5 (H100): the full kernel bench at the Gluon weight-only rules (gpu_run.sh kernels, everything but gemlite).
# BITMAT_BENCH_GIT_COMMIT: the literal commit (the device copy's .git is stale).
export BITMAT_BENCH_GIT_COMMIT=${BITMAT_BENCH_GIT_COMMIT:?set it to the literal commit}
OUT=$OUT PYTHON=python3 KERNELS_MAX_SECONDS=400 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/run.txt 2>&1; tail -3 $OUT/run.txt
ls $OUT
