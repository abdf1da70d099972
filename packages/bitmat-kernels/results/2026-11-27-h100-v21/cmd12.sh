# v21: the GPU suite of every package with binary weight-only on the Gluon GEMM.
OUT=$OUT timeout 400 bash tools/gpu_tests.sh -n 6 > /dev/null 2>&1; tail -4 $OUT/gpu_tests.txt
