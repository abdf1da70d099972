# v14 session end: the kernel bench at the last rules (every shape)
export BITMAT_BENCH_GIT_COMMIT=3b129fc2f3a60f2f07831aa16a959aed30d54e95
OUT=$OUT/k KERNELS_MAX_SECONDS=330 timeout 380 bash packages/bitmat-bench/scripts/gpu_run.sh env kernels > $OUT/bench.txt 2>&1; tail -3 $OUT/bench.txt
