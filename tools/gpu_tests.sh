#!/usr/bin/env bash
# The GPU suite of every package (pytest marker `gpu`), on a CUDA machine without network: from the
# repository root, with the workspace's packages on PYTHONPATH and test tools from wheels under .whl/
# (pytest, pluggy, iniconfig, hypothesis, sortedcontainers; fetch them with `pip download` elsewhere).
#
#   tools/gpu_tests.sh [pytest args...]     # results also in $OUT/gpu_tests.txt when OUT is set
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/bitmat-test-site \
    .whl/pytest*.whl .whl/execnet*.whl .whl/pluggy*.whl .whl/iniconfig*.whl .whl/hypothesis*.whl .whl/sortedcontainers*.whl 2>/dev/null
fi
PYTHONPATH="$(ls -d packages/*/src | tr '\n' ':')/tmp/bitmat-test-site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH PYTHONUNBUFFERED=1
log="${OUT:-/tmp}/gpu_tests.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$log"
"$PY" -m pytest -p no:cacheprovider -m gpu -q -rfE packages/*/tests "$@" 2>&1 | tee -a "$log"
exit "${PIPESTATUS[0]}"
