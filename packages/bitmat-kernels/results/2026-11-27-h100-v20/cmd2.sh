# v20: the Gluon weight-only GEMM with asynchronous wgmmas (gluon_weight_only.py): correctness, then times
# at 4 / 16 / 64 / 256 tokens on the issue-3 layers beside the current path and cuBLAS.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 400 python3 packages/bitmat-kernels/results/2026-11-27-h100-v20/gluon-weight-only.py > $OUT/gluon-weight-only.txt 2>&1
tail -25 $OUT/gluon-weight-only.txt
