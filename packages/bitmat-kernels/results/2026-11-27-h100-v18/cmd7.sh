# v18 cmd7 (H100): the new GPU test of `bitmat tune` (bitmat-hf) and bitmat-nn's tune_kernels test.
OUT=$OUT PYTHON=python3 timeout 220 bash tools/gpu_tests.sh -k "bitmat_tune or tune_kernels" > /dev/null 2>&1; tail -4 $OUT/gpu_tests.txt
