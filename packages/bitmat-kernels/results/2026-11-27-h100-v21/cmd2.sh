# v21: the Gluon weight-only GEMM's new decode and single activation copy against v20's kernel, same process.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 540 python3 packages/bitmat-kernels/results/2026-11-27-h100-v21/gluon-v21.py > $OUT/gluon-v21.txt 2>&1
grep -c point $OUT/gluon-v21.jsonl; grep -i "error\|Traceback" $OUT/gluon-v21.txt | head -5
