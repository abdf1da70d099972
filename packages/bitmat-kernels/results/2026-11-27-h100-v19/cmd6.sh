# v19 cmd6 (H100): every package's GPU suite at the final kernel code (chunked A8, the quantizer's new M argument).
OUT=$OUT timeout 560 bash tools/gpu_tests.sh -n 6 > /dev/null 2>&1; tail -4 $OUT/gpu_tests.txt
