# v17: bitmat-bench on the 64-token rules of sweeps 10b and 12 (and 128 tokens), weight-only, seven layers, one process
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
export BITMAT_BENCH_GIT_COMMIT=0aecce54a3ce06724553fffb04f9076c4995583e
timeout 170 python3 -m bitmat_bench kernels --out $OUT/w64 --no-progress --shapes 28672x4096,57344x8192,10240x8192,4096x4096,3840x2560,6144x4096,2560x6912 --batch 64,128 --impls cublas-bf16,bitmat-w158a16,bitmat-w1a16 --max-seconds 150 > $OUT/w64.log 2>&1; tail -2 $OUT/w64.log
