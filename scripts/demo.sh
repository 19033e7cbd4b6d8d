#!/usr/bin/env bash
# The main job on an embedded default: installs dkn_ros into .venv, then enhances a
# generated RGB-D sequence and writes what it produced to demo_output/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh onnx
exec "${DKN_VENV:-$root/.venv}/bin/dkn-ros" demo "$@"
