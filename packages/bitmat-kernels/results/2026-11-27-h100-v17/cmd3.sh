# v17 check 3: the new weight-only rules (auto) against dequantize + cuBLAS, ternary and binary, 128-1024 tokens,
# nine layers; then binary weight-only tiles at 512 / 1024 tokens (its rules send 257+ to the 64 x 256 tile)
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,6144x4096,4096x4096,3840x2560,2560x6912,13824x2560,10240x8192
timeout 250 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/check3.jsonl --shapes $S --batch 128,256,512,1024 --impls A16W158,A16W1 --dequant --sweep none > $OUT/check3.txt 2>&1
tail -1 $OUT/check3.txt
T=64x256x64x8x3,128x128x32x8x4,128x128x64x8x3,64x128x64x4x3
timeout 280 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep4.jsonl --shapes $S --batch 512,1024 --impls A16W1 --dequant --sweep gemm --sweep-shapes $S --sweep-batch 512,1024 --sweep-modes A16 --sweep-format binary --gemm-tiles $T --split-k 1 > $OUT/sweep4.txt 2>&1
tail -1 $OUT/sweep4.txt
