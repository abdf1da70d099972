#!/usr/bin/env bash
# End-to-end generation speed on a CUDA machine (issue 9), from the repository root, nothing from the network:
#
#   bash packages/bitmat-bench/scripts/gpu_model.sh            # ~7-8 min on an H100 (TOTAL_SECONDS=450)
#   TOTAL_SECONDS=300 bash packages/bitmat-bench/scripts/gpu_model.sh
#
# Steps, most important first; each gets what is left of TOTAL_SECONDS (a step that would start too late is
# skipped and logged), each writes its results incrementally (results.jsonl) and a failure never stops the next:
#   0 sanity     tiny Llama on the GPU: BitMat GraphGreedyDecoder (CUDA graph) and model.generate (static cache,
#                compiled) against the eager dynamic-cache generate: valid, finite, same tokens?
#   1 llama-prefill  Llama-3-8B shape, bf16 vs BitMat: prefill 1x2048, in a process of its own (after a compiled
#                    graph-mode step in the same process, BitMat's eager prefill measured 0.74-0.83x instead of 1.17x:
#                    results/nvidia-h100/2026-11-26-model-v9/README.md)
#     llama-graph    Llama-3-8B shape, bf16 vs BitMat: graph decode at batch 1 and 16
#   2 llama-generate Llama-3-8B shape, bf16 vs BitMat: model.generate (transformers' reduce-overhead compile), 1, 16
#   3 bitnet         BitNet-2B shape (transformers BitNetForCausalLM): bf16, BitMat, transformers' own BitLinear;
#                    prefill in its own process first (bitnet-prefill), then graph decode
#   4 batch4         batch 4 on both shapes (graph mode), if time is left
#   5 llama-unfused  Llama-3-8B shape, BitMat without fused q/k/v and gate/up (graph, batch 1 and 16): attribution
# STEPS="sanity llama-graph" runs only the named steps (default: all), so a run can be split over several calls.
# Output: $OUT (default ./out)/<step>/{results.json,results.jsonl,results.csv,summary.md,headline.md}, <step>.log,
# HEADLINES.md (all headline tables), everything packed into $OUT/bitmat-model-results.tgz.
set -uo pipefail

ROOT="$(pwd)"
if [ ! -d "$ROOT/packages/bitmat-bench" ]; then
  echo "gpu_model.sh: run me from the repository root" >&2
  exit 2
fi
OUT="${OUT:-$ROOT/out}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
TOTAL="${TOTAL_SECONDS:-450}"
START=$SECONDS
pp=""
for src in "$ROOT"/packages/*/src; do pp="${pp:+$pp:}$src"; done
export PYTHONPATH="$pp${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/bitmat-inductor-cache}"
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-/tmp/bitmat-triton-cache}"

left() { echo $(( TOTAL - (SECONDS - START) )); }

step() {  # step NAME MIN_SECONDS CMD...: run with a hard timeout of what is left, never stop the script
  local name="$1" need="$2"; shift 2
  case " ${STEPS:-all} " in
    *" $name "* | " all ") ;;
    *) return 0 ;;
  esac
  local rem; rem=$(left)
  if [ "$rem" -lt "$need" ]; then
    echo "[gpu_model] $name: skipped ($rem s left, needs $need)" | tee -a "$OUT/steps.log"
    return 0
  fi
  echo "[gpu_model] $name: $* (hard limit $rem s)" | tee -a "$OUT/steps.log"
  local t0=$SECONDS
  timeout --signal=TERM --kill-after=20 "$rem" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  echo "[gpu_model] $name: exit $rc after $((SECONDS - t0)) s ($(left) s left)" | tee -a "$OUT/steps.log"
  return 0
}

# A budget for --max-seconds: stop starting measurements early enough to finish the one in flight.
budget() { local b=$(( $(left) - ${1:-90} )); [ "$b" -lt 10 ] && b=10; echo "$b"; }

"$PY" - <<'PYEOF' 2>&1 | tee "$OUT/env.log"
import importlib.metadata as md, json, sys, torch
info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, mem_gb=round(p.total_memory / 2**30, 1))
for d in ("triton", "transformers", "accelerate"):
    try:
        info[d] = md.version(d)
    except Exception:
        info[d] = None
print(json.dumps(info))
PYEOF

# 0: correctness sanity on a tiny model (a few seconds plus one small compile).
step sanity 60 "$PY" - "$OUT/sanity.json" <<'PYEOF'
import json, sys, time, traceback, warnings
warnings.simplefilter("ignore", FutureWarning)
import torch
import bitmat_hf
from transformers import LlamaConfig, LlamaForCausalLM
res = {}
def case(name, fn):
    t0 = time.time()
    try:
        res[name] = {"ok": True, **fn()}
    except Exception as e:
        res[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:800], "trace": traceback.format_exc()[-2000:]}
    res[name]["s"] = round(time.time() - t0, 1)
    print(name, json.dumps(res[name])[:600], flush=True)
    json.dump(res, open(sys.argv[1], "w"), indent=1)
dev = "cuda"
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, eos_token_id=None, pad_token_id=0)
model = LlamaForCausalLM(cfg).to(dev, torch.bfloat16).eval()
model.generation_config.eos_token_id = None
model = bitmat_hf.convert_hf_model(model, show_progress=False)
bitmat_hf.pack_and_drop_latent(model, show_progress=False)
ids = torch.randint(3, 512, (2, 8), device=dev)
kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False)
with torch.no_grad():
    ref = model.generate(ids, cache_implementation="dynamic", disable_compile=True, **kw)
def same(t):
    return {"valid": bool(((t >= 0) & (t < 512)).all()), "agree_with_eager": float((t == ref).float().mean()),
            "tokens": t[0, 8:16].tolist()}
def graph(compile):
    dec = bitmat_hf.GraphGreedyDecoder(model, max_cache_len=32, compile=compile)
    t = dec.generate(ids, max_new_tokens=16)
    t2 = dec.generate(ids, max_new_tokens=16)
    out = {**same(t), "repeat_equal": bool(torch.equal(t, t2)), **{k: dec.stats[k] for k in ("method", "note")}}
    dec.close()
    return out
case("graph_none", lambda: graph("none"))
case("graph_regional", lambda: graph("regional"))
import bitmat_nn
bitmat_nn.fuse_projections(model)  # from here on q/k/v and gate/up share one matmul (as prepare_for_fast_generation does)
case("graph_full_fused", lambda: graph("full"))
def gen():
    bitmat_hf.prepare_for_fast_generation(model, max_cache_len=32)
    with torch.no_grad():
        t = model.generate(ids, **kw)
        t = model.generate(ids, **kw)
    return same(t)
case("generate_static_compiled", gen)
with torch.no_grad():
    logits = model(ids).logits
case("finite_logits", lambda: {"finite": bool(torch.isfinite(logits.float()).all())})
PYEOF

M="$PY -m bitmat_bench model --no-progress"
step llama-prefill 60 $M --out "$OUT/llama-prefill" --model llama3-8b --impls bf16,bitmat --modes prefill \
  --max-seconds "$(budget 200)"
step llama-graph 120 $M --out "$OUT/llama-graph" --model llama3-8b --impls bf16,bitmat --modes graph \
  --batch 1,16 --max-seconds "$(budget 150)"
step llama-generate 150 $M --out "$OUT/llama-generate" --model llama3-8b --impls bf16,bitmat --modes generate \
  --generate-batch 1,16 --max-seconds "$(budget 150)"
step bitnet-prefill 40 $M --out "$OUT/bitnet-prefill" --model bitnet-2b --arch auto --impls bf16,bitmat,hf-bitnet \
  --modes prefill --max-seconds "$(budget 80)"
step bitnet 60 $M --out "$OUT/bitnet" --model bitnet-2b --arch auto --impls bf16,bitmat,hf-bitnet \
  --modes graph --batch 1,16 --max-seconds "$(budget 60)"
step batch4 60 $M --out "$OUT/batch4" --model llama3-8b,bitnet-2b --impls bf16,bitmat --modes graph --batch 4 \
  --max-seconds "$(budget 40)"
step llama-unfused 120 $M --out "$OUT/llama-unfused" --model llama3-8b --impls bitmat-unfused --modes graph \
  --batch 1,16 --max-seconds "$(budget 60)"

{
  for d in "$OUT"/*/; do
    [ -f "$d/headline.md" ] && { echo "## $(basename "$d")"; cat "$d/headline.md"; echo; }
  done
} >"$OUT/HEADLINES.md"
cat "$OUT/HEADLINES.md"
tar czf /tmp/bitmat-model-results.tgz -C "$OUT" . && mv /tmp/bitmat-model-results.tgz "$OUT/" \
  && echo "[gpu_model] packed $OUT/bitmat-model-results.tgz"
echo "[gpu_model] done after $((SECONDS - START)) s"
exit 0
