# v17 sweep 9 (H200): the old and new weight-only mid-M tiles side by side, ternary, 128-512 tokens, four layers
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,6144x4096
T=128x128x64x8x3,128x128x32x8x4,64x256x64x8x3,64x64x64x4x3
timeout 400 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep9-h200.jsonl --shapes $S --batch 128,256,512 --impls A16W158 --dequant --sweep gemm --sweep-shapes $S --sweep-batch 128,256,512 --sweep-modes A16 --gemm-tiles $T --split-k 1,2 > $OUT/sweep9-h200.txt 2>&1
tail -1 $OUT/sweep9-h200.txt
