# v16 sweep 13 (H200): the weight-only rules' choices against the alternatives on the same card: auto, planes, the
# weight-only GEMV (decode) and GEMM (gemm), ternary, 1 / 4 / 16 tokens, five layers
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 200 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep13-h200.jsonl --shapes 28672x4096,57344x8192,8192x28672,8192x8192,4096x4096 --batch 1,4,16 --impls A16W158 --decode-max 16 --extra-paths planes --sweep none > $OUT/sweep13-h200.txt 2>&1
tail -1 $OUT/sweep13-h200.txt
