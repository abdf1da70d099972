# v21 sweep 4: Gluon tiles at 256 / 512 / 1024 tokens on every bench layer (the package's kernel; cuBLAS and the
# current path, Triton GEMM or dequantize + cuBLAS, in the same process).
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
R=packages/bitmat-kernels/results/2026-11-27-h100-v21
SWEEP=4 SKIP_CHECK=1 VARIANTS=new NAME=sweep4 BATCHES=256,512,1024 SHAPES=4096x4096,6144x4096,3840x2560,2560x6912,13824x2560,4096x14336,8192x8192,10240x8192,28672x4096,8192x28672,57344x8192 timeout 560 python3 $R/gluon-v21.py > $OUT/sweep4.txt 2>&1
grep -c point $OUT/sweep4.jsonl
