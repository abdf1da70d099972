# v14 on an H200: the kernel bench at the last rules (98a2cf4; configs are the H100's, keyed by SM count and shared memory)
export BITMAT_BENCH_GIT_COMMIT=98a2cf42f35fabf9332ec522f18de9e00ba3c25d
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader
OUT=$OUT/k KERNELS_MAX_SECONDS=330 timeout 380 bash packages/bitmat-bench/scripts/gpu_run.sh env kernels > $OUT/bench.txt 2>&1; tail -3 $OUT/bench.txt
