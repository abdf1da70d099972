# v20 sweep 2: Gluon weight-only tiles at 32-1024 tokens on six layers (after cmd2: 64 x 64 x 64 on 4 warps won at 64
# tokens, 128 x 128 x 32 on 8 warps at 256).
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
SWEEP=2 SKIP_CHECK=1 NAME=gluon-sweep2 BATCHES=64,256,32,128,1024,512 SHAPES=28672x4096,57344x8192,8192x28672,4096x4096,6144x4096,2560x6912 timeout 500 python3 packages/bitmat-kernels/results/2026-11-27-h100-v20/gluon-weight-only.py > $OUT/gluon-sweep2.txt 2>&1
tail -3 $OUT/gluon-sweep2.txt
