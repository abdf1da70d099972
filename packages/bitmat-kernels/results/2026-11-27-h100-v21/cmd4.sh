# v21: the Gluon kernel with every wgmma register operand retired inside its stage (waits per slice, _hold keeps the
# operand registers live to the wait; no operand in flight across the back edge: v20's kernel had that race, latent),
# the new decode and the single 3D activation copy: checks (diag) and times against v20's kernel, same process.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
R=packages/bitmat-kernels/results/2026-11-27-h100-v21
VARIANTS=v20,new NAME=diag-cmd4 timeout 200 python3 $R/diag.py > $OUT/diag-cmd4.txt 2>&1; tail -1 $OUT/diag-cmd4.txt
VARIANTS=v20,new NAME=gluon-v21-cmd4 timeout 380 python3 $R/gluon-v21.py > $OUT/gluon-v21-cmd4.txt 2>&1
grep -c point $OUT/gluon-v21-cmd4.jsonl
