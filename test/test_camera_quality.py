"""What a new user's camera gets: the default weights beat bicubic upsampling on
point-sampled depth through the library, the CLI and the node (issue "Real cameras, not
the benchmark"). Real network, real shipped weights; the bundled Open3D sequence needs no
data directory, Middlebury does (skipped with the reason when it is absent).

Bounds sit a few percent above what the shipped weights measure, so they fail when the
default weights lose their edge over bicubic, not on noise: measured 0.89 x bicubic on
the sequence at x8, 0.77 on middlebury30 point x8 (training/RESULTS.md)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from dkn_ros import Enhancer, processing
from dkn_ros.demo import compare_with_bicubic
from dkn_ros.sample_data import point_sample, rgbd_sequence
from training.data import crop_to_multiple, load_middlebury, middlebury_pairs, missing_reason
from training.sensors import downsample


def sequence_errors(scale: int | float, enhancer: Enhancer) -> tuple[float, float]:
    """Mean RMSE (mm) of bicubic and of the enhancer over the five bundled frames, the
    depth point-sampled by ``scale`` (centre of each footprint), scored as the demos score
    them (``dkn_ros.demo.compare_with_bicubic``)."""
    bicubic, ours = [], []
    for color, depth in rgbd_sequence():
        if float(scale).is_integer():
            low = point_sample(depth, int(scale))
        else:
            metres = np.where(depth > 0, depth / 1000.0, np.nan).astype(np.float32)
            low = downsample(metres, scale, "nearest")
            low = np.where(np.isfinite(low), np.rint(low * 1000), 0).astype(np.uint16)
        truth_m = depth.astype(np.float32) / np.float32(1000.0)
        _, (bicubic_mm, ours_mm) = compare_with_bicubic(truth_m, low, enhancer.enhance(color, low))
        bicubic.append(bicubic_mm)
        ours.append(ours_mm)
    return float(np.mean(bicubic)), float(np.mean(ours))


@pytest.fixture(scope="module")
def enhancer():
    return Enhancer(engine="torch", invalid="fill")


def test_library_beats_bicubic_on_the_point_sampled_sequence(enhancer):
    bicubic, ours = sequence_errors(8, enhancer)
    assert enhancer.last_weights.name == "fdkn_x8.safetensors"
    assert ours <= 0.93 * bicubic, (ours, bicubic)


def test_library_at_a_non_integer_ratio_uses_the_closest_trained_scale(enhancer):
    # 240 x 180 under 640 x 480. Not asserted better than bicubic: on this sequence it is
    # not (56.4 vs 53.0 mm, training/RESULTS.md); on middlebury30 it is (below).
    bicubic, ours = sequence_errors(8 / 3, enhancer)
    assert enhancer.last_scale == pytest.approx(8 / 3)
    assert enhancer.last_weights.name == "fdkn_x2.safetensors"  # log-closest to 2.67
    assert 0 < ours < 1.15 * bicubic, (ours, bicubic)


@pytest.mark.parametrize("scale, bound", [(8, 0.85), (8 / 3, 0.95)])
def test_library_beats_bicubic_on_point_sampled_middlebury(enhancer, scale, bound):
    """Measured on all 30 pairs: 0.77 x bicubic at x8, 0.85 x at 8/3 (the camera
    benchmark); here 5 of them."""
    reason = missing_reason("middlebury30")
    if reason:
        pytest.skip(reason)
    bicubic, ours = [], []
    for pair in middlebury_pairs()[::6]:
        color, depth = load_middlebury(pair)
        color = np.ascontiguousarray(crop_to_multiple(color, 8))
        truth = crop_to_multiple(depth, 8).astype(np.float32)  # 0..255, as evaluate.py
        low = downsample(truth, scale, "nearest")
        up = processing.bicubic_resize(low, truth.shape)
        out = enhancer.enhance(color, np.where(low > 0, low, np.nan).astype(np.float32))
        bicubic.append(np.sqrt(np.mean((up - truth) ** 2)))
        ours.append(np.sqrt(np.mean((out - truth) ** 2)))
    assert np.mean(ours) <= bound * np.mean(bicubic), (ours, bicubic)


def test_cli_demo_beats_bicubic(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dkn_ros.cli", "demo", "--frames", "2", "--engine", "torch",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    mean = next(line for line in result.stdout.splitlines() if line.strip().startswith("mean"))
    bicubic, ours = (float(v) for v in re.findall(r"([\d.]+) mm", mean))
    assert ours <= 0.95 * bicubic, result.stdout


def test_node_beats_bicubic(tmp_path):
    """The live demo at full size: node in its own process, real DDS."""
    result = subprocess.run(
        [sys.executable, "-m", "dkn_ros.cli", "live-demo", "--frames", "2", "--rate", "0.5",
         "--engine", "torch", "--out", str(tmp_path / "live")],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    mean = next(line for line in result.stdout.splitlines() if line.startswith(" mean"))
    bicubic, ours = (float(v) for v in re.findall(r"([\d.]+) mm", mean))
    assert ours <= 0.95 * bicubic, result.stdout
