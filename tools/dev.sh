#!/usr/bin/env bash
# One entry point for a fresh machine: make a virtual environment, install every package of the
# workspace (editable) with what it needs, then run a verb.
#
#   tools/dev.sh demo      the main job on an embedded default (no network, no GPU needed)
#   tools/dev.sh test      the whole test suite (Triton kernels through the interpreter on a CPU)
#   tools/dev.sh lint      ruff over the workspace
#   tools/dev.sh setup     only install
#
# BITMAT_VENV picks the environment folder (default .venv); BITMAT_TORCH the torch requirement
# (default torch==2.13.0, which pip takes as a CPU build where one lies on disk; on a CUDA machine
# set it to what you want, or to "" to keep the torch already installed).
set -euo pipefail
cd "$(dirname "$0")/.."

verb="${1:-test}"; shift || true
venv="${BITMAT_VENV:-.venv}"
torch_req="${BITMAT_TORCH-torch==2.13.0}"
python="${PYTHON:-python3}"

stamp="$venv/.bitmat-installed"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
if [ ! -f "$stamp" ] || [ -n "$(find packages -name pyproject.toml -newer "$stamp" 2>/dev/null)" ]; then
  echo "[dev] installing into $venv" >&2
  "$py" -m pip install -q --upgrade pip >/dev/null
  if [ -n "$torch_req" ]; then "$py" -m pip install -q "$torch_req"; fi
  "$py" -m pip install -q \
    -e "packages/bitmat-kernels[test]" \
    -e "packages/bitmat-nn[test]" \
    -e "packages/bitmat-hf[test]" \
    -e "packages/bitmat-bench[test]" \
    "ruff==0.17.6" "pytest-xdist>=3" "packaging"
  touch "$stamp"
fi

export PYTHONUNBUFFERED=1
# On a machine without CUDA the Triton kernels run through the interpreter; it must be set before
# triton is imported.
if ! "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  export TRITON_INTERPRET="${TRITON_INTERPRET:-1}"
fi

case "$verb" in
  setup) ;;
  test) exec "$py" -m pytest -n "${BITMAT_TEST_WORKERS:-2}" "$@" ;;
  lint) exec "$venv/bin/ruff" check . "$@" ;;
  demo)
    if "$venv/bin/python" -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("bitmat_hf.cli") else 1)' 2>/dev/null \
       && "$venv/bin/bitmat" demo --help >/dev/null 2>&1; then
      exec "$venv/bin/bitmat" demo "$@"
    fi
    exec "$py" -m bitmat_kernels.demo "$@" ;;
  *) echo "usage: tools/dev.sh {demo|test|lint|setup} [args...]" >&2; exit 2 ;;
esac
