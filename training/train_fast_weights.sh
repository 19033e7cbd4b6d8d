#!/usr/bin/env bash
# The fdkn_s weights (quality 'fast'): the small FDKN distilled from the camera weights
# (training/train_camera_weights.sh) on the same degradation mix, one file per scale.
# x8 is trained from a random initialisation; the other scales are fine-tuned from it,
# as the full FDKN's were. CPU, one thread per run (two runs fit this 2-core machine
# side by side: `bash training/train_fast_weights.sh x8`, then `... x4` beside `... x16`,
# then `... x2` beside `... x1`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=dkn_ros/weights
CAMERA=(--dataset camera_mix --grids nearest nearest median area bicubic
        --input-upsampling guided --holes 0.01 --noise-std 0 0.003
        --crop 192 --batch-size 2 --threads 1 --save-every 500 --val-every 1000 --resume auto)
# Parts: x8 first; then x4, x16, x2 and x1 (same size), or "rest" for all four in turn.
part=${1:-all}
if [[ $part == x8 || $part == all ]]; then
  "$PY" -m training.train --model fdkn_s --scale 8 "${CAMERA[@]}" \
    --teacher "$W/fdkn_x8.safetensors" --iterations 8000 --lr 1e-3 --lr-step 3000 \
    --lr-gamma 0.3 --out-dir runs/fast_x8 --export "$W/fdkn_s_x8.safetensors"
fi
for scale in 4 16 2; do
  if [[ $part == "x$scale" || $part == rest || $part == all ]]; then
    "$PY" -m training.train --model fdkn_s --scale "$scale" "${CAMERA[@]}" \
      --teacher "$W/fdkn_x$scale.safetensors" --init "$W/fdkn_s_x8.safetensors" \
      --iterations 2000 --lr 3e-4 --lr-step 1200 --lr-gamma 0.25 \
      --out-dir "runs/fast_x$scale" --export "$W/fdkn_s_x$scale.safetensors"
  fi
done
if [[ $part == x1 || $part == rest || $part == all ]]; then
  "$PY" -m training.train --model fdkn_s --scale 1 --no-residual --dataset camera_mix \
    --profile kinect_v1 --input-upsampling guided --crop 192 --batch-size 2 --threads 1 \
    --save-every 500 --val-every 1000 --resume auto --teacher "$W/fdkn_denoise.safetensors" \
    --iterations 3000 --lr 1e-3 --lr-step 1500 --lr-gamma 0.3 --out-dir runs/fast_x1 \
    --export "$W/fdkn_s_denoise.safetensors"
fi
