# v20 cmd4 (H100): the Gluon weight-only GEMM as shipped (ops/linear/hopper.py, configs.hopper_weight_only_config):
# the GPU suite of bitmat-kernels, then the full kernel bench (gpu_run.sh kernels, everything but gemlite).
# BITMAT_BENCH_GIT_COMMIT: the literal commit (the device copy's .git is stale).
export BITMAT_BENCH_GIT_COMMIT=${BITMAT_BENCH_GIT_COMMIT:?set it to the literal commit}
OUT=$OUT timeout 230 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests > /dev/null 2>&1
cp $OUT/gpu_tests.txt $OUT/gpu-tests-kernels.txt; tail -4 $OUT/gpu-tests-kernels.txt
OUT=$OUT PYTHON=python3 KERNELS_MAX_SECONDS=300 timeout 340 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/run.txt 2>&1; tail -3 $OUT/run.txt
ls $OUT
