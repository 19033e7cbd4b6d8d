"""Depth pictures for people: the robust colour range, the scale bar, the demo panel and
the README's description of it."""

import re
from pathlib import Path

import numpy as np
from PIL import Image

from dkn_ros.demo import ERROR_SPAN_MM, demo_panel
from dkn_ros.visualise import colorize, depth_preview, robust_range, scale_bar

ROOT = Path(__file__).resolve().parents[1]


def far_range_depth(height: int = 120, width: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A 5-40 m ramp (float32 metres) with 1.5 % of the pixels at 650 m (sky, windows,
    a sensor's far limit), and the mask of those outliers."""
    rng = np.random.default_rng(0)
    depth = np.linspace(5.0, 40.0, height * width, dtype=np.float32).reshape(height, width)
    outliers = rng.random((height, width)) < 0.015
    depth[outliers] = 650.0
    return depth, outliers


def distinct_colours(rgb: np.ndarray, mask: np.ndarray) -> int:
    return len(np.unique(rgb[mask].reshape(-1, 3), axis=0))


def test_robust_range_is_the_2nd_to_98th_percentile_of_valid_depth():
    depth, _ = far_range_depth()
    depth[::4, ::3] = np.nan  # invalid pixels do not count
    depth[2::4, ::3] = 0.0
    lo, hi = robust_range(depth)
    valid = depth[np.isfinite(depth) & (depth > 0)]
    assert (lo, hi) == tuple(float(v) for v in np.percentile(valid, [2, 98]))
    assert 5.0 < lo < 6.5 and 38.0 < hi < 40.0  # the outliers do not set the range
    assert robust_range(np.full((4, 4), 2.0, np.float32))[1] > 2.0  # flat: non-empty
    assert robust_range(np.zeros((4, 4), np.float32)) == (0.0, 1.0)  # nothing valid


def test_far_range_depth_with_outliers_uses_many_colours():
    depth, outliers = far_range_depth()
    picture = depth_preview(depth)[: depth.shape[0]]
    # With the outliers setting the range (1st-99th percentile: up to 650 m) the whole
    # 5-40 m scene fell into the first 5 % of the map: about 120 colours here.
    assert distinct_colours(picture, ~outliers) > 500


def test_depth_preview_has_a_scale_bar_in_metres():
    depth_mm = np.linspace(800, 3200, 48 * 64).reshape(48, 64).astype(np.uint16)
    depth_mm[0, :8] = 0  # invalid: black
    picture = depth_preview(depth_mm)
    assert picture.shape[1] == 64 and picture.shape[0] > 48 + 10
    assert (picture[0, :8] == 0).all()
    lo, hi = robust_range(depth_mm.astype(np.float32) / 1000.0)
    bar = picture[48:]
    np.testing.assert_array_equal(bar, scale_bar(64, lo, hi, "m"))
    # The colour ramp: a row of the bar is the colour map from lo (left) to hi (right).
    ramp = colorize(np.linspace(lo, hi, 64, dtype=np.float32)[None], lo, hi)[0]
    assert any((row == ramp).all() for row in bar)
    # Labels: white text below the ramp.
    below = bar[[n for n, row in enumerate(bar) if (row == ramp).all()][-1] + 1 :]
    assert (below == 255).all(axis=2).sum() > 20


def test_scale_bar_labels_fit_any_width():
    for width in (16, 64, 200, 320, 640):
        bar = scale_bar(width, 0.5, 12.0, "m")
        assert bar.shape[1] == width and bar.dtype == np.uint8
        assert (bar == 255).all(axis=2).any()  # some label or tick drawn


def test_demo_panel_has_scale_bars_and_the_error_span():
    height, width, step = 48, 64, 8
    yy, xx = np.mgrid[0:height, 0:width]
    truth_m = (1.0 + xx / width + yy / height).astype(np.float32)
    depth_lr = (truth_m[step // 2 :: step, step // 2 :: step] * 1000).astype(np.uint16)
    enhanced = (truth_m * 1000).astype(np.uint16)
    color = np.zeros((height, width, 3), np.uint8)
    panel = demo_panel(color, depth_lr, enhanced, enhanced, truth_m, (1.0, 2.0), "FDKN")
    bar_rows = scale_bar(width, 0.0, 1.0, "m").shape[0]
    assert panel.shape == (height + bar_rows, 5 * width + 4 * 4, 3)
    error_bar = panel[height:, -width:]
    np.testing.assert_array_equal(error_bar, scale_bar(width, 0.0, ERROR_SPAN_MM, "mm"))


def test_readme_and_picture_agree_with_the_code():
    readme = (ROOT / "README.md").read_text()
    spans = re.findall(r"error, 0-(\d+) mm", readme)
    assert spans and all(int(span) == ERROR_SPAN_MM for span in spans), spans
    assert "scale bar" in readme
    # docs/demo.png is dkn-ros demo's 640 x 480 panel at half size, scale bars included.
    picture = Image.open(ROOT / "docs" / "demo.png")
    full_height = 480 + scale_bar(640, 0.0, 1.0, "m").shape[0]
    assert picture.size == ((5 * 640 + 4 * 4) // 2, full_height // 2)
