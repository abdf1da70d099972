# v17: weight-only repeat on the issue-3 layers at 1-1024 tokens (128 / 512 too: the new mid-M rules), one process;
# then the fixed inductor test
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
export BITMAT_BENCH_GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
python3 -m bitmat_bench kernels --out $OUT/w --no-progress --shapes 28672x4096,57344x8192,8192x28672,4096x4096 --batch 1,4,16,64,128,256,512,1024 --impls cublas-bf16,bitmat-w158a16,bitmat-w1a16 --max-seconds 300 > $OUT/w.log 2>&1; tail -2 $OUT/w.log
OUT=$OUT PYTHON=python3 timeout 200 bash tools/gpu_tests.sh packages/bitmat-kernels/tests/test_kernels_gpu.py -k "inductor or graph" > /dev/null 2>&1; tail -2 $OUT/gpu_tests.txt
