"""The bundled Open3D RGB-D sequence (read from the package, never from ../shared/data) and
the demo cameras built on it."""

import subprocess
import sys

import numpy as np
import pytest

from dkn_ros.demo import demo_degradation, demo_frames, describe_source
from dkn_ros.sample_data import (
    SEQUENCE_INTRINSICS,
    point_sample,
    rgbd_sequence,
    rgbd_sequence_files,
)
from dkn_ros.synthetic import KinectDegradation, degrade_depth


@pytest.fixture(scope="module")
def sequence():
    return rgbd_sequence()


def test_the_sequence_is_five_registered_vga_frames(sequence):
    assert len(sequence) == 5
    for color, depth in sequence:
        assert color.shape == (480, 640, 3) and color.dtype == np.uint8
        assert depth.shape == (480, 640) and depth.dtype == np.uint16
        valid = depth > 0
        assert 0.5 < valid.mean() < 1.0  # holes (0), mostly measured
        assert 500 < np.median(depth[valid]) < 5000  # millimetres of a room
    assert not np.array_equal(sequence[0][0], sequence[1][0])  # consecutive, not copies
    assert (SEQUENCE_INTRINSICS.width, SEQUENCE_INTRINSICS.height) == (640, 480)


def test_the_licence_and_readme_travel_with_the_data():
    folder = rgbd_sequence_files()
    assert "MIT License" in folder.joinpath("LICENSE-Open3D.txt").read_text(encoding="utf-8")
    readme = folder.joinpath("README.md").read_text(encoding="utf-8")
    assert "Open3D" in readme and "MIT" in readme
    assert len(folder.joinpath("rgbd.match").read_text().split()) == 10


def test_point_sample_takes_the_centre_of_each_block():
    depth = np.arange(24 * 18, dtype=np.uint16).reshape(18, 24)
    depth[4, 4] = 0
    low = point_sample(depth, 8)
    assert low.shape == (2, 3)  # cropped to a multiple of 8 first
    assert low[0, 0] == 0  # invalid stays invalid
    assert low[1, 2] == depth[12, 20]
    assert point_sample(depth, 1).shape == depth.shape


def test_the_sequence_camera_is_point_sampled_against_its_own_depth(sequence):
    frames = demo_frames("sequence", 7, size=None, scale=8)
    assert len(frames) == 7  # the five frames, looped
    for index, frame in enumerate(frames):
        color, depth = sequence[index % 5]
        np.testing.assert_array_equal(frame.color, color)
        np.testing.assert_array_equal(frame.depth_lr, depth[4::8, 4::8])
        np.testing.assert_allclose(frame.truth_m * 1000.0, depth, atol=1e-3)
        assert frame.depth_lr.shape == (60, 80) and frame.depth_lr.dtype == np.uint16
    # a smaller size is a centre crop of the data, not a resampling
    crop = demo_frames("sequence", 1, size=(164, 120), scale=8)[0]
    assert crop.color.shape == (120, 160, 3) and crop.depth_lr.shape == (15, 20)
    np.testing.assert_array_equal(crop.color, sequence[0][0][180:300, 240:400])
    assert crop.intrinsics.cx == SEQUENCE_INTRINSICS.cx - 240
    with pytest.raises(ValueError, match="640x480"):
        describe_source("sequence", (800, 600), 8)


def test_the_synthetic_camera_keeps_its_edge_shadows():
    assert demo_degradation(8).edge_holes
    frame = demo_frames("synthetic", 1, size=(160, 120), scale=8)[0]
    assert frame.depth_lr.shape == (15, 20)
    assert (frame.truth_m > 0).all()  # exact ground truth
    without = degrade_depth(
        frame.truth_m, KinectDegradation(scale=8, hole_fraction=0.01, edge_holes=False), seed=0
    )
    assert (frame.depth_lr == 0).sum() > (without == 0).sum()  # the bands beside jumps


def test_the_package_never_imports_training():
    code = (
        "import sys, dkn_ros.cli, dkn_ros.demo, dkn_ros.sample_data, dkn_ros.ros.live_demo;"
        "print(sorted(m for m in sys.modules if m == 'training' or m.startswith('training.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
