#!/usr/bin/env bash
# Create or reuse the project's virtual environments and install only what changed.
#   bash scripts/setup_env.sh          engine (.venv, Python 3.11): edn, torch, mediapipe, and bpy 5.0 for the tests
#   bash scripts/setup_env.sh --lts    also the add-on test environments for the other Blender versions (the engine
#                                      still runs from .venv): .venv-bpy42 and .venv-bpy45 (Python 3.11), and
#                                      .venv-bpy51 and .venv-bpy52 (Python 3.13: bpy 5.1 and 5.2 are cp313 only)
# A stamp file holds a hash of the requirement files; when it matches, nothing is installed (a second run takes
# seconds). Python 3.13 is found as $PYTHON313, else pyenv's versions/3.13*, else python3.13 on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

stamp_of() { cat "$@" pyproject.toml | sha256sum | cut -d' ' -f1; }

find_py313() {  # prints a runnable Python 3.13, or nothing
  local c
  for c in ${PYTHON313:-} $( (command -v pyenv >/dev/null && ls -d "$(pyenv root)"/versions/3.13*/bin/python3.13) \
                             2>/dev/null | sort -V -r) python3.13; do
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then echo "$c"; return; fi
  done
}

ensure_venv() {  # ensure_venv DIR PYTHON STAMP_INPUTS... ; then the caller installs when it returns 1
  local dir=$1 py=$2; shift 2
  [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
  local want; want=$(stamp_of "$@")
  [ -f "$dir/.edn-stamp" ] && [ "$(cat "$dir/.edn-stamp")" = "$want" ]
}

pipq() { "$1/bin/python" -m pip install --disable-pip-version-check -q "${@:2}"; }

if ! ensure_venv .venv "$PY" requirements/engine.txt requirements/mediapipe.txt requirements/test.txt; then
  echo "setting up .venv (engine, mediapipe, bpy, pytest)..." >&2
  pipq .venv -r requirements/engine.txt -r requirements/test.txt
  pipq .venv --no-deps -r requirements/mediapipe.txt
  pipq .venv --no-deps --no-build-isolation -e .
  stamp_of requirements/engine.txt requirements/mediapipe.txt requirements/test.txt > .venv/.edn-stamp
fi

if [ "${1:-}" = "--lts" ]; then
  PY313=$(find_py313)
  for v in 42 45 51 52; do
    py=$PY
    if [ "$v" -ge 51 ]; then
      [ -n "$PY313" ] || { echo "setup_env: Blender ${v:0:1}.${v:1} (bpy) needs Python 3.13, not found: install" \
                                "it (pyenv install 3.13) or set PYTHON313=/path/to/python3.13" >&2; exit 1; }
      py=$PY313
    fi
    if ! ensure_venv ".venv-bpy$v" "$py" "requirements/test-bpy$v.txt"; then
      echo "setting up .venv-bpy$v (Blender ${v:0:1}.${v:1} as a module)..." >&2
      pipq ".venv-bpy$v" -r "requirements/test-bpy$v.txt"
      stamp_of "requirements/test-bpy$v.txt" > ".venv-bpy$v/.edn-stamp"
    fi
  done
fi
