# v15: GPU suite of bitmat-kernels, then the bench on the layers the 2-warp rule touches (weight-only, M = 1-16), two
# processes
export BITMAT_BENCH_GIT_COMMIT=ac225f4cb9aa1819afc7d9b39cf933348611afc7
timeout 200 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests > $OUT/gpu-tests.txt 2>&1; tail -2 $OUT/gpu-tests.txt
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
for i in 1 2; do
timeout 150 python3 -m bitmat_bench kernels --out $OUT/t-$i --no-progress --shapes 28672x4096,57344x8192,8192x28672 --batch 1,4,8,9,16 --impls cublas-bf16,bitmat-w158a16 > $OUT/t-$i.txt 2>&1; tail -1 $OUT/t-$i.txt
done
