# v17 sweep 5: binary weight-only tiles at 128 / 256 tokens (65-128 run the general rules; 129-256 v14's 128 x 128 x 32
# on 3 stages), nine layers, against auto and dequantize + cuBLAS
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,6144x4096,4096x4096,3840x2560,2560x6912,13824x2560,10240x8192
T=128x128x32x8x4,128x128x32x8x3,64x64x64x4x3,64x64x32x4x6,64x128x32x4x4,128x64x32x4x5,64x128x64x4x4
timeout 500 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep5.jsonl --shapes $S --batch 128,256 --impls A16W1 --dequant --sweep gemm --sweep-shapes $S --sweep-batch 128,256 --sweep-modes A16 --sweep-format binary --gemm-tiles $T --split-k 1,2 > $OUT/sweep5.txt 2>&1
tail -1 $OUT/sweep5.txt
