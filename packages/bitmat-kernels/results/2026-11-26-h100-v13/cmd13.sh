# weight-only one token: several warps of a program share the activations (warps over rows), 256- and 512-byte steps
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=4096x4096,6144x4096,28672x4096,4096x14336,10240x8192,57344x8192,8192x28672,2560x6912,3840x2560
timeout 300 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep13.jsonl --shapes $S --batch 1 --impls A16W158 --sweep decode --sweep-shapes $S --sweep-batch 1 --sweep-modes A16 --decode-block-n 8,16,32 --decode-block-w-a16 256,512 --decode-warps 1,2,4 --decode-stages 3,4 > $OUT/sweep13.txt 2>&1
tail -1 $OUT/sweep13.txt
