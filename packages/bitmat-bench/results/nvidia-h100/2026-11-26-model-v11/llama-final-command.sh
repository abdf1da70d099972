#!/usr/bin/env bash
export BITMAT_BENCH_GIT_COMMIT=2cf11d8a9bf806b8a9193fd28822786a8fbf95c1
export PYTHONPATH=$(ls -d packages/*/src | tr '\n' ':') HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
R=$OUT/r; mkdir -p $R
timeout 420 python3 -m bitmat_bench model --no-progress --out $R/llama-final --model llama3-8b --impls bf16,bitmat \
  --modes prefill,graph --batch 1,4,16 --max-seconds 400 > $R/llama-final.log 2>&1; echo "rc $?"; tail -n 8 $R/llama-final/headline.md
cd $OUT && tar czf results.tgz r && rm -rf r
