# v18 cmd8 (H100, the session's last device minutes): weight-only ternary at 256 tokens on the mid and small layers
# (0.58x-0.87x cuBLAS in the published run), where two byte-decode programs an SM could change the wave count:
# 128 x 128 x 32 on 3-4 stages, 64 x 64 and 64 x 128 tiles, both decodes, split 1-2.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=10240x8192,8192x8192,6144x4096,4096x4096,13824x2560,3840x2560,2560x6912,4096x14336
T=128x128x32x8x4,128x128x32x8x3,64x64x64x4x3,64x128x64x4x3
timeout 120 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep8.jsonl --shapes $S --batch 256 --impls A16W158 --dequant --sweep gemm --sweep-shapes $S --sweep-batch 256 --sweep-modes A16 --gemm-tiles $T --code-pairs 0,1 --split-k 1,2 > $OUT/sweep8.txt 2>&1
tail -1 $OUT/sweep8.txt
