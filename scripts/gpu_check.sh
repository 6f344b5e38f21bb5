#!/usr/bin/env bash
# GPU proof: train, resume across process counts and generate on the GPUs of this machine, then write
# benchmarks/gpu_check.json (benchmarks/gpu_check_cpu.json with --device cpu or without a GPU). Options pass through
# to scripts/gpu_check.py (see its docstring or --help): --device --clip --frames --size --steps --nproc --out --work
# The engine's Python: $EDN_ENGINE_PYTHON, else the checkout's .venv, else python3.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${EDN_ENGINE_PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
export EDN_ENGINE_PYTHON=$PY
exec "$PY" "$REPO/scripts/gpu_check.py" "$@"
