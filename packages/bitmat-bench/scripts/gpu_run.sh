#!/usr/bin/env bash
# bitmat-bench on a CUDA machine, from the repository root, with nothing from the network:
#
#   bash packages/bitmat-bench/scripts/gpu_run.sh [VERB...]
#
# VERB: env | roofline | kernels | gemlite | full | quick | layers | model | all (default: env kernels).
#   kernels = every shape and batch, every implementation but gemlite (~5 min on an H100)
#   gemlite = cuBLAS + gemlite on GEMLITE_SHAPES (llama3-8b,bitnet-2b) x GEMLITE_BATCH (1,16,64,256):
#             its autotuning costs ~8 s per (shape, M) on a fresh machine; run llama-70b in another call
#   full    = the plain `bitmat-bench kernels` (everything; ~25 min, over one device call's limit)
#   quick   = kernels on 2 shapes x 4 batches (a 1-2 minute smoke run)
#   all     = env kernels layers model
# Merge the folders of several calls into one result on any machine:
#   bitmat-bench report out1/kernels out2/gemlite out3/gemlite --out packages/bitmat-bench/results/<gpu>/<date>
# Output goes under $OUT (default ./out): $OUT/<verb>/results.json, results.csv, summary.md, *.png,
# plus $OUT/<verb>.log, all packed into $OUT/bitmat-bench-results.tgz at the end (PACK=0: no archive;
# KEEP_FILES=1: keep the folders beside it). Extra arguments for the kernels verb: BENCH_ARGS="--shapes llama3-8b --batch 1,16".
# Wheels of peers (gemlite, bitmat-tl, ...) found under .whl/ or packages/bitmat-bench/.whl/ are installed
# with --no-index --no-deps into a private folder; the workspace's packages/*/src go on PYTHONPATH.
set -uo pipefail

ROOT="$(pwd)"
if [ ! -d "$ROOT/packages/bitmat-bench" ]; then
  echo "gpu_run.sh: run me from the repository root (packages/bitmat-bench not found in $ROOT)" >&2
  exit 2
fi
OUT="${OUT:-$ROOT/out}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
SITE="${BITMAT_BENCH_SITE:-/tmp/bitmat-bench-site}"

shopt -s nullglob
wheels=( "$ROOT"/.whl/*.whl "$ROOT"/packages/bitmat-bench/.whl/*.whl )
shopt -u nullglob
if [ "${#wheels[@]}" -gt 0 ]; then
  echo "[gpu_run] installing wheels into $SITE (no index, no deps; one at a time, so one bad wheel spoils nothing)"
  declare -A seen=()
  for whl in "${wheels[@]}"; do
    base="$(basename "$whl")"
    [ -n "${seen[$base]:-}" ] && continue
    seen[$base]=1
    if "$PY" -m pip install -q --no-index --no-deps --target "$SITE" "$whl" >/dev/null 2>&1; then
      echo "[gpu_run]   installed $base"
    else
      echo "[gpu_run]   skipped $base (not installable here)"
    fi
  done
fi

pp=""
for src in "$ROOT"/packages/*/src; do pp="${pp:+$pp:}$src"; done
# Our packages first (bitmat-hf's `bitmat` alias must win over bitmat-tl's `bitmat`), then the wheels.
export PYTHONPATH="$pp${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false

verbs=( "$@" )
[ "${#verbs[@]}" -eq 0 ] && verbs=( env kernels )
if [ "${verbs[0]}" = "all" ]; then verbs=( env kernels layers model ); fi

status=0
run() {  # run NAME CMD...: tee the log, keep going on failure
  local name="$1"; shift
  echo "[gpu_run] $name: $*"
  local t0=$SECONDS
  "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "[gpu_run] $name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -ne 0 ] && status=$rc
  return 0
}

for verb in "${verbs[@]}"; do
  case "$verb" in
    env)
      run env "$PY" - <<'PYEOF'
import importlib, importlib.metadata as md, json, sys
import torch
info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, sm=p.multi_processor_count, mem_gb=round(p.total_memory / 2**30, 1),
                l2_mb=round(getattr(p, "L2_cache_size", 0) / 2**20, 1))
for d in ("triton", "transformers", "gemlite", "bitmat-tl", "tqdm", "matplotlib", "numpy", "accelerate"):
    try:
        info[d] = md.version(d)
    except Exception:
        info[d] = None
for m in ("bitmat_kernels", "bitmat_nn", "bitmat_hf", "bitmat_bench"):
    try:
        info[m] = getattr(importlib.import_module(m), "__version__", "?")
    except Exception as e:
        info[m] = f"import failed: {type(e).__name__}: {e}"
print(json.dumps(info, indent=1))
PYEOF
      ;;
    roofline) run roofline "$PY" -m bitmat_bench roofline --out "$OUT/roofline" ;;
    kernels)
      # Everything but gemlite, whose autotuning on a fresh machine costs ~8 s per (shape, M): ~5 min.
      # shellcheck disable=SC2086
      run kernels "$PY" -m bitmat_bench kernels --out "$OUT/kernels" --impls all,-gemlite \
        --max-seconds "${KERNELS_MAX_SECONDS:-500}" ${BENCH_ARGS:-} ;;
    gemlite)
      # gemlite (and cuBLAS, for the ratios) on a subset: GEMLITE_SHAPES / GEMLITE_BATCH override.
      # shellcheck disable=SC2086
      run gemlite "$PY" -m bitmat_bench kernels --out "$OUT/gemlite" --impls cublas-bf16,gemlite \
        --shapes "${GEMLITE_SHAPES:-llama3-8b,bitnet-2b}" --batch "${GEMLITE_BATCH:-1,16,64,256}" \
        --max-seconds "${GEMLITE_MAX_SECONDS:-500}" ${BENCH_ARGS:-} ;;
    full)
      # The plain default command: every implementation, shape and batch (gemlite makes it ~25 min).
      # shellcheck disable=SC2086
      run full "$PY" -m bitmat_bench kernels --out "$OUT/full" ${BENCH_ARGS:-} ;;
    quick)
      run quick "$PY" -m bitmat_bench kernels --out "$OUT/quick" --shapes 4096x4096,57344x8192 \
        --batch 1,16,256,4096 ${BENCH_ARGS:-} ;;
    layers) run layers "$PY" -m bitmat_bench layers --out "$OUT/layers" ${LAYERS_ARGS:-} ;;
    model) run model "$PY" -m bitmat_bench model --out "$OUT/model" ${MODEL_ARGS:-} ;;
    *) echo "gpu_run.sh: unknown verb $verb (env roofline kernels gemlite full quick layers model all)" >&2; status=2 ;;
  esac
done
# One archive of everything (the device runner brings back only a few files): unpack it with
#   tar xzf bitmat-bench-results.tgz
if [ "${PACK:-1}" = "1" ]; then
  tar czf "/tmp/bitmat-bench-results.tgz" -C "$OUT" . && mv /tmp/bitmat-bench-results.tgz "$OUT/" \
    && echo "[gpu_run] packed $OUT/bitmat-bench-results.tgz"
  if [ "${KEEP_FILES:-0}" != "1" ]; then
    find "$OUT" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
  fi
fi
exit $status
