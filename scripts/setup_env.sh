#!/usr/bin/env bash
# Creates .venv in the repository (once) and installs dkn_ros with what it needs.
# torch is installed first at a pinned CPU-friendly version (DKN_TORCH_SPEC overrides it)
# so that the package's own range (torch>=2.4) does not pull several GB of CUDA wheels.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DKN_VENV:-$root/.venv}"
extras="${1:-test}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
if ! "$py" -c "import torch" 2>/dev/null; then
  "$py" -m pip install -q --disable-pip-version-check "${DKN_TORCH_SPEC:-torch==2.13.0}"
fi
"$py" -m pip install -q --disable-pip-version-check -e "$root[$extras]"
