# v16: the published run at the final rules: every shape and batch of DESIGN §6, every implementation but gemlite
# (bitmat-tl from .whl), one process, packed into one tgz
export BITMAT_BENCH_GIT_COMMIT=8c30bbee72a3569691e7277ae157ad8178b1aab8
OUT=$OUT PYTHON=python3 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/run.txt 2>&1; tail -3 $OUT/run.txt; ls $OUT
