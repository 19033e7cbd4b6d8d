"""dkn-ros bag on bags as they come from the field: real rosbag2 files (rosbags Writer)
whose colour and depth are sensor_msgs/CompressedImage (image_transport's compressed
and compressedDepth plugins), camera_info with its own QoS; and what the output carries:
mcap channels with topic_type_hash, version 8 metadata on request."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rosbags")
pytest.importorskip("cv2")

from compressed_helpers import compressed_depth, jpeg_or_png  # noqa: E402
from rosbags.interfaces import (  # noqa: E402
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, StoragePlugin, Writer  # noqa: E402
from test_bag import (  # noqa: E402
    COLOR_FRAME,
    HEIGHT,
    INFO,
    OUT_IMAGE,
    OUT_INFO,
    PERIOD_NS,
    START_NS,
    STORE,
    WIDTH,
    Header,
    dkn_ros,
    enhancer,  # noqa: F401 (fixture)
    frame,
    info_msg,
    read_bag,
    stamp,
    weights,  # noqa: F401 (fixture)
    write_bag,
)

from dkn_ros.ros.bag import enhance_bag  # noqa: E402
from dkn_ros.ros.image_codec import image_to_numpy  # noqa: E402

COMPRESSED = "sensor_msgs/msg/CompressedImage"
COLOR_C = "/camera/color/image_raw/compressed"
DEPTH_C = "/camera/depth/image_raw/compressedDepth"
CompressedImage = STORE.types[COMPRESSED]
CameraInfo = STORE.types["sensor_msgs/msg/CameraInfo"]


def qos(reliability: QosReliability, durability: QosDurability, depth: int) -> Qos:
    zero = QosTime(sec=0, nsec=0)
    return Qos(QosHistory.KEEP_LAST, depth, reliability, durability, zero, zero,
               QosLiveliness.AUTOMATIC, zero, False)  # fmt: skip


IMAGE_QOS = qos(QosReliability.BEST_EFFORT, QosDurability.VOLATILE, 5)
INFO_QOS = qos(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, 1)


def write_compressed_bag(
    path: Path, storage: str, depth_encoding: str, depth_codec: str, frames: int = 3,
    garbage: int | None = None,
) -> dict[int, int]:
    """A bag as a camera driver records it: JPEG colour on ``.../compressed``,
    compressedDepth on ``.../compressedDepth``, camera_info, each with the QoS the
    driver offers (images best effort, camera_info reliable + transient local). Frame
    ``garbage`` gets depth bytes that are not an image. Returns bag ns -> colour stamp."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    colour_stamps = {}
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {
            COLOR_C: writer.add_connection(COLOR_C, COMPRESSED, typestore=STORE,
                                           offered_qos_profiles=[IMAGE_QOS]),
            DEPTH_C: writer.add_connection(DEPTH_C, COMPRESSED, typestore=STORE,
                                           offered_qos_profiles=[IMAGE_QOS]),
            INFO: writer.add_connection(INFO, CameraInfo.__msgtype__, typestore=STORE,
                                        offered_qos_profiles=[INFO_QOS]),
        }  # fmt: skip
        for i in range(frames):
            color, depth_mm, intrinsics = frame(i)
            t = START_NS + i * PERIOD_NS
            header = Header(stamp=stamp(t), frame_id=COLOR_FRAME)
            fmt, data = jpeg_or_png(np.ascontiguousarray(color), "rgb8", "jpeg")
            msg = CompressedImage(header=header, format=fmt, data=np.frombuffer(data, np.uint8))
            writer.write(conns[COLOR_C], t + 5_000_000, STORE.serialize_cdr(msg, COMPRESSED))
            colour_stamps[t + 5_000_000] = t
            info = info_msg(header, intrinsics)
            writer.write(conns[INFO], t + 6_000_000, STORE.serialize_cdr(info, INFO_TYPE))
            depth = depth_mm
            if depth_encoding == "32FC1":
                depth = np.where(depth_mm > 0, depth_mm / 1000.0, np.nan).astype(np.float32)
            fmt, data = compressed_depth(depth, depth_encoding, depth_codec)
            if i == garbage:
                data = data[:12] + b"\x13\x37" * 40
            depth_header = Header(stamp=stamp(t + 2_000_000), frame_id="camera_depth_optical_frame")
            msg = CompressedImage(header=depth_header, format=fmt,
                                  data=np.frombuffer(data, np.uint8))  # fmt: skip
            writer.write(conns[DEPTH_C], t + 8_000_000, STORE.serialize_cdr(msg, COMPRESSED))
    return colour_stamps


INFO_TYPE = CameraInfo.__msgtype__


@pytest.mark.parametrize(
    ("storage", "depth_encoding", "depth_codec"),
    [("sqlite3", "16UC1", "png"), ("mcap", "32FC1", "png"), ("sqlite3", "16UC1", "rvl")],
)
def test_compressed_topics_are_detected_decoded_and_enhanced(
    tmp_path, enhancer, storage, depth_encoding, depth_codec  # noqa: F811
):
    colour_stamps = write_compressed_bag(
        tmp_path / "in", storage, depth_encoding, depth_codec, frames=4, garbage=2
    )
    out = tmp_path / "out"
    summary = enhance_bag(tmp_path / "in", out, COLOR_C, DEPTH_C, enhancer=enhancer,
                          progress=False)  # fmt: skip
    assert summary.info_topic == INFO  # beside /camera/color/image_raw
    assert (summary.pairs_found, summary.pairs_enhanced) == (3, 3), summary.format()
    # The garbage depth message is one drop (its colour partner is then unpaired).
    why = "RVL image says" if depth_codec == "rvl" else "not a JPEG or PNG image"
    bad = {k: v for k, v in summary.dropped.items() if k.startswith("bad depth")}
    assert list(bad.values()) == [1] and why in next(iter(bad)), summary.dropped
    assert summary.dropped["unpaired colour"] == 1 and summary.dropped_total == 2

    types, messages = read_bag(out)
    assert types[COLOR_C] == types[DEPTH_C] == COMPRESSED
    assert types[OUT_IMAGE] == "sensor_msgs/msg/Image"
    assert len(messages[OUT_IMAGE]) == len(messages[OUT_INFO]) == 3
    for bag_ns, raw in messages[OUT_IMAGE]:
        image = STORE.deserialize_cdr(raw, "sensor_msgs/msg/Image")
        assert image.header.stamp.sec * 10**9 + image.header.stamp.nanosec == colour_stamps[bag_ns]
        assert (image.width, image.height, image.encoding) == (WIDTH, HEIGHT, depth_encoding)
        depth = image_to_numpy(image)
        valid = depth[depth > 0] if depth_encoding == "16UC1" else depth[np.isfinite(depth)]
        median = float(np.median(valid)) / (1000.0 if depth_encoding == "16UC1" else 1.0)
        assert valid.size > 0.3 * depth.size and 1.0 < median < 6.0, median  # metres


def test_cli_bag_enhances_compressed_topics(tmp_path, weights):  # noqa: F811
    write_compressed_bag(tmp_path / "in", "mcap", "16UC1", "png", frames=2)
    out = tmp_path / "out"
    result = dkn_ros(
        "bag", str(tmp_path / "in"), str(out), "--color", COLOR_C, "--depth", DEPTH_C,
        "--info", INFO, "--weights", str(weights), "--engine", "torch", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 found, 2 enhanced" in result.stdout
    _, messages = read_bag(out)
    assert len(messages[OUT_IMAGE]) == 2


# --- what the output carries --------------------------------------------------------------


def _string(body: bytes, at: int) -> tuple[str, int]:
    """An MCAP string at ``at`` (u32 byte length, UTF-8) and the offset after it."""
    size = struct.unpack_from("<I", body, at)[0]
    return body[at + 4 : at + 4 + size].decode(), at + 4 + size


def mcap_channels(path: Path) -> dict[str, dict[str, str]]:
    """topic -> channel metadata of an mcap file's summary section, read byte by byte
    (MCAP spec: magic, then records of opcode u8, length u64, body; Channel = 0x04:
    id u16, schema id u16, topic, message encoding, metadata map; strings and maps are
    prefixed with their u32 byte length)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89MCAP0\r\n"
    channels: dict[str, dict[str, str]] = {}
    pos = 8
    while pos + 9 <= len(data):
        opcode, length = data[pos], struct.unpack_from("<Q", data, pos + 1)[0]
        body, pos = data[pos + 9 : pos + 9 + length], pos + 9 + length
        if opcode == 0x02:  # footer
            break
        if opcode != 0x04:
            continue
        topic, at = _string(body, 4)
        _, at = _string(body, at)  # message encoding
        end = at + 4 + struct.unpack_from("<I", body, at)[0]
        at += 4
        metadata = {}
        while at < end:
            key, at = _string(body, at)
            metadata[key], at = _string(body, at)
        channels[topic] = metadata
    return channels


def test_mcap_channels_carry_topic_type_hash(tmp_path, enhancer):  # noqa: F811
    bag = write_bag(tmp_path / "in", "mcap", frames=2)
    enhance_bag(bag.path, tmp_path / "out", "/camera/color/image_raw",
                "/camera/depth/image_raw", enhancer=enhancer, progress=False)  # fmt: skip
    channels = mcap_channels(next((tmp_path / "out").glob("*.mcap")))
    types, _ = read_bag(tmp_path / "out")
    assert set(channels) == set(types)
    for topic, metadata in channels.items():
        assert metadata.get("topic_type_hash") == STORE.hash_rihs01(types[topic]), topic
        assert "offered_qos_profiles" in metadata


def test_output_camera_info_is_offered_with_the_input_camera_info_qos(tmp_path, enhancer):  # noqa: F811
    write_compressed_bag(tmp_path / "in", "sqlite3", "16UC1", "png", frames=2)
    enhance_bag(tmp_path / "in", tmp_path / "out", COLOR_C, DEPTH_C, INFO, enhancer=enhancer,
                progress=False)  # fmt: skip
    with Reader(tmp_path / "out") as reader:
        offered = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert offered[OUT_INFO] == offered[INFO] == [INFO_QOS]
    assert offered[OUT_IMAGE] == offered[COLOR_C] == [IMAGE_QOS]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_cli_bag_version_8_writes_version_8_metadata_that_reads_back(tmp_path, weights, storage):  # noqa: F811
    bag = write_bag(tmp_path / "in", storage, frames=2)
    out = tmp_path / "out"
    result = dkn_ros(
        "bag", str(bag.path), str(out), "--color", "/camera/color/image_raw", "--depth",
        "/camera/depth/image_raw", "--weights", str(weights), "--engine", "torch",
        "--bag-version", "8", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metadata = (out / "metadata.yaml").read_text()
    assert "\n  version: 8\n" in metadata, metadata[:400]
    assert yaml.safe_load(metadata)["rosbag2_bagfile_information"]["version"] == 8
    types, messages = read_bag(out)
    assert len(messages[OUT_IMAGE]) == 2 and types[OUT_INFO] == INFO_TYPE


def test_cli_bag_version_must_be_8_or_9(tmp_path):
    bag = write_bag(tmp_path / "in", frames=1)
    result = dkn_ros("bag", str(bag.path), str(tmp_path / "out"), "--color",
                     "/camera/color/image_raw", "--depth", "/camera/depth/image_raw",
                     "--bag-version", "7")  # fmt: skip
    assert result.returncode == 2 and "--bag-version: invalid choice: 7" in result.stderr
    assert not (tmp_path / "out").exists()
