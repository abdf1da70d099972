# v17 check 11: binary weight-only at 64 tokens with the sweep-10b rules (auto) on six layers, and the 32 x 64 x 64
# tile against the old 64 x 64 x 64 on the small layers (3840x2560 was not in sweep 10b)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 200 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/check11.jsonl --shapes 28672x4096,57344x8192,10240x8192,4096x4096,3840x2560,6144x4096 --batch 64 --impls A16W1,A16W158 --sweep gemm --sweep-shapes 4096x4096,3840x2560,6144x4096 --sweep-batch 64 --sweep-modes A16 --sweep-format binary --gemm-tiles 32x64x64x4x4,64x64x64x4x3 --split-k 1,2 > $OUT/check11.txt 2>&1
tail -1 $OUT/check11.txt
