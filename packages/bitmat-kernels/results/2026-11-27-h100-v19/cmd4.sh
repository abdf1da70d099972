# v19 cmd4 (H200, kind nvidia-h200): the published H200 run at the v19 rules (the H200 table was v16's): every shape
# and batch, every implementation but gemlite, one process; then the chunked-A8 GPU test on this card.
# BITMAT_BENCH_GIT_COMMIT: the literal commit (the device copy's .git is stale).
export BITMAT_BENCH_GIT_COMMIT=${BITMAT_BENCH_GIT_COMMIT:?set it to the literal commit}
OUT=$OUT PYTHON=python3 KERNELS_MAX_SECONDS=420 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/run.txt 2>&1; tail -3 $OUT/run.txt
pip install -q --no-index --find-links .whl pytest pluggy iniconfig hypothesis sortedcontainers > /dev/null 2>&1
PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":") timeout 100 python3 -m pytest -q -p no:cacheprovider packages/bitmat-kernels/tests/test_kernels_gpu.py -k "chunked or deterministic" > $OUT/gpu-tests-cmd4-h200.txt 2>&1; tail -2 $OUT/gpu-tests-cmd4-h200.txt
