# binary weight-only tiles: the GPU suite's linear tests, then the bench at M = 4-256 on every shape
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":") BITMAT_BENCH_GIT_COMMIT=669c78917fce2a81ae6c31be3e87206795634163
timeout 150 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests/test_kernels_gpu.py -k "linear" > $OUT/tests9.txt 2>&1; tail -2 $OUT/tests9.txt
timeout 300 python3 -m bitmat_bench kernels --out $OUT/binary-wo --no-progress --batch 4,16,64,256 --impls cublas-bf16,bitmat-w1a16,bitmat-w158a16 > $OUT/binary-wo.txt 2>&1; tail -2 $OUT/binary-wo.txt
