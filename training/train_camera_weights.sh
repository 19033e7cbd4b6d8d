#!/usr/bin/env bash
# Train the default ("camera") weights the node, Enhancer and CLI use, exactly as the
# shipped ones were made (each card holds its command too). Run from the repository root
# after scripts/setup_env.sh test: bash training/train_camera_weights.sh
#
# Every upsampling model is fine-tuned from a paper-protocol model on the camera mix
# (RGB-D-D + synthetic scenes): LR grids drawn per crop (point sampling twice as often
# as block median, area and bicubic), 1 % holes, light noise, and the LR depth brought to
# colour size by joint bilateral upsampling under the colour image (--input-upsampling
# guided). x8 comes first; x2, x4 and x16 start from it. The same-size model is
# fine-tuned from the Gaussian denoiser on the kinect_v1 camera profile (shadow bands,
# dropout, misregistration, z^2 noise, disparity steps), its input smoothed through a 4x
# coarser grid and joint bilateral upsampling (guided, same size). About 15-25 min each on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=dkn_ros/weights
CAMERA=(--dataset camera_mix --grids nearest nearest median area bicubic
        --input-upsampling guided --holes 0.01 --noise-std 0 0.003
        --crop 192 --batch-size 2 --threads 1 --save-every 500 --val-every 1000 --resume auto)

"$PY" -m training.train --model fdkn --scale 8 "${CAMERA[@]}" \
  --init "$W/fdkn_paper_x8.safetensors" --iterations 4000 --lr 2e-4 --lr-step 2500 \
  --lr-gamma 0.25 --out-dir runs/camera_x8 --export "$W/fdkn_x8.safetensors"
for scale in 2 4 16; do
  "$PY" -m training.train --model fdkn --scale "$scale" "${CAMERA[@]}" \
    --init "$W/fdkn_x8.safetensors" --iterations 2000 --lr 2e-4 --lr-step 1200 \
    --lr-gamma 0.25 --out-dir "runs/camera_x$scale" --export "$W/fdkn_x$scale.safetensors"
done
"$PY" -m training.train --model fdkn --scale 1 --no-residual --dataset camera_mix \
  --profile kinect_v1 --input-upsampling guided --crop 192 --batch-size 2 --threads 1 --save-every 500 \
  --val-every 1000 --resume auto --init "$W/fdkn_gaussian_denoise.safetensors" \
  --iterations 3000 --lr 2e-4 --lr-step 2000 --lr-gamma 0.25 --out-dir runs/camera_x1 \
  --export "$W/fdkn_denoise.safetensors"
