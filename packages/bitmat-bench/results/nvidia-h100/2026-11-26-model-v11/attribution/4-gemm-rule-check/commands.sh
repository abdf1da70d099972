#!/usr/bin/env bash
export BITMAT_BENCH_GIT_COMMIT=81e694f94167818c165273cd9ef7386f2d6038a9
export PYTHONPATH=$(ls -d packages/*/src | tr '\n' ':') HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
R=$OUT/r; mkdir -p $R
timeout 200 python3 -m bitmat_bench kernels --no-progress --out $R/kernels --shapes llama3-8b --batch 1024,2048,4096,8192 \
  --impls cublas-bf16,bitmat-w158a8 --max-seconds 180 > $R/kernels.log 2>&1; echo "kernels rc $?"
grep -A8 "^### " $R/kernels/summary.md | head -48
timeout 200 python3 -m bitmat_bench model --no-progress --out $R/prefill --model llama3-8b --impls bf16,bitmat \
  --modes prefill --max-seconds 190 > $R/prefill.log 2>&1; echo "prefill rc $?"; tail -n 3 $R/prefill/headline.md
cd $OUT && tar czf results.tgz r && rm -rf r
