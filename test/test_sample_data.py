"""The bundled Open3D RGB-D sequence, read from the package (never from ../shared/data)."""

import subprocess
import sys

import numpy as np
import pytest

from dkn_ros.sample_data import (
    SEQUENCE_INTRINSICS,
    point_sample,
    rgbd_sequence,
    rgbd_sequence_files,
)


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


def test_the_package_never_imports_training():
    code = (
        "import sys, dkn_ros.sample_data;"
        "print(sorted(m for m in sys.modules if m == 'training' or m.startswith('training.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
