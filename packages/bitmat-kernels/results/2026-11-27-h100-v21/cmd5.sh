# v21: the GPU suite of every package with the v21 Gluon kernel and rules.
OUT=$OUT timeout 560 bash tools/gpu_tests.sh -n 6 > /dev/null 2>&1; tail -4 $OUT/gpu_tests.txt
