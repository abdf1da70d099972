# v18 cmd4 (H100): ternary A8 at 1024-4096 tokens, three bench runs one after another: the rules (64 x 256 x 64 on 8
# warps), then tiles/a8-128x128x64x4x3.json and tiles/a8-128x256x64x8x3.json installed through
# BITMAT_KERNELS_TUNED_CONFIGS (tune_linear of cmd3 picked them on 28672x4096 / 8192x28672 by 2-5%).
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
export BITMAT_BENCH_GIT_COMMIT=bed845b08d88c871b7bae9e3caef4d2ca6cf0e39
D=packages/bitmat-kernels/results/2026-11-27-h100-v18/tiles
for v in rules a8-128x128x64x4x3 a8-128x256x64x8x3 rules-again; do
  [ ${v%-again} = rules ] && unset BITMAT_KERNELS_TUNED_CONFIGS || export BITMAT_KERNELS_TUNED_CONFIGS=$D/$v.json
  timeout 110 python3 -m bitmat_bench kernels --out /tmp/b-$v --no-progress --shapes 28672x4096,57344x8192,8192x28672,4096x4096 --batch 1024,2048,4096 --impls cublas-bf16,bitmat-w158a8 --max-seconds 90 > /tmp/b-$v.log 2>&1
  tail -1 /tmp/b-$v.log; cp /tmp/b-$v/results.json $OUT/$v.json
done
