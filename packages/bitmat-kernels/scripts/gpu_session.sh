#!/usr/bin/env bash
# One device call: GPU test suite, then the sweep. Run from the repo root on the GPU machine.
set -u
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="$(ls -d packages/*/src | tr '\n' ':')/tmp/site"
export PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.version.cuda)" | tee -a "$OUT/gpu.txt"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout "${TEST_TIMEOUT:-240}" python3 -m pytest -p no:cacheprovider packages/bitmat-kernels/tests/test_kernels_gpu.py -q -x ${PYTEST_ARGS:-} 2>&1 | tail -30 | tee "$OUT/gpu_tests.txt"
fi
timeout "${SWEEP_TIMEOUT:-300}" python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out "$OUT/sweep.jsonl" "$@" 2>&1 | tee "$OUT/sweep.txt" | grep -v "^{" 
