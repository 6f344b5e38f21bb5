#!/usr/bin/env bash
# Set up (or reuse) the environments, then run the whole test suite:
#   the engine and add-on tests on Blender 5.0 (.venv), then the add-on tests again on Blender 4.2 LTS and 4.5 LTS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --lts
export EDN_ENGINE_PYTHON="$PWD/.venv/bin/python"
.venv/bin/python -m pytest -q "$@"
if [ $# -eq 0 ]; then
  for v in 42 45; do
    echo "--- add-on tests on Blender ${v:0:1}.${v:1} LTS ---"
    ".venv-bpy$v/bin/python" -m pytest -q -m blender -p no:cacheprovider tests/test_addon_blender.py tests/test_addon_jobs.py
  done
fi
