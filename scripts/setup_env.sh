#!/usr/bin/env bash
# Create or reuse the project's virtual environments and install only what changed.
#   bash scripts/setup_env.sh          engine (.venv): edn, torch, mediapipe, and the bpy module for the demo/tests
#   bash scripts/setup_env.sh --lts    also .venv-bpy42 and .venv-bpy45: Blender 4.2 and 4.5 LTS as modules, for the
#                                      add-on tests on those versions (the engine still runs from .venv)
# A stamp file holds a hash of the requirement files; when it matches, nothing is installed (a second run takes
# seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

stamp_of() { cat "$@" pyproject.toml | sha256sum | cut -d' ' -f1; }

ensure_venv() {  # ensure_venv DIR STAMP_INPUTS... ; then the caller installs when it returns 1
  local dir=$1; shift
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  local want; want=$(stamp_of "$@")
  [ -f "$dir/.edn-stamp" ] && [ "$(cat "$dir/.edn-stamp")" = "$want" ]
}

pipq() { "$1/bin/python" -m pip install --disable-pip-version-check -q "${@:2}"; }

if ! ensure_venv .venv requirements/engine.txt requirements/mediapipe.txt requirements/test.txt; then
  echo "setting up .venv (engine, mediapipe, bpy, pytest)..." >&2
  pipq .venv -r requirements/engine.txt -r requirements/test.txt
  pipq .venv --no-deps -r requirements/mediapipe.txt
  pipq .venv --no-deps --no-build-isolation -e .
  stamp_of requirements/engine.txt requirements/mediapipe.txt requirements/test.txt > .venv/.edn-stamp
fi

if [ "${1:-}" = "--lts" ]; then
  for v in 42 45; do
    if ! ensure_venv ".venv-bpy$v" "requirements/test-bpy$v.txt"; then
      echo "setting up .venv-bpy$v (Blender ${v:0:1}.${v:1} LTS module)..." >&2
      pipq ".venv-bpy$v" -r "requirements/test-bpy$v.txt"
      stamp_of "requirements/test-bpy$v.txt" > ".venv-bpy$v/.edn-stamp"
    fi
  done
fi
