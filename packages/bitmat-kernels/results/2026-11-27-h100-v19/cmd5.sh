# v19 cmd5 (H100): large-M A8 with a streaming quantizer (a8-stream.py), every variant checked bit for bit; then the
# GPU tests of the A8 paths that the change touches.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
R=packages/bitmat-kernels/results/2026-11-27-h100-v19
timeout 420 python3 $R/a8-stream.py > $OUT/a8-stream.txt 2>&1; tail -2 $OUT/a8-stream.txt
pip install -q --no-index --find-links .whl pytest pluggy iniconfig hypothesis sortedcontainers > /dev/null 2>&1
timeout 120 python3 -m pytest -q -p no:cacheprovider packages/bitmat-kernels/tests/test_kernels_gpu.py -k "chunked or cuda_graph or deterministic or real_sizes and 1024" > $OUT/gpu-tests-cmd5.txt 2>&1; tail -2 $OUT/gpu-tests-cmd5.txt
