# v21: which change breaks which Gluon tile (cmd2 found wrong outputs on some tiles with the new decode / 3D copy).
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
timeout 400 python3 packages/bitmat-kernels/results/2026-11-27-h100-v21/diag.py > $OUT/diag.txt 2>&1; tail -3 $OUT/diag.txt
