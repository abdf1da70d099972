# re-measure one-token points of the final run (57344x8192 weight-only read 106 us there, p90 175, against 68-69 before), twice, two processes
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":") BITMAT_BENCH_GIT_COMMIT=e58e85a99674ad3f8f2efe51d30da3a5f0289647
for i in 1 2; do
timeout 120 python3 -m bitmat_bench kernels --out $OUT/m1-$i --no-progress --shapes 28672x4096,57344x8192,8192x28672 --batch 1,4 --impls cublas-bf16,bitmat-w158a8,bitmat-w158a16,bitmat-w1a16 > $OUT/m1-$i.txt 2>&1; tail -1 $OUT/m1-$i.txt
done
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv
