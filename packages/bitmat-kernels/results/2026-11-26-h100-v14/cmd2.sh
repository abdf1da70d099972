# v14 sweep 2: binary weight-only GEMM, byte decode (code_pairs=0) against code pairs (1); ternary on three more layers
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=28672x4096,4096x4096,3840x2560,8192x28672
T=16x64x128x4x4,16x128x64x4x4,16x256x64x8x3,64x64x128x4x1,64x128x128x4x1,64x64x64x4x3,64x128x64x4x3,128x256x32x8x2,128x128x64x8x3,128x128x32x8x3
timeout 330 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep2.jsonl --shapes $S --batch 4,16,64,256 --impls A16W1 --sweep gemm --sweep-shapes $S --sweep-batch 4,16,64,256 --sweep-modes A16 --sweep-format binary --code-pairs 0,1 --gemm-tiles $T --split-k 1,2,4 > $OUT/sweep2.txt 2>&1
tail -1 $OUT/sweep2.txt
S=2560x6912,6144x4096,13824x2560,4096x14336
T=16x64x256x4x3,16x128x64x4x4,16x64x128x4x4,16x128x128x8x3,32x64x64x4x3,64x64x64x4x3,128x128x64x8x3
timeout 220 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep3.jsonl --shapes $S --batch 4,16,64,256 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 4,16,64,256 --sweep-modes A16 --code-pairs 0,1 --gemm-tiles $T --split-k 1,2,4,8 > $OUT/sweep3.txt 2>&1
tail -1 $OUT/sweep3.txt
