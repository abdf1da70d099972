# v17 sweep 2: around sweep 1's winner (128 x 128 x 32 on 8 warps, 4 stages) for ternary weight-only at 128-512 tokens
# on nine layers, against the current rules (auto) and dequantize + cuBLAS
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,6144x4096,4096x4096,3840x2560,2560x6912,13824x2560,10240x8192
T=128x128x32x8x4,128x128x32x8x5,128x128x32x4x4,128x128x16x8x6,256x128x32x8x4,64x128x32x4x4,64x128x32x4x6,128x64x32x4x5,64x256x32x8x5,64x64x32x4x6
timeout 560 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep2.jsonl --shapes $S --batch 128,256,512 --impls A16W158 --dequant --sweep gemm --sweep-shapes $S --sweep-batch 128,256,512 --sweep-modes A16 --gemm-tiles $T --split-k 1,2 > $OUT/sweep2.txt 2>&1
tail -1 $OUT/sweep2.txt
