#!/usr/bin/env bash
# Set up (or reuse) the environments, then run the whole test suite:
#   the engine and add-on tests on Blender 5.0 (.venv), then the add-on tests again on Blender 4.2 LTS (.venv-bpy42).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --bpy42
export EDN_ENGINE_PYTHON="$PWD/.venv/bin/python"
.venv/bin/python -m pytest -q "$@"
if [ $# -eq 0 ]; then
  echo "--- add-on tests on Blender 4.2 LTS ---"
  .venv-bpy42/bin/python -m pytest -q -m blender -p no:cacheprovider tests/test_addon_blender.py tests/test_addon_jobs.py
fi
