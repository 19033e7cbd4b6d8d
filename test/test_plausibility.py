"""The warning for depth whose range is implausible for its units
(processing.implausible_depth_message, said once per Enhancer): synthetic depth of each
kind, the real sensor frames of the data directory, and the real network."""

import logging

import numpy as np
import pytest

from dkn_ros.enhancer import Enhancer
from dkn_ros.models import ModelCard, build_model, save_model
from dkn_ros.processing import implausible_depth_message
from training.data import data_dir

H, W = 48, 64


def room_metres(shape=(H, W), near=0.6, far=4.5, seed=0) -> np.ndarray:
    """A plausible indoor depth in float32 metres: a smooth field from near to far."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] / np.array(shape).reshape(2, 1, 1)
    field = near + (far - near) * (0.6 * x + 0.4 * y) + rng.normal(0, 0.01, shape)
    return field.astype(np.float32)


def room_mm(**kwargs) -> np.ndarray:
    depth = np.rint(room_metres(**kwargs) * 1000).astype(np.uint16)
    depth[::7, ::5] = 0  # holes
    return depth


def test_plausible_depth_gives_none():
    assert implausible_depth_message(room_mm()) is None
    metres = room_metres()
    metres[::7, ::5] = np.nan
    assert implausible_depth_message(metres) is None
    # A ToF outdoors at 5-18 m is still plausible; so is a flat wall at exactly 1 m.
    assert implausible_depth_message(room_mm(near=5.0, far=18.0)) is None
    assert implausible_depth_message(np.full((H, W), 1000, np.uint16)) is None


def test_millimetres_given_as_float_metres():
    message = implausible_depth_message(room_metres() * 1000)
    assert message and "float32 metres" in message and "millimetres given as metres" in message


def test_metres_that_are_too_small():
    message = implausible_depth_message(room_metres() / 1000)
    assert message and "float32 metres" in message


def test_bit_shifted_millimetres():
    """Millimetres shifted left by 3 bits (SUN RGB-D's rotation for depth under 8.2 m),
    here at 0.6-2.2 m, so the median (5-18 m as millimetres) alone would not tell."""
    shifted = room_mm(near=0.6, far=2.2) << 3
    assert 2_000 < np.median(shifted[shifted > 0]) < 20_000
    message = implausible_depth_message(shifted)
    assert message and "multiples of 8" in message and "(v >> 3) | (v << 13)" in message


def test_far_beyond_any_camera_as_millimetres():
    message = implausible_depth_message(room_mm(near=30.0, far=60.0) + 1)  # not all on 8
    assert message and "median" in message and "uint16 millimetres" in message


def test_metres_stored_as_uint16():
    message = implausible_depth_message(np.rint(room_metres()).astype(np.uint16) + 1)
    assert message and "median" in message


def test_byte_swapped_raw_kinect_counts_are_not_told_apart():
    """NYU raw Kinect counts once byte-swapped (839-1084, 2047 = no reading) look like
    0.8-2 m in millimetres: the range cannot tell them apart, and the check does not
    pretend to (read as they are, they are flagged: see the real frames below)."""
    rng = np.random.default_rng(0)
    counts = rng.integers(839, 1085, (H, W)).astype(np.uint16)
    counts[rng.random((H, W)) < 0.07] = 2047
    assert implausible_depth_message(counts) is None


def sensor_frame(name: str) -> np.ndarray:
    from dkn_ros.imageio import read_depth

    path = data_dir() / "sensor_frames" / name
    if not path.is_file():
        pytest.skip(f"{path} not found: set DKN_DATA_DIR to the shared data folder")
    return read_depth(path)


def test_real_raw_sensor_frames():
    nyu = implausible_depth_message(sensor_frame("NYU_depth.pgm"))  # raw counts, as read
    assert nyu and "median 54.3 m" in nyu
    sun = implausible_depth_message(sensor_frame("SUN_depth.png"))  # bits rotated by 3
    assert sun and "multiples of 8" in sun
    # Decoded, SUN's frame is plausible millimetres (1.1-9.9 m).
    raw = sensor_frame("SUN_depth.png")
    decoded = ((raw >> 3) | (raw << 13)).astype(np.uint16)
    assert implausible_depth_message(decoded) is None
    # TUM's metres x 5000 reads as 7-47 m, median 12 m: within a ToF's reach, not flagged.
    assert implausible_depth_message(sensor_frame("TUM_depth.png")) is None


def test_real_millimetre_and_metre_datasets_are_plausible():
    from dkn_ros.imageio import read_depth

    root = data_dir()
    files = sorted((root / "rgbd_sequence" / "depth").glob("*.png"))
    files += sorted((root / "rgbdd" / "Depth").glob("*.png"))[::20]
    files += sorted((root / "nyu_test_samples" / "Depth").glob("*.npy"))
    if len(files) < 10:
        pytest.skip(f"the datasets of {root} not found: set DKN_DATA_DIR")
    flagged = [f.name for f in files if implausible_depth_message(read_depth(f))]
    assert flagged == []


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "fdkn_x4.safetensors"
    card = ModelCard(model="fdkn", config={"n1": 32, "n2": 32}, task="upsampling", scale=4)
    save_model(build_model("fdkn", n1=32, n2=32), card, path)
    return path


def warnings(caplog) -> list[str]:
    """The warnings captured (other tests may have left INFO on for the package)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_enhancer_warns_once_and_enhances_anyway(weights, caplog):
    color = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    plausible = room_mm(shape=(H // 4, W // 4))
    shifted = plausible << 3
    enhancer = Enhancer(weights=weights, engine="torch")
    with caplog.at_level(logging.WARNING, logger="dkn_ros.enhancer"):
        enhancer.enhance(color, plausible)
        assert not warnings(caplog)
        for _ in range(3):
            out = enhancer.enhance(color, shifted)
        out_m = enhancer.enhance(color, room_metres(shape=(H // 4, W // 4)) * 1000)
    assert out.shape == (H, W) and out.dtype == np.uint16 and out.max() > 8_000
    assert out_m.shape == (H, W)
    messages = warnings(caplog)
    assert len(messages) == 1, messages  # once per Enhancer, whatever follows
    assert "multiples of 8" in messages[0] and "enhancing it anyway" in messages[0]
