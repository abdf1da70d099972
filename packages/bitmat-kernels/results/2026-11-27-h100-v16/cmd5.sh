# v16: GPU suite of bitmat-kernels, then the bench of weight-only ternary and binary at 1-16 tokens on the default
# layers (one process)
export BITMAT_BENCH_GIT_COMMIT=156f121a31073339ec2a3cc295ceee9816b9fc5a
timeout 240 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests > $OUT/gpu-tests.txt 2>&1; tail -2 $OUT/gpu-tests.txt
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
timeout 300 python3 -m bitmat_bench kernels --out $OUT/t --no-progress --batch 1,2,4,8,16 --impls cublas-bf16,bitmat-w158a16,bitmat-w1a16 > $OUT/t.txt 2>&1; tail -1 $OUT/t.txt
