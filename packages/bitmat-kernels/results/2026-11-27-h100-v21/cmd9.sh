# v21 sweep 5: the Gluon 128 x 128 / 128 x 256 tiles beyond 1024 tokens (2048 / 4096 / 8192) on every bench layer,
# against dequantize + cuBLAS (the current path there) and cuBLAS.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
R=packages/bitmat-kernels/results/2026-11-27-h100-v21
SWEEP=5 SKIP_CHECK=1 VARIANTS=new NAME=sweep5 BATCHES=2048,4096,8192 SHAPES=4096x4096,6144x4096,3840x2560,2560x6912,13824x2560,4096x14336,8192x8192,10240x8192,28672x4096,8192x28672,57344x8192 timeout 560 python3 $R/gluon-v21.py > $OUT/sweep5.txt 2>&1
grep -c point $OUT/sweep5.jsonl; tail -2 $OUT/sweep5.txt
