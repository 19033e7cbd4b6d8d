#!/usr/bin/env bash
# The test command: installs what it needs into .venv, lints, runs the whole suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh test
py="${DKN_VENV:-$root/.venv}/bin/python"
"$py" -m ruff check .
"$py" -m pytest -q "$@"
