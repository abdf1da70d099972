#!/usr/bin/env bash
# Build every package's wheel and sdist into dist/, each on its own (isolated builds), then check
# the sibling pins. Needs `pip install build` (installed on demand).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
"$python" -c 'import build' 2>/dev/null || "$python" -m pip install -q build
mkdir -p dist
for pkg in packages/*/; do
  echo "[build] $pkg" >&2
  "$python" -m build --outdir dist "$pkg"
done
"$python" tools/versions.py check
ls -l dist
