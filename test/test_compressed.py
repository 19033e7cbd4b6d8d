"""sensor_msgs/CompressedImage decoding (``dkn_ros.ros.compressed`` and the frame step):
messages built exactly as image_transport's ``compressed`` and
compressed_depth_image_transport's ``compressedDepth`` plugins build them
(``compressed_helpers``), as rclpy and as rosbags messages; malformed ones become drops
with a reason."""

from __future__ import annotations

import array
import struct

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("rclpy")
pytest.importorskip("rosbags")

from compressed_helpers import (  # noqa: E402
    DEPTH_MAX,
    compressed_depth,
    jpeg_or_png,
    quantisation,
)
from sensor_msgs.msg import CompressedImage  # noqa: E402
from test_bag import STORE, Header, frame, stamp  # noqa: E402

from dkn_ros.enhancer import Enhancer  # noqa: E402
from dkn_ros.ros import compressed, frame_step  # noqa: E402
from dkn_ros.ros.bag import rosbags_messages  # noqa: E402

STAMP = 1_700_000_123_456_789_000
INFO_TOPIC = "/camera/color/camera_info"
BagCompressedImage = STORE.types["sensor_msgs/msg/CompressedImage"]


def rclpy_msg(fmt: str, data: bytes) -> CompressedImage:
    msg = CompressedImage()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(STAMP, 10**9)
    msg.header.frame_id = "camera_color_optical_frame"
    msg.format = fmt
    msg.data = array.array("B", data)
    return msg


def bag_msg(fmt: str, data: bytes):
    """A rosbags CompressedImage, through CDR and back (numpy uint8 data)."""
    msg = BagCompressedImage(
        header=Header(stamp=stamp(STAMP), frame_id="camera_color_optical_frame"),
        format=fmt,
        data=np.frombuffer(data, np.uint8),
    )
    raw = STORE.serialize_cdr(msg, BagCompressedImage.__msgtype__)
    return STORE.deserialize_cdr(raw, BagCompressedImage.__msgtype__)


MAKERS = {"rclpy": rclpy_msg, "rosbags": bag_msg}


def depth_metres() -> np.ndarray:
    """20x15 float32 m: the synthetic scene's depth, NaN where invalid, one pixel beyond
    the plugin's depth_max (it becomes invalid)."""
    _, depth_mm, _ = frame(0)
    metres = np.where(depth_mm > 0, depth_mm / 1000.0, np.nan).astype(np.float32)
    metres[0, 0] = DEPTH_MAX + 1.0
    return metres


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("maker", sorted(MAKERS))
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_colour_round_trips_to_the_stated_encoding(maker, encoding, codec):
    color, _, _ = frame(0)  # RGB
    image = color if encoding == "rgb8" else color[:, :, ::-1]
    fmt, data = jpeg_or_png(np.ascontiguousarray(image), encoding, codec)
    assert fmt == f"{encoding}; {codec} compressed bgr8"
    decoded = compressed.decode(MAKERS[maker](fmt, data))

    assert (decoded.encoding, decoded.width, decoded.height) == (encoding, 160, 120)
    assert decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec == STAMP
    got = frame_step.decode_color(decoded)
    assert got.shape == (120, 160, 3) and got.dtype == np.uint8
    error = np.abs(got.astype(int) - image.astype(int))
    if codec == "png":
        assert error.max() == 0
    else:  # JPEG is lossy, but a channel swap would be off by ~100
        assert error.mean() < 4.0, error.mean()


def test_grey_and_legacy_formats():
    color, _, _ = frame(0)
    grey = np.ascontiguousarray(color[:, :, 1])
    fmt, data = jpeg_or_png(grey, "mono8", "png")
    assert fmt == "mono8; png compressed "
    decoded = compressed.decode(rclpy_msg(fmt, data))
    assert decoded.encoding == "mono8"
    np.testing.assert_array_equal(frame_step.decode_color(decoded), grey)
    # The oldest plugin wrote "png" / "jpeg" only: the image is bgr8.
    bgr = np.ascontiguousarray(color[:, :, ::-1])
    _, data = jpeg_or_png(bgr, "bgr8", "png")
    decoded = compressed.decode(rclpy_msg("png", data))
    assert decoded.encoding == "bgr8"
    np.testing.assert_array_equal(frame_step.decode_color(decoded), bgr)


@pytest.mark.parametrize("maker", sorted(MAKERS))
@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_16uc1_depth_round_trips_exactly(maker, codec):
    _, depth_mm, _ = frame(0)
    depth = depth_mm.copy()
    depth[1, 1] = int(DEPTH_MAX * 1000) + 5  # beyond depth_max: the plugin writes 0
    fmt, data = compressed_depth(depth, "16UC1", codec)
    assert fmt == f"16UC1; compressedDepth {codec}"
    decoded = compressed.decode(MAKERS[maker](fmt, data))
    got = frame_step.decode_depth(decoded)
    assert decoded.encoding == "16UC1" and got.dtype == np.uint16
    expected = depth.copy()
    expected[1, 1] = 0
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("maker", sorted(MAKERS))
@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_32fc1_depth_round_trips_within_the_quantisation(maker, codec):
    metres = depth_metres()
    fmt, data = compressed_depth(metres, "32FC1", codec)
    assert fmt == f"32FC1; compressedDepth {codec}"
    decoded = compressed.decode(MAKERS[maker](fmt, data))
    got = frame_step.decode_depth(decoded)
    assert decoded.encoding == "32FC1" and got.dtype == np.float32

    expected_invalid = ~(metres < DEPTH_MAX)  # NaN and beyond depth_max
    np.testing.assert_array_equal(np.isnan(got), expected_invalid)
    valid = ~expected_invalid
    assert valid.sum() > 100
    # q = floor(A / d + B) => A / (q - B) lies in [d, d / (1 - d / A)).
    quant_a, _ = quantisation()
    d, g = metres[valid].astype(np.float64), got[valid].astype(np.float64)
    step = d * d / (quant_a - d)
    assert (g >= d - 1e-5).all() and (g - d <= step + 1e-5).all(), np.max(g - d - step)


def test_legacy_compressed_depth_format_is_png():
    _, depth_mm, _ = frame(0)
    fmt, data = compressed_depth(depth_mm, "16UC1", "png")
    got = compressed.decode(rclpy_msg("16UC1; compressedDepth", data))
    np.testing.assert_array_equal(frame_step.decode_depth(got), depth_mm)


def test_rvl_decoder_on_runs_of_zeros_and_wrapping_differences():
    from compressed_helpers import _rvl_encode

    values = np.array([[0, 0, 0, 65535, 1, 1, 0], [7, 0, 0, 0, 0, 40000, 2]], np.uint16)
    payload = struct.pack("<II", 7, 2) + _rvl_encode(values)
    np.testing.assert_array_equal(compressed.decode_rvl(payload), values)


# --- the frame step: decoded pairs are enhanced -------------------------------------------


@pytest.fixture(scope="module")
def enhancer(small_fdkn_weights) -> Enhancer:
    return Enhancer(weights=small_fdkn_weights, engine="torch")


@pytest.mark.parametrize("depth_encoding", ["16UC1", "32FC1"])
def test_frame_step_enhances_a_compressed_pair_like_the_raw_one(enhancer, depth_encoding):
    color, depth_mm, _ = frame(0)
    bgr = np.ascontiguousarray(color[:, :, ::-1])
    depth = depth_mm if depth_encoding == "16UC1" else depth_metres()
    color_msg = bag_msg(*jpeg_or_png(bgr, "bgr8", "png"))
    depth_msg = bag_msg(*compressed_depth(depth, depth_encoding, "png"))
    checked = frame_step.check(
        color_msg, depth_msg, None, require_camera_info=False, info_topic=INFO_TOPIC
    )
    out = frame_step.enhance(enhancer, checked, rosbags_messages())
    assert (out.image.width, out.image.height, out.image.encoding) == (160, 120, depth_encoding)
    assert out.image.header.stamp.sec * 10**9 + out.image.header.stamp.nanosec == STAMP
    # The same arrays through the enhancer directly: the decode adds nothing.
    expected = enhancer.enhance(color, frame_step.decode_depth(compressed.decode(depth_msg)))
    got = np.frombuffer(out.image.data.tobytes(), expected.dtype).reshape(120, 160)
    np.testing.assert_array_equal(got, expected)


# --- malformed messages -----------------------------------------------------------------


def _depth_png() -> bytes:
    _, depth_mm, _ = frame(0)
    return compressed_depth(depth_mm, "16UC1", "png")[1]


MALFORMED = {
    # name: (format, data, drop reason, words of the text)
    "unknown format string": ("bgr8; webp compressed bgr8", b"\x00" * 64,
                              "unsupported_encoding", "webp"),
    "unknown encoding": ("yuv422; jpeg compressed ", b"\x00" * 64, "unsupported_encoding",
                         "yuv422"),
    "garbage jpeg": ("bgr8; jpeg compressed bgr8", b"not a jpeg at all" * 8, "bad_layout",
                     "not a JPEG or PNG"),
    "empty data": ("bgr8; jpeg compressed bgr8", b"", "bad_layout", "no data"),
    "depth header only": ("16UC1; compressedDepth png", struct.pack("<iff", 0, 0, 0),
                          "bad_layout", "12-byte header"),
    "depth header of another format": ("16UC1; compressedDepth png",
                                       struct.pack("<iff", 7, 0, 0) + _depth_png()[12:],
                                       "bad_layout", "compression format 7"),
    "depth png garbage": ("16UC1; compressedDepth png", struct.pack("<iff", 0, 0, 0) + b"x" * 80,
                          "bad_layout", "not a JPEG or PNG"),
    "unknown depth codec": ("16UC1; compressedDepth zstd", _depth_png(),
                            "unsupported_encoding", "compressedDepth [png|rvl]"),
    "32FC1 with zero quantisation": ("32FC1; compressedDepth png", _depth_png(), "bad_layout",
                                     "quantisation A=0.0"),
    "rvl cut short": ("16UC1; compressedDepth rvl",
                      struct.pack("<iffII", 0, 0, 0, 20, 15) + b"\xff\xff\xff\xff",
                      "bad_layout", "RVL"),
    "rvl huge size": ("16UC1; compressedDepth rvl",
                      struct.pack("<iffII", 0, 0, 0, 60000, 60000) + b"\x00" * 8,
                      "bad_layout", "60000x60000"),
}  # fmt: skip


@pytest.mark.parametrize("maker", sorted(MAKERS))
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_compressed_messages_are_drops_with_a_reason(maker, case):
    fmt, data, reason, words = MALFORMED[case]
    with pytest.raises(frame_step.Drop) as caught:
        frame_step.to_image(MAKERS[maker](fmt, data), "depth")
    assert caught.value.reason == reason, caught.value.text
    assert words in caught.value.text and caught.value.text.startswith("depth image: ")
    assert "\n" not in caught.value.text


def test_compressed_depth_on_the_colour_stream_is_an_unsupported_encoding():
    _, depth_mm, _ = frame(0)
    msg = rclpy_msg(*compressed_depth(depth_mm, "16UC1", "png"))
    with pytest.raises(frame_step.Drop) as caught:
        frame_step.check(msg, msg, None, require_camera_info=False, info_topic=INFO_TOPIC)
    assert caught.value.reason == "unsupported_encoding"
    assert "colour image has unsupported encoding '16UC1'" in caught.value.text
