# v17: the published run at the new weight-only rules: every shape and batch of DESIGN §6, every implementation but
# gemlite (bitmat-tl from .whl), one process, packed into one tgz
export BITMAT_BENCH_GIT_COMMIT=863a43421d24ddedcb2f5ca18c35aa5c6f9b8dcf
OUT=$OUT PYTHON=python3 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/run.txt 2>&1; tail -3 $OUT/run.txt; ls $OUT
