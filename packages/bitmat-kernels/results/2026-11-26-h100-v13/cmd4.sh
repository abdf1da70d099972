export PYTHONPATH=$(ls -d packages/*/src|tr '\n' ':')
timeout 150 bash tools/gpu_tests.sh -n 6 packages/bitmat-kernels/tests/test_kernels_gpu.py -k "linear" > $OUT/tests4.txt 2>&1; tail -3 $OUT/tests4.txt
S=4096x4096,6144x4096,28672x4096,4096x14336,10240x8192,57344x8192,8192x28672,2560x6912,3840x2560
timeout 220 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep4.jsonl --shapes $S --batch 1 --impls A16W158 --sweep decode --sweep-shapes $S --sweep-batch 1 --sweep-modes A16 --decode-block-n 4,8,16 --decode-block-w-a16 256,512 --decode-warps 1,2 --decode-stages 3,4 --decode-programs-per-sm 0,8,12,16,24 > $OUT/sweep4.txt 2>&1
tail -1 $OUT/sweep4.txt
S2=28672x4096,57344x8192,8192x28672
timeout 80 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep4b.jsonl --shapes $S2 --batch 1 --impls A16W158 --sweep decode --sweep-shapes $S2 --sweep-batch 1 --sweep-modes A16 --sweep-format binary --decode-block-n 8 --decode-block-w-a16 256 --decode-warps 1 --decode-stages 3 --decode-programs-per-sm 0,12,16 > $OUT/sweep4b.txt 2>&1
tail -1 $OUT/sweep4b.txt
