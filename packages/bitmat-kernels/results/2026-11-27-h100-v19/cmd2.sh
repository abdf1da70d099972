# v19 cmd2: large-M A8 in chunks, quantizers beside the GEMM before (a8-chunks.py); the split of cmd1 again with
# microsecond precision (cmd1's a8-split.py printed do_bench's milliseconds); the new GPU test.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
R=packages/bitmat-kernels/results/2026-11-27-h100-v19
python3 $R/a8-chunks.py > $OUT/a8-chunks.txt 2>&1; tail -3 $OUT/a8-chunks.txt
python3 $R/a8-split.py > $OUT/a8-split.txt 2>&1; tail -4 $OUT/a8-split.txt
pip install -q --no-index --find-links .whl pytest pluggy iniconfig hypothesis sortedcontainers > /dev/null 2>&1
python3 -m pytest -q -p no:cacheprovider packages/bitmat-kernels/tests/test_kernels_gpu.py -k "chunked or cuda_graph or deterministic" > $OUT/gpu-tests-cmd2.txt 2>&1; tail -3 $OUT/gpu-tests-cmd2.txt
