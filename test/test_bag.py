"""dkn-ros bag: real rosbag2 files (sqlite3 and mcap storage) written with rosbags,
enhanced bag to bag, and read back with rosbags."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")

from rosbags.rosbag2 import (  # noqa: E402
    CompressionFormat,
    CompressionMode,
    Reader,
    StoragePlugin,
    Writer,
)
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from dkn_ros.enhancer import Enhancer  # noqa: E402
from dkn_ros.models import ModelCard, build_model, save_model  # noqa: E402
from dkn_ros.ros.bag import BagSummary, build_image, check_request, enhance_bag  # noqa: E402
from dkn_ros.ros.image_codec import image_to_numpy  # noqa: E402
from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame  # noqa: E402

STORE = get_typestore(Stores.ROS2_JAZZY)
Header = STORE.types["std_msgs/msg/Header"]
Time = STORE.types["builtin_interfaces/msg/Time"]
Image = STORE.types["sensor_msgs/msg/Image"]
CameraInfo = STORE.types["sensor_msgs/msg/CameraInfo"]
RegionOfInterest = STORE.types["sensor_msgs/msg/RegionOfInterest"]
String = STORE.types["std_msgs/msg/String"]

COLOR = "/camera/color/image_raw"
DEPTH = "/camera/depth/image_raw"
INFO = "/camera/color/camera_info"
CHATTER = "/chatter"
OUT_IMAGE = "/depth_enhanced/image"
OUT_INFO = "/depth_enhanced/camera_info"
WIDTH, HEIGHT, SCALE = 160, 120, 8
START_NS = 1_700_000_000 * 10**9
PERIOD_NS = 33_333_333
COLOR_FRAME = "camera_color_optical_frame"


# --- writing test bags ------------------------------------------------------------------


@cache
def frame(index: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """(colour RGB uint8 160x120, depth uint16 mm 20x15, (fx, fy, cx, cy)) of frame i."""
    rendered = render_frame(index / 30, width=WIDTH, height=HEIGHT)
    depth = degrade_depth(rendered.depth, KinectDegradation(scale=SCALE), seed=index)
    intr = rendered.intrinsics
    return rendered.color, depth, (intr.fx, intr.fy, intr.cx, intr.cy)


def stamp(ns: int):
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


def image_msg(header, array: np.ndarray, encoding: str):
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    return Image(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=array.strides[0],
        data=array.reshape(-1).view(np.uint8),
    )


def info_msg(header, intrinsics):
    fx, fy, cx, cy = intrinsics
    return CameraInfo(
        header=header,
        height=HEIGHT,
        width=WIDTH,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64),
        r=np.eye(3).reshape(-1),
        p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], dtype=np.float64),
        binning_x=0,
        binning_y=0,
        roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


@dataclass
class WrittenBag:
    """A bag written by :func:`write_bag` and what it holds."""

    path: Path
    messages: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    color_headers: dict[int, tuple[int, str]] = field(default_factory=dict)  # bag ns -> header
    intrinsics: tuple = ()


def write_bag(
    path: Path,
    storage: str = "sqlite3",
    frames: int = 5,
    color_encoding: str = "rgb8",
    depth_encoding: str = "16UC1",
    bad: dict[int, str] | None = None,
    no_depth: tuple[int, ...] = (),
    compression: str | None = None,
) -> WrittenBag:
    """A real rosbag2 bag: colour, depth (2 ms after colour, within the slop), the colour
    camera_info and an unrelated std_msgs/String topic, ``frames`` frames at 30 Hz.
    ``bad`` maps a frame to a defect: ``"yuv422"`` (depth with that encoding),
    ``"truncated"`` (colour data cut in half), ``"no_valid_depth"`` (depth all 0) or
    ``"info_320x240"`` (camera_info of another size) or ``"negative_stamp"`` (depth
    stamped -1 s); ``no_depth`` frames have no depth;
    ``compression``: ``"file"`` or ``"message"`` (zstd)."""
    bad = bad or {}
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    bag = WrittenBag(path=path)
    writer = Writer(path, version=9, storage_plugin=plugin)
    if compression is not None:
        writer.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    with writer:
        conns = {
            topic: writer.add_connection(topic, msgtype, typestore=STORE)
            for topic, msgtype in (
                (COLOR, Image.__msgtype__),
                (DEPTH, Image.__msgtype__),
                (INFO, CameraInfo.__msgtype__),
                (CHATTER, String.__msgtype__),
            )
        }

        def write(topic: str, bag_ns: int, msg) -> None:
            raw = bytes(STORE.serialize_cdr(msg, msg.__msgtype__))
            writer.write(conns[topic], bag_ns, raw)
            bag.messages.setdefault(topic, []).append((bag_ns, raw))

        for i in range(frames):
            color, depth_mm, bag.intrinsics = frame(i)
            t = START_NS + i * PERIOD_NS
            write(CHATTER, t + 1_000_000, String(data=f"hello {i}"))
            header = Header(stamp=stamp(t), frame_id=COLOR_FRAME)
            colour = color[:, :, ::-1] if color_encoding == "bgr8" else color
            color_msg = image_msg(header, colour, color_encoding)
            if bad.get(i) == "truncated":
                color_msg.data = color_msg.data[: color_msg.data.size // 2]
            write(COLOR, t + 5_000_000, color_msg)
            bag.color_headers[t + 5_000_000] = (t, COLOR_FRAME)
            info = info_msg(header, bag.intrinsics)
            if bad.get(i) == "info_320x240":
                info.width, info.height = 320, 240
            write(INFO, t + 6_000_000, info)
            if i in no_depth:
                continue
            depth = depth_mm if depth_encoding == "16UC1" else depth_mm.astype(np.float32) / 1e3
            if depth_encoding == "32FC1":
                depth[depth_mm == 0] = np.nan
            if bad.get(i) == "no_valid_depth":
                depth = np.zeros_like(depth)
            depth_header = Header(stamp=stamp(t + 2_000_000), frame_id="camera_depth_optical_frame")
            if bad.get(i) == "negative_stamp":
                depth_header = Header(stamp=Time(sec=-1, nanosec=0), frame_id=depth_header.frame_id)
            depth_msg = image_msg(depth_header, depth, depth_encoding)
            if bad.get(i) == "yuv422":
                depth_msg.encoding = "yuv422"
            write(DEPTH, t + 8_000_000, depth_msg)
    return bag


def read_bag(path: Path) -> tuple[dict[str, str], dict[str, list[tuple[int, bytes]]]]:
    """(topic -> type, topic -> [(bag ns, raw bytes)]) of a bag."""
    with Reader(path) as reader:
        types = {conn.topic: conn.msgtype for conn in reader.connections}
        messages: dict[str, list[tuple[int, bytes]]] = {}
        for conn, bag_ns, raw in reader.messages():
            messages.setdefault(conn.topic, []).append((bag_ns, bytes(raw)))
    return types, messages


def storage_of(path: Path) -> str:
    return "mcap" if list(path.glob("*.mcap")) else "sqlite3"


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A small untrained FDKN x8 (the bag plumbing does not depend on training)."""
    path = tmp_path_factory.mktemp("weights") / "fdkn_small_x8.safetensors"
    card = ModelCard(model="fdkn", config={"n1": 16, "n2": 16}, task="upsampling", scale=SCALE)
    save_model(build_model("fdkn", n1=16, n2=16), card, path)
    return path


@pytest.fixture(scope="module")
def enhancer(weights) -> Enhancer:
    return Enhancer(weights=weights, engine="torch")


def check_output(bag: WrittenBag, out: Path, summary: BagSummary, depth_encoding: str) -> None:
    """Every input message unchanged; one enhanced image + camera_info per pair, with
    the colour header and bag timestamp, at colour size, in the depth's encoding."""
    types, messages = read_bag(out)
    for topic, expected in bag.messages.items():
        assert sorted(messages[topic]) == sorted(expected), topic
    assert types[COLOR] == types[DEPTH] == "sensor_msgs/msg/Image"
    assert types[CHATTER] == "std_msgs/msg/String"
    assert types[OUT_IMAGE] == "sensor_msgs/msg/Image"
    assert types[OUT_INFO] == "sensor_msgs/msg/CameraInfo"
    assert set(types) == {COLOR, DEPTH, INFO, CHATTER, OUT_IMAGE, OUT_INFO}

    images, infos = messages[OUT_IMAGE], messages[OUT_INFO]
    assert len(images) == len(infos) == summary.pairs_enhanced > 0
    for (bag_ns, raw), (info_ns, info_raw) in zip(images, infos, strict=True):
        assert bag_ns == info_ns and bag_ns in bag.color_headers
        stamp_ns, frame_id = bag.color_headers[bag_ns]
        image = STORE.deserialize_cdr(raw, "sensor_msgs/msg/Image")
        info = STORE.deserialize_cdr(info_raw, "sensor_msgs/msg/CameraInfo")
        for header in (image.header, info.header):
            assert header.stamp.sec * 10**9 + header.stamp.nanosec == stamp_ns
            assert header.frame_id == frame_id
        assert (image.width, image.height) == (WIDTH, HEIGHT)
        assert image.encoding == depth_encoding
        depth = image_to_numpy(image)
        assert depth.shape == (HEIGHT, WIDTH)
        fx, _, cx, _ = bag.intrinsics
        assert (info.width, info.height) == (WIDTH, HEIGHT)
        assert info.k[0] == pytest.approx(fx) and info.k[2] == pytest.approx(cx)
        if depth_encoding == "16UC1":
            assert depth.dtype == np.uint16
            valid = depth[depth > 0]
            assert valid.size > 0.3 * depth.size and 300 < np.median(valid) < 10_000  # mm
        else:
            assert depth.dtype == np.float32
            valid = depth[np.isfinite(depth) & (depth > 0)]
            assert valid.size > 0.3 * depth.size and 0.3 < np.median(valid) < 10.0  # m


# --- enhance_bag ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage", "color_encoding", "depth_encoding", "out_storage"),
    [
        ("sqlite3", "rgb8", "16UC1", None),
        ("mcap", "bgr8", "32FC1", None),
        ("sqlite3", "bgr8", "16UC1", "mcap"),
    ],
)
def test_enhance_bag_copies_everything_and_adds_one_enhanced_frame_per_pair(
    tmp_path, enhancer, storage, color_encoding, depth_encoding, out_storage
):
    bag = write_bag(
        tmp_path / "in", storage, frames=4, color_encoding=color_encoding,
        depth_encoding=depth_encoding,
    )
    out = tmp_path / "out"
    summary = enhance_bag(
        bag.path, out, COLOR, DEPTH, INFO, enhancer=enhancer, storage=out_storage, progress=False
    )
    assert storage_of(out) == (out_storage or storage)
    assert summary.storage == (out_storage or storage)
    assert (summary.pairs_found, summary.pairs_enhanced, summary.camera_infos_written) == (4, 4, 4)
    assert summary.color_messages == summary.depth_messages == 4
    assert summary.messages_copied == 16 and not summary.dropped
    assert len(summary.latencies_ms) == 4 and 0 < summary.mean_latency_ms <= summary.p95_latency_ms
    check_output(bag, out, summary, depth_encoding)

    text = summary.format()
    assert "4 found, 4 enhanced" in text and str(out) in text
    assert "mean" in text and "p95" in text and "dropped:    0" in text


@pytest.mark.parametrize(
    ("storage", "defect", "reason"),
    [
        ("sqlite3", "yuv422", "bad depth: depth image has unsupported encoding 'yuv422'"),
        ("mcap", "truncated", "bad colour: rgb8 image data is too short"),
        ("sqlite3", "negative_stamp", "bad depth: header stamp -1 s 0 ns is negative"),
    ],
)
def test_bad_and_unpaired_messages_are_counted_and_skipped(
    tmp_path, enhancer, storage, defect, reason
):
    bag = write_bag(tmp_path / "in", storage, frames=6, bad={2: defect}, no_depth=(4,))
    out = tmp_path / "out"
    summary = enhance_bag(
        bag.path, out, COLOR, DEPTH, INFO, enhancer=enhancer, progress=False
    )
    # Frame 2 is bad (its partner is then unpaired), frame 4 has no depth.
    assert summary.pairs_found == summary.pairs_enhanced == 4
    bad = {k: v for k, v in summary.dropped.items() if k.startswith("bad ")}
    assert len(bad) == 1 and next(iter(bad.values())) == 1
    assert next(iter(bad)).startswith(reason), summary.dropped
    partner = "unpaired colour" if defect in ("yuv422", "negative_stamp") else "unpaired depth"
    unpaired_colour = 1 + (partner == "unpaired colour")
    assert summary.dropped["unpaired colour"] == unpaired_colour
    assert summary.dropped.get("unpaired depth", 0) == (partner == "unpaired depth")
    assert summary.unpaired_reasons == {"unmatched": summary.dropped_total - 1}
    check_output(bag, out, summary, "16UC1")
    text = summary.format()
    assert reason in text and "unpaired colour" in text


def test_pairs_that_cannot_be_enhanced_are_counted_once_per_pair(tmp_path, enhancer):
    """Depth without a valid pixel is refused by the enhancer (the one check of its
    values), a camera_info of another size by the frame step: the pair is found, not
    enhanced, and counted once under its reason; its messages are not 'unpaired'."""
    bag = write_bag(tmp_path / "in", frames=4, bad={1: "no_valid_depth", 2: "info_320x240"})
    out = tmp_path / "out"
    summary = enhance_bag(bag.path, out, COLOR, DEPTH, INFO, enhancer=enhancer, progress=False)
    assert (summary.pairs_found, summary.pairs_enhanced, summary.camera_infos_written) == (4, 2, 2)
    assert dict(summary.dropped) == {
        "bad depth: depth has no valid pixel: all 300 pixels are 0 (invalid)": 1,
        f"camera_info mismatch: {INFO} is 320x240 but the colour image is 160x120": 1,
    }
    check_output(bag, out, summary, "16UC1")
    assert "camera_info mismatch" in summary.format()


@pytest.mark.parametrize(("storage", "compression"), [("sqlite3", "message"), ("mcap", "file")])
def test_compressed_bags_stay_compressed(tmp_path, enhancer, storage, compression):
    bag = write_bag(tmp_path / "in", storage, frames=2, compression=compression)
    summary = enhance_bag(bag.path, tmp_path / "out", COLOR, DEPTH, enhancer=enhancer,
                          progress=False)
    assert summary.storage == storage
    assert f"storage_identifier: {storage}" in (tmp_path / "out" / "metadata.yaml").read_text()
    with Reader(tmp_path / "out") as reader:
        assert (reader.compression_mode, reader.compression_format) == (compression, "zstd")
    check_output(bag, tmp_path / "out", summary, "16UC1")


def test_camera_info_topic_is_found_beside_the_colour_topic(tmp_path, enhancer):
    bag = write_bag(tmp_path / "in", frames=2)
    summary = enhance_bag(
        bag.path, tmp_path / "out", COLOR.lstrip("/"), DEPTH, enhancer=enhancer,
        out_prefix="enhanced/depth", progress=False,
    )
    assert summary.info_topic == INFO and summary.camera_infos_written == 2
    types, messages = read_bag(tmp_path / "out")
    assert len(messages["/enhanced/depth/image"]) == len(messages["/enhanced/depth/camera_info"])


def test_build_image_round_trips_through_the_codec():
    depth = (np.arange(12, dtype=np.uint16) * 100).reshape(3, 4)
    header = Header(stamp=stamp(START_NS), frame_id="f")
    msg = build_image(header, depth, "16UC1")
    raw = STORE.serialize_cdr(msg, "sensor_msgs/msg/Image")
    back = STORE.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    assert (back.width, back.height, back.step, back.encoding) == (4, 3, 8, "16UC1")
    np.testing.assert_array_equal(image_to_numpy(back), depth)


def test_user_errors_name_the_path_and_the_problem(tmp_path):
    bag = write_bag(tmp_path / "in", frames=1)
    with pytest.raises(FileNotFoundError, match="missing.*not found"):
        check_request(tmp_path / "missing", tmp_path / "o", COLOR, DEPTH)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="plain: not a rosbag2 folder"):
        check_request(tmp_path / "plain", tmp_path / "o", COLOR, DEPTH)
    with pytest.raises(ValueError, match=r"/nope is not in the bag.*/chatter \(std_msgs/msg/"):
        check_request(bag.path, tmp_path / "o", "/nope", DEPTH)
    with pytest.raises(ValueError, match="/chatter has type std_msgs/msg/String"):
        check_request(bag.path, tmp_path / "o", COLOR, CHATTER)
    with pytest.raises(ValueError, match="output exists already"):
        check_request(bag.path, tmp_path / "in", COLOR, DEPTH)
    with pytest.raises(ValueError, match="already in the bag"):
        check_request(bag.path, tmp_path / "o", COLOR, DEPTH, out_prefix="camera/color")
    assert not (tmp_path / "o").exists()


# --- the command line -------------------------------------------------------------------


def dkn_ros(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dkn_ros.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_bag_prints_the_summary(tmp_path, weights):
    bag = write_bag(tmp_path / "in", "mcap", frames=3, bad={1: "yuv422"})
    out = tmp_path / "out"
    result = dkn_ros(
        "bag", str(bag.path), str(out), "--color", COLOR, "--depth", DEPTH, "--info", INFO,
        "--weights", str(weights), "--engine", "torch", "--storage", "sqlite3",
    )
    assert result.returncode == 0, result.stderr
    assert "2 found, 2 enhanced" in result.stdout
    assert "bad depth: depth image has unsupported encoding 'yuv422'" in result.stdout
    assert "latency:" in result.stdout and str(out) in result.stdout
    assert storage_of(out) == "sqlite3"
    _, messages = read_bag(out)
    assert len(messages[OUT_IMAGE]) == len(messages[OUT_INFO]) == 2


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("missing", ["missing", "not found"]),
        ("topic", ["/nope is not in the bag", f"{COLOR} (sensor_msgs/msg/Image)", CHATTER]),
        ("exists", ["output exists already"]),
    ],
)
def test_cli_bag_user_errors_are_one_line(tmp_path, case, fragments):
    bag = write_bag(tmp_path / "in", frames=1)
    in_path, out, color = bag.path, tmp_path / "out", COLOR
    if case == "missing":
        in_path = tmp_path / "missing"
    elif case == "topic":
        color = "/nope"
    else:
        out.mkdir()
    result = dkn_ros("bag", str(in_path), str(out), "--color", color, "--depth", DEPTH)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dkn-ros: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
