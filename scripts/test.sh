#!/usr/bin/env bash
# Set up (or reuse) the environments, then run the whole test suite:
#   the engine and add-on tests on Blender 5.0 (.venv, Python 3.11), then the add-on tests again on Blender 4.2 LTS,
#   4.5 LTS, 5.1 and 5.2 LTS (5.1 and 5.2 on Python 3.13, where any DeprecationWarning fails them). On 5.2 this
#   includes the end-to-end "Set up engine" test, which builds the engine's Python 3.11 environment from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --lts
export EDN_ENGINE_PYTHON="$PWD/.venv/bin/python"
.venv/bin/python -m pytest -q "$@"
if [ $# -eq 0 ]; then
  addon_tests=(tests/test_addon_blender.py tests/test_addon_armature.py tests/test_addon_jobs.py tests/test_addon_plate.py
               tests/test_addon_setup_blender.py)
  for v in 42 45 51 52; do
    extra=()
    [ "$v" -ge 51 ] && extra=(-W error::DeprecationWarning)
    [ "$v" = 52 ] && extra+=(tests/test_addon_setup.py)  # set-up's planning, as run by a Python 3.13 Blender
    echo "--- add-on tests on Blender ${v:0:1}.${v:1} ---"
    ".venv-bpy$v/bin/python" -m pytest -q -m blender -p no:cacheprovider "${addon_tests[@]}" ${extra[@]+"${extra[@]}"}
  done
fi
