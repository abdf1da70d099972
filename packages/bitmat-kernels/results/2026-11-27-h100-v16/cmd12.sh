# v16: the published run on an H200 (asked for with needs_h200): every shape and batch of DESIGN §6, every
# implementation but gemlite (bitmat-tl from .whl), one process, packed into one tgz
export BITMAT_BENCH_GIT_COMMIT=3b67b1771bc83bce40a28bb3c10eb3f09720b3a9
nvidia-smi --query-gpu=name --format=csv,noheader
OUT=$OUT PYTHON=python3 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/run.txt 2>&1; tail -3 $OUT/run.txt; ls $OUT
