export PYTHONPATH=$(ls -d packages/*/src|tr '\n' ':')
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 150 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests/test_kernels_gpu.py -k "linear" > $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
S=4096x4096,6144x4096,28672x4096,4096x14336,10240x8192,57344x8192,8192x28672,2560x6912,3840x2560
timeout 330 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep.jsonl --shapes $S --batch 1 --impls A16W158 --sweep decode --sweep-shapes $S --sweep-batch 1 --sweep-modes A16 --decode-block-n 4,8,16 --decode-block-w-a16 256,512,1024,2048 --decode-warps 1,2,4,8 --decode-stages 1 > $OUT/sweep.txt 2>&1
tail -5 $OUT/sweep.txt
