# Ran in v19 as results/2026-11-27-h100-v19/cmd1.sh (written after v18's GPU time ran out). Set BITMAT_BENCH_GIT_COMMIT to
# the literal commit first (the device copy's .git is stale).
# (a) A8 at 2-16 tokens: tune_linear (cmd3, graph-timed) picked 16 x 64 x 128 on 2 warps, 3 stages over the rules'
#     4 warps, 4 stages on 28672x4096 by ~0.3-0.9 us (23.4 against 24.3 at M=16, one graph launch included). A8 M=16
#     there reads 4.70x (target 5x). Bench A/B/A through a tuned-config file, as cmd4.
# (b) binary weight-only at 257-1024 tokens: the byte decode on 3 stages (ternary's v18 rule) was never swept for
#     binary codes.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
export BITMAT_BENCH_GIT_COMMIT=${BITMAT_BENCH_GIT_COMMIT:?set it to the literal commit}
D=packages/bitmat-kernels/results/2026-11-27-h100-v18/tiles
for v in rules a8-16x64x128x2x3 rules-again; do
  [ ${v%-again} = rules ] && unset BITMAT_KERNELS_TUNED_CONFIGS || export BITMAT_KERNELS_TUNED_CONFIGS=$D/$v.json
  timeout 100 python3 -m bitmat_bench kernels --out /tmp/b-$v --no-progress --shapes 28672x4096,57344x8192,8192x28672 --batch 2,4,8,16 --impls cublas-bf16,bitmat-w158a8 --max-seconds 80 > /tmp/b-$v.log 2>&1
  tail -1 /tmp/b-$v.log; cp /tmp/b-$v/results.json $OUT/next-$v.json
done
S=28672x4096,57344x8192,8192x28672,6144x4096
T=128x128x32x8x4,128x128x32x8x3
timeout 200 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/next-binary.jsonl --shapes $S --batch 256,512,1024 --impls A16W1 --dequant --sweep gemm --sweep-format binary --sweep-shapes $S --sweep-batch 256,512,1024 --sweep-modes A16 --gemm-tiles $T --code-pairs 0,1 --split-k 1 > $OUT/next-binary.txt 2>&1
tail -1 $OUT/next-binary.txt
