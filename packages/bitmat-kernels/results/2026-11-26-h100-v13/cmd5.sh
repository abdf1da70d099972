export PYTHONPATH=$(ls -d packages/*/src|tr '\n' ':')
timeout 150 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests/test_kernels_gpu.py -k "linear" > $OUT/tests5.txt 2>&1; tail -3 $OUT/tests5.txt
S=4096x4096,6144x4096,28672x4096,4096x14336,10240x8192,57344x8192,8192x28672,2560x6912,3840x2560
timeout 220 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep5.jsonl --shapes $S --batch 1 --impls A16W158 --sweep decode --sweep-shapes $S --sweep-batch 1 --sweep-modes A16 --decode-block-n 4,8 --decode-block-w-a16 256,512 --decode-warps 1,2 --decode-stages 3,4 --decode-max-registers 0,128,144 > $OUT/sweep5.txt 2>&1
tail -1 $OUT/sweep5.txt
S2=4096x4096,28672x4096,57344x8192,8192x28672
timeout 80 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep5b.jsonl --shapes $S2 --batch 1 --impls A16W158 --sweep decode --sweep-shapes $S2 --sweep-batch 1 --sweep-modes A16 --sweep-format binary --decode-block-n 4,8 --decode-block-w-a16 256 --decode-warps 1 --decode-stages 3 --decode-max-registers 0,128,144 > $OUT/sweep5b.txt 2>&1
tail -1 $OUT/sweep5b.txt
