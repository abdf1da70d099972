# v14: GPU suite of bitmat-kernels, then the layers the sweep-5/6 rules touch, in the bench (weight-only, M = 4-64)
export BITMAT_BENCH_GIT_COMMIT=77e48ff6f9f12c13b0a1aa67021c22ee09f57464
timeout 170 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests > $OUT/gpu-tests.txt 2>&1; tail -2 $OUT/gpu-tests.txt
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
timeout 200 python3 -m bitmat_bench kernels --out $OUT/t --no-progress --shapes 8192x8192,10240x8192,13824x2560,4096x14336,2560x6912,28672x4096 --batch 4,16,64 --impls cublas-bf16,bitmat-w158a16,bitmat-w1a16 > $OUT/t.txt 2>&1; tail -1 $OUT/t.txt
