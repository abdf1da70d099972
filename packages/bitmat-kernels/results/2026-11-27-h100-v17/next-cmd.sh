# Not run yet (written after this session's GPU time ran out; NOTES.md v17, last paragraph): weight-only 128 x 128
# x 32 tiles with the byte decode on 2-3 stages (two programs an SM by the resource report) against the code-pair
# tile of the v17 rules, 128-1024 tokens, five layers; then the GPU suite with the new tuning tests.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,6144x4096,4096x4096
T=128x128x32x8x4,128x128x32x8x3,128x128x32x8x2,128x128x64x8x2
timeout 300 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/next-sweep.jsonl --shapes $S --batch 128,256,512,1024 --impls A16W158 --dequant --sweep gemm --sweep-shapes $S --sweep-batch 128,256,512,1024 --sweep-modes A16 --gemm-tiles $T --code-pairs 0,1 --split-k 1 > $OUT/next-sweep.txt 2>&1
tail -1 $OUT/next-sweep.txt
OUT=$OUT PYTHON=python3 timeout 280 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests packages/bitmat-nn/tests/test_nn_gpu.py -k "tune or inductor" > /dev/null 2>&1; tail -3 $OUT/gpu_tests.txt
