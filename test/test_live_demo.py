"""The README's main command, small: the node in its own process, the bundled Open3D
RGB-D sequence (its default camera) over real DDS, the recorder writing a real rosbag2."""

import math
import re
import subprocess
import sys

import pytest
from rosbags.rosbag2 import Reader

from dkn_ros.imageio import read_color
from dkn_ros.models.registry import DEFAULT_WEIGHTS_DIR

pytestmark = pytest.mark.skipif(
    not (DEFAULT_WEIGHTS_DIR / "fdkn_x8.safetensors").is_file(),
    reason="no shipped FDKN x8 weights in dkn_ros/weights",
)


# "    2    412 ms       71.7 mm    87.8 mm": frame, latency, bicubic RMSE, ours RMSE
FRAME_LINE = re.compile(r"^\s*(\d+)\s+(\d+) ms\s+(\S+) mm\s+(\S+) mm$")
# "    2    412 ms           n/a        n/a": a replayed bag's frame (no ground truth)
BAG_FRAME_LINE = re.compile(r"^\s*(\d+)\s+(\d+) ms\s+n/a\s+n/a$")
FRAMES = re.compile(r"frames: (\d+) published, (\d+) enhanced, (\d+) not enhanced")


def check_counts(stdout: str, bag_path, published: int) -> int:
    """The frame counts agree with each other, with the recorded bag (no warm-up frame
    in it) and with the node's drops; returns the number of enhanced frames."""
    counts = FRAMES.search(stdout)
    assert counts, stdout
    sent, enhanced, missing = (int(n) for n in counts.groups())
    assert sent == published and enhanced + missing == published and enhanced >= 1, stdout
    with Reader(bag_path) as reader:
        recorded = {conn.topic: conn.msgcount for conn in reader.connections}
    assert recorded["/depth_enhanced/image"] == enhanced, (recorded, stdout)
    assert recorded["/depth_enhanced/camera_info"] == enhanced, (recorded, stdout)
    assert recorded["/diagnostics"] >= 1
    assert f"the {enhanced} enhanced images" in stdout
    # Drops are reported over the same frames: none when every frame came back.
    assert ("dropped by the node" in stdout) == (missing > 0), stdout
    return enhanced


def test_live_demo_records_what_the_node_published(tmp_path):
    out = tmp_path / "live"
    # The default camera: the bundled sequence, a 160x120 centre crop, depth x8 (20x15).
    command = [sys.executable, "-m", "dkn_ros.cli", "live-demo", "--frames", "3", "--rate", "2",
               "--size", "160x120", "--engine", "torch", "--out", str(out)]  # fmt: skip
    (out / "enhanced_bag").mkdir(parents=True)  # a previous run's output is replaced ...
    (out / "enhanced_bag" / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    (out / "frame_007.png").write_bytes(b"old")
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (out / "frame_007.png").exists()
    assert "Open3D RGB-D sequence, 160x120 colour" in result.stdout
    assert "point-sampled x8 to 20x15" in result.stdout
    enhanced = check_counts(result.stdout, out / "enhanced_bag", published=3)
    # Every enhanced frame has a line with finite RMSEs against the sequence's own depth,
    # and a picture; the mean line sums them up.
    rows = [m.groups() for m in map(FRAME_LINE.match, result.stdout.splitlines()) if m]
    assert len(rows) == enhanced, result.stdout
    for _, latency, bicubic, ours in rows:
        assert float(latency) > 0
        assert math.isfinite(float(bicubic)) and 0 < float(bicubic) < 1000, result.stdout
        assert math.isfinite(float(ours)) and 0 < float(ours) < 1000, result.stdout
    mean = next(line for line in result.stdout.splitlines() if line.startswith(" mean"))
    assert all(math.isfinite(float(v)) for v in re.findall(r"([\d.]+) mm", mean))
    assert sorted(p.name for p in out.glob("frame_*.png")) == [
        f"frame_{int(index):03d}.png" for index, *_ in rows
    ]


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
    enhanced = check_counts(result.stdout, out / "enhanced_bag", published=3)  # + warm-up
    # A picture per enhanced frame, as the summary says: colour | input | enhanced.
    rows = [m.group(1) for m in map(BAG_FRAME_LINE.match, result.stdout.splitlines()) if m]
    assert len(rows) == enhanced, result.stdout
    pictures = sorted(out.glob("frame_*.png"))
    assert [p.name for p in pictures] == [f"frame_{int(index):03d}.png" for index in rows]
    assert f"{enhanced} pictures beside it" in result.stdout
    picture = read_color(pictures[0])
    assert picture.shape == (120, 3 * 160 + 2 * 4, 3) and picture.std() > 10


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
