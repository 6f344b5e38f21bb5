#!/usr/bin/env bash
# Set up (or reuse) the environment, then run the demo: `edn demo -o demo_out` (pass other options through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/edn demo -o demo_out "$@"
