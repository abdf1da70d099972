# v14 sweep 4: the code-pair GEMM at 4-64 tokens with a register cap of 128 (ncu, cmd5: 180 registers left one
# 8-warp program an SM, 12.5% occupancy, 0.37 instructions issued a cycle) and fewer stages
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=28672x4096,57344x8192,8192x28672,4096x4096,10240x8192
T=16x128x128x8x3,16x128x128x8x2,16x128x64x4x3,16x128x64x4x4,16x64x128x4x3,16x64x128x4x4,16x256x64x8x2,64x64x64x4x3,64x64x64x4x2,64x128x64x4x2
timeout 560 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep4.jsonl --shapes $S --batch 4,16,64 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 4,16,64 --sweep-modes A16 --gemm-tiles $T --split-k 1,2 --gemm-max-registers 0,128 > $OUT/sweep4.txt 2>&1
tail -1 $OUT/sweep4.txt
