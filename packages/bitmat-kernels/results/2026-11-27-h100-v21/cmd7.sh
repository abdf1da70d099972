# v21 sweep 3: Gluon tiles for K-heavy layers at 16 / 64 tokens and small / mid layers at 256 / 512 (the package's
# kernel only; cuBLAS and the current path in the same process).
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
R=packages/bitmat-kernels/results/2026-11-27-h100-v21
SWEEP=3 SKIP_CHECK=1 VARIANTS=new NAME=sweep3 BATCHES=16,64 SHAPES=8192x28672,4096x14336 timeout 200 python3 $R/gluon-v21.py > $OUT/sweep3a.txt 2>&1
SWEEP=3 SKIP_CHECK=1 VARIANTS=new NAME=sweep3b BATCHES=256,512 SHAPES=4096x4096,6144x4096,4096x14336,8192x8192,2560x6912,3840x2560,13824x2560,10240x8192 timeout 330 python3 $R/gluon-v21.py > $OUT/sweep3b.txt 2>&1
grep -c point $OUT/sweep3.jsonl $OUT/sweep3b.jsonl
