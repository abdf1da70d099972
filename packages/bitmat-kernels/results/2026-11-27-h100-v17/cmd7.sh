# v17: the GPU suite of bitmat-kernels at the new rules
OUT=$OUT PYTHON=python3 timeout 560 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests > /dev/null 2>&1; tail -3 $OUT/gpu_tests.txt
