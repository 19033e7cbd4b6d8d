#!/usr/bin/env bash
# The main job on an embedded default: installs dkn_ros (with ROS 2 Jazzy from PyPI) into
# .venv, then runs the depth_enhancer node on the bundled Open3D RGB-D sequence (depth
# point-sampled x8) over real ROS 2, records what it published and writes it to
# live_demo_output/ (--source synthetic: our rendered room with exact ground truth).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh onnx,ros
exec "${DKN_VENV:-$root/.venv}/bin/dkn-ros" live-demo "$@"
