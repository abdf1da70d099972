# v16 sweep 4: the committed rules (auto: planes for 2-8 weight-only tokens, one token on tall layers; the 32-row
# A8 tile) against the weight-only kernels they replace (gemm; decode = the one-token GEMV), ternary and binary
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=28672x4096,57344x8192,8192x28672,8192x8192,4096x14336,4096x4096,3840x2560,6144x4096,13824x2560,2560x6912
timeout 400 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep4.jsonl --shapes $S --batch 1,2,4,5,8,9,16 --impls A16W158,A16W1 --decode-max 16 --sweep none > $OUT/sweep4.txt 2>&1
tail -2 $OUT/sweep4.txt
timeout 150 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep4-a8.jsonl --shapes $S --batch 32 --impls A8W158,A8W1 --sweep none > $OUT/sweep4-a8.txt 2>&1
tail -2 $OUT/sweep4-a8.txt
