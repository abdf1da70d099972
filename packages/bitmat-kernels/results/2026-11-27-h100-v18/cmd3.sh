# v18 cmd3 (H100): (a) bitmat-bench, weight-only ternary at 256-1024 tokens on the three large layers with the byte
# decode rule of sweep 1; (b) tune_linear's time and picks with CUDA-graph timing; (c) the bitmat-kernels GPU suite.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
export BITMAT_BENCH_GIT_COMMIT=090959c59213ba6dc0427ce5f1dc9516b28abbd0
timeout 120 python3 -m bitmat_bench kernels --out $OUT/w512 --no-progress --shapes 28672x4096,57344x8192,8192x28672 --batch 256,512,1024 --impls cublas-bf16,bitmat-w158a16 --max-seconds 100 > $OUT/w512.log 2>&1; tail -2 $OUT/w512.log
timeout 170 python3 packages/bitmat-kernels/results/2026-11-27-h100-v18/tuning-time.py 28672x4096 8192x28672 > $OUT/tuning-time.txt 2>&1; grep "^==" $OUT/tuning-time.txt
OUT=$OUT PYTHON=python3 timeout 240 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests > /dev/null 2>&1; tail -3 $OUT/gpu_tests.txt
