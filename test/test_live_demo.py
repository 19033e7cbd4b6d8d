"""The README's main command, small: the node in its own process, a synthetic camera
over real DDS, the recorder writing a real rosbag2."""

import subprocess
import sys

import pytest
from rosbags.rosbag2 import Reader

from dkn_ros.enhancer import DEFAULT_WEIGHTS_DIR

pytestmark = pytest.mark.skipif(
    not (DEFAULT_WEIGHTS_DIR / "fdkn_x8.safetensors").is_file(),
    reason="no shipped FDKN x8 weights in dkn_ros/weights",
)


def test_live_demo_records_what_the_node_published(tmp_path):
    out = tmp_path / "live"
    command = [sys.executable, "-m", "dkn_ros.cli", "live-demo", "--frames", "3", "--rate", "2",
               "--size", "160x120", "--engine", "torch", "--out", str(out)]  # fmt: skip
    (out / "enhanced_bag").mkdir(parents=True)  # a previous run's output is replaced ...
    (out / "enhanced_bag" / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    (out / "frame_007.png").write_bytes(b"old")
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (out / "frame_007.png").exists()
    assert "3 published" in result.stdout
    with Reader(out / "enhanced_bag") as reader:
        counts = {conn.topic: conn.msgcount for conn in reader.connections}
    assert counts["/depth_enhanced/image"] >= 2  # the warm-up frame and timed ones
    assert counts["/depth_enhanced/camera_info"] == counts["/depth_enhanced/image"]
    assert counts["/diagnostics"] >= 1
    assert list(out.glob("frame_*.png"))


def test_live_demo_replays_a_users_bag(tmp_path):
    from test_bag import COLOR, DEPTH, INFO, write_bag

    bag = write_bag(tmp_path / "camera_bag", frames=4)
    out = tmp_path / "live"
    result = subprocess.run(
        [sys.executable, "-m", "dkn_ros.cli", "live-demo", "--bag", str(bag.path),
         "--color", COLOR, "--depth", DEPTH, "--info", INFO, "--rate", "2",
         "--engine", "torch", "--out", str(out)],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 published" in result.stdout  # frame 0 is the warm-up
    with Reader(out / "enhanced_bag") as reader:
        counts = {conn.topic: conn.msgcount for conn in reader.connections}
    assert counts["/depth_enhanced/image"] >= 2


def test_live_demo_bag_errors_are_one_line(tmp_path):
    from test_bag import COLOR, write_bag

    bag = write_bag(tmp_path / "camera_bag", frames=2)
    result = subprocess.run(
        [sys.executable, "-m", "dkn_ros.cli", "live-demo", "--bag", str(bag.path),
         "--color", COLOR, "--depth", "/no/such/topic", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "/no/such/topic" in result.stderr
    assert "Traceback" not in result.stderr
