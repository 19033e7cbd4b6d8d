#!/usr/bin/env bash
# Evaluate every shipped weights file the paper's way and write the tables of
# training/RESULTS.md to runs/eval/ (Markdown and JSON); the numbers also go into each
# weights' card (--update-card). Run from the repository root after scripts/setup_env.sh
# (the 'train' extra): bash training/evaluate_shipped.sh   [about 30 min on 2 cores]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=dkn_ros/weights
UPSAMPLING=("$W/fdkn_paper_x2.safetensors" "$W/fdkn_paper_x4.safetensors" "$W/fdkn_paper_x8.safetensors"
            "$W/fdkn_paper_x16.safetensors" "$W/fdkn_paper_multiscale.safetensors" "$W/dkn_x8.safetensors")
mkdir -p runs/eval
for dataset in middlebury30 nyu_test_samples; do
  "$PY" -m training.evaluate --dataset "$dataset" --scales 2 4 8 16 \
    --model-weights "${UPSAMPLING[@]}" --update-card \
    --json "runs/eval/$dataset.json" --markdown "runs/eval/$dataset.md"
  "$PY" -m training.evaluate --dataset "$dataset" --scales 1 --noise-std 0.0707 \
    --model-weights "$W/fdkn_gaussian_denoise.safetensors" --update-card \
    --json "runs/eval/${dataset}_denoise.json" --markdown "runs/eval/${dataset}_denoise.md"
done
