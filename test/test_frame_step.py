"""The ROS frame step (``dkn_ros.ros.frame_step``) on real rclpy and rosbags messages
with a real (small, untrained) Enhancer: one (colour, depth, camera_info) triple in,
output messages or a drop reason out; every input check made once."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("rosbags")

from ros_helpers import camera_info_msg, image_msg  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from test_bag import STORE, Header, frame, info_msg, stamp  # noqa: E402
from test_bag import image_msg as bag_image_msg  # noqa: E402

from dkn_ros import processing  # noqa: E402
from dkn_ros.enhancer import Enhancer  # noqa: E402
from dkn_ros.models import ModelCard, build_model, save_model  # noqa: E402
from dkn_ros.ros import frame_step  # noqa: E402
from dkn_ros.ros.bag import rosbags_messages  # noqa: E402
from dkn_ros.synthetic import CameraIntrinsics  # noqa: E402

STAMP = 1_700_000_123_456_789_000
COLOR_FRAME, DEPTH_FRAME = "camera_color_optical_frame", "camera_depth_optical_frame"
INFO_TOPIC = "/camera/color/camera_info"


@pytest.fixture(scope="module")
def enhancer(small_fdkn_weights) -> Enhancer:
    """A small untrained FDKN x8: the step's plumbing does not depend on training."""
    return Enhancer(weights=small_fdkn_weights, engine="torch")


def rclpy_triple(color_encoding="bgr8", depth=None, depth_encoding="16UC1"):
    """rclpy colour (160x120), depth (20x15 mm unless given) and camera_info messages."""
    color, depth_mm, (fx, fy, cx, cy) = frame(0)
    depth = depth_mm if depth is None else depth
    colour = color[:, :, ::-1] if color_encoding == "bgr8" else color
    intrinsics = CameraIntrinsics(fx, fy, cx, cy, width=160, height=120)
    return (
        image_msg(colour, color_encoding, STAMP, COLOR_FRAME),
        image_msg(depth, depth_encoding, STAMP + 2_000_000, DEPTH_FRAME),
        camera_info_msg(intrinsics, STAMP - 5_000_000, "old_info_frame"),
    )


def test_rclpy_triple_gives_depth_and_camera_info_with_the_colour_header(enhancer):
    color_msg, depth_msg, info = rclpy_triple()
    checked = frame_step.check(
        color_msg, depth_msg, info, require_camera_info=True, info_topic=INFO_TOPIC
    )
    out = frame_step.enhance(enhancer, checked, frame_step.RCLPY_MESSAGES)

    color, depth_mm, _ = frame(0)
    assert isinstance(out.image, Image) and isinstance(out.camera_info, CameraInfo)
    for header in (out.image.header, out.camera_info.header):
        assert (header.stamp.sec, header.stamp.nanosec) == divmod(STAMP, 10**9)
        assert header.frame_id == COLOR_FRAME
    assert (out.image.width, out.image.height, out.image.encoding) == (160, 120, "16UC1")
    got = np.frombuffer(bytes(out.image.data), np.uint16).reshape(120, 160)
    np.testing.assert_array_equal(got, enhancer.enhance(color, depth_mm))  # bgr8 -> RGB
    np.testing.assert_array_equal(out.camera_info.k, info.k)
    assert out.camera_info is not info and info.header.frame_id == "old_info_frame"

    metres = frame_step.enhance(
        enhancer, checked, frame_step.RCLPY_MESSAGES, output_encoding="32FC1"
    ).image
    assert metres.encoding == "32FC1"
    got_m = np.frombuffer(bytes(metres.data), np.float32).reshape(120, 160)
    np.testing.assert_array_equal(np.isnan(got_m), got == 0)
    np.testing.assert_allclose(got_m[got > 0], got[got > 0] / 1000.0, atol=6e-4)


def test_rosbags_messages_go_through_the_same_step(enhancer):
    color, depth_mm, intrinsics = frame(0)
    header = Header(stamp=stamp(STAMP), frame_id=COLOR_FRAME)
    color_msg = bag_image_msg(header, color, "rgb8")
    depth_msg = bag_image_msg(Header(stamp=stamp(STAMP), frame_id=DEPTH_FRAME), depth_mm, "mono16")
    checked = frame_step.check(
        color_msg, depth_msg, info_msg(header, intrinsics), require_camera_info=True,
        info_topic=INFO_TOPIC,
    )  # fmt: skip
    out = frame_step.enhance(enhancer, checked, rosbags_messages())

    assert out.image.header == out.camera_info.header == header
    assert out.image.encoding == "16UC1"  # mono16 millimetres are published as 16UC1
    raw = STORE.serialize_cdr(out.image, "sensor_msgs/msg/Image")
    back = STORE.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    got = np.asarray(back.data).view(np.uint16).reshape(120, 160)
    np.testing.assert_array_equal(got, enhancer.enhance(color, depth_mm))


def _short(msg):
    msg.data = msg.data[:-10]
    return msg


def _long(msg):
    msg.data = msg.data + msg.data[:10]  # 10 bytes more than step * height
    return msg


def _negative_stamp(msg):
    msg.header.stamp.sec = -1
    return msg


MESSAGE_DROPS = {
    # case: (reason, text fragment, messages (colour, depth, info) -> the broken triple)
    "colour yuv422": ("unsupported_encoding", "colour image has unsupported encoding 'yuv422'",
                      lambda c, d, i: (setattr(c, "encoding", "yuv422") or c, d, i)),
    "depth 8UC1": ("unsupported_encoding", "depth image has unsupported encoding '8UC1'",
                   lambda c, d, i: (c, setattr(d, "encoding", "8UC1") or d, i)),
    "zero-width depth": ("empty_image", "depth image is empty (0x15)",
                         lambda c, d, i: (c, setattr(d, "width", 0) or d, i)),
    "short colour data": ("bad_layout", "colour image: rgb8 image data is too short",
                          lambda c, d, i: (_short(c), d, i)),
    "long depth data": ("bad_layout", "depth image: 16UC1 image data is too long: expected "
                        "step * height = 40 * 15 = 600 bytes, received 610",
                        lambda c, d, i: (c, _long(d), i)),
    "negative stamp": ("bad_stamp", "header stamp -1 s",
                       lambda c, d, i: (_negative_stamp(c), d, i)),
    "camera_info 320x240": ("camera_info_mismatch",
                            f"{INFO_TOPIC} is 320x240 but the colour image is 160x120",
                            lambda c, d, i: (c, d, setattr(i, "width", 320)
                                             or setattr(i, "height", 240) or i)),
    "no camera_info": ("no_camera_info", f"no camera_info received on {INFO_TOPIC} yet",
                       lambda c, d, i: (c, d, None)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MESSAGE_DROPS))
def test_bad_messages_are_dropped_with_a_reason_before_any_pixel_work(case):
    reason, fragment, breaks = MESSAGE_DROPS[case]
    color_msg, depth_msg, info = breaks(*rclpy_triple(color_encoding="rgb8"))
    with pytest.raises(frame_step.Drop) as caught:
        frame_step.check(
            color_msg, depth_msg, info, require_camera_info=True, info_topic=INFO_TOPIC
        )
    assert caught.value.reason == reason and reason in frame_step.DROP_REASONS
    assert fragment in caught.value.text and "\n" not in caught.value.text


def test_camera_info_is_optional_unless_required():
    color_msg, depth_msg, info = rclpy_triple()
    info.width = 320
    for camera_info in (info, None):  # of another size, or none: the image alone
        checked = frame_step.check(
            color_msg, depth_msg, camera_info, require_camera_info=False, info_topic=INFO_TOPIC
        )
        assert checked.camera_info is None
    info.width, info.height = 0, 0  # size not given: accepted
    checked = frame_step.check(
        color_msg, depth_msg, info, require_camera_info=True, info_topic=INFO_TOPIC
    )
    assert checked.camera_info is info


def _with_inf(depth_mm):
    metres = depth_mm.astype(np.float32) / 1000.0
    metres[0, 0] = np.inf
    return metres


def _with(value):
    def make(depth_mm):
        metres = depth_mm.astype(np.float32) / 1000.0
        metres[depth_mm == 0] = np.nan
        metres[2, 3] = value
        return metres

    return make


ARRAY_DROPS = {
    # case: (reason, text fragment, depth array, encoding)
    "1e30 in depth": ("invalid_depth", "1 values above 10000 m", _with(1e30), "32FC1"),
    "3e38 in depth": ("invalid_depth", "above 10000 m (max 3e+38 m)", _with(3e38), "32FC1"),
    "20 km in depth": ("invalid_depth", "above 10000 m", _with(20_000.0), "32FC1"),
    "all-zero depth": ("invalid_depth", "no valid pixel", lambda d: np.zeros_like(d), "16UC1"),
    "Inf in depth": ("invalid_depth", "+-Inf", _with_inf, "32FC1"),
    "negative depth": ("invalid_depth", "negative",
                       lambda d: np.full(d.shape, -1.0, np.float32), "32FC1"),
    "depth 7x5": ("size_mismatch", "depth size 5x7", lambda d: d[:5, :7], "16UC1"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ARRAY_DROPS))
def test_the_enhancer_checks_the_arrays_once(enhancer, monkeypatch, case):
    """Values and sizes are checked by the enhancer, once per frame: the step turns its
    InputError into a drop and does not check again."""
    calls = {"check_depth": 0, "infer_scale": 0}
    for name in calls:
        original = getattr(processing, name)

        def counted(*args, _name=name, _original=original):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(processing, name, counted)

    color_msg, depth_msg, info = rclpy_triple()
    checked = frame_step.check(
        color_msg, depth_msg, info, require_camera_info=True, info_topic=INFO_TOPIC
    )
    frame_step.enhance(enhancer, checked, frame_step.RCLPY_MESSAGES)
    assert calls == {"check_depth": 1, "infer_scale": 1}  # a good frame: once each

    reason, fragment, make, encoding = ARRAY_DROPS[case]
    calls.update(check_depth=0, infer_scale=0)
    color_msg, depth_msg, info = rclpy_triple(depth=make(frame(0)[1]), depth_encoding=encoding)
    checked = frame_step.check(
        color_msg, depth_msg, info, require_camera_info=True, info_topic=INFO_TOPIC
    )
    assert calls == {"check_depth": 0, "infer_scale": 0}  # message checks read no pixel
    with pytest.raises(frame_step.Drop) as caught:
        frame_step.enhance(enhancer, checked, frame_step.RCLPY_MESSAGES)
    assert caught.value.reason == reason and fragment in caught.value.text
    assert calls["check_depth"] == 1


def test_max_pixels_drops_larger_colour_images_before_any_pixel_work():
    color_msg, depth_msg, info = rclpy_triple()
    kwargs = dict(require_camera_info=True, info_topic=INFO_TOPIC)
    assert frame_step.check(color_msg, depth_msg, info, max_pixels=160 * 120, **kwargs)
    with pytest.raises(frame_step.Drop) as caught:
        frame_step.check(color_msg, depth_msg, info, max_pixels=160 * 120 - 1, **kwargs)
    assert caught.value.reason == "too_large" and "too_large" in frame_step.DROP_REASONS
    assert caught.value.text == (
        "colour image 160x120 has 19200 pixels, more than max_pixels = 19199"
    )


def test_big_endian_depth_is_byte_swapped_to_the_same_output(enhancer):
    """is_bigendian = 1 is honoured (as cv_bridge does): the same depth sent in big-endian
    byte order gives the same enhanced image as in the machine's order."""
    color_msg, depth_msg, info = rclpy_triple()
    kwargs = dict(require_camera_info=True, info_topic=INFO_TOPIC)
    native = frame_step.enhance(
        enhancer, frame_step.check(color_msg, depth_msg, info, **kwargs),
        frame_step.RCLPY_MESSAGES,
    )  # fmt: skip
    depth_mm = frame(0)[1]
    big = image_msg(depth_mm.astype(">u2"), "16UC1", STAMP, DEPTH_FRAME)
    big.is_bigendian = 1
    assert bytes(big.data) != bytes(depth_msg.data)
    swapped = frame_step.enhance(
        enhancer, frame_step.check(color_msg, big, info, **kwargs), frame_step.RCLPY_MESSAGES
    )
    assert bytes(swapped.image.data) == bytes(native.image.data)


def test_depth_up_to_the_limit_gives_finite_output(enhancer):
    """Far pixels up to processing.MAX_DEPTH_M are accepted; the output has no +-Inf
    (non-finite network outputs are invalid: NaN)."""
    assert processing.MAX_DEPTH_M == 10_000.0
    color_msg, depth_msg, info = rclpy_triple(
        depth=_with(9_999.0)(frame(0)[1]), depth_encoding="32FC1"
    )
    checked = frame_step.check(
        color_msg, depth_msg, info, require_camera_info=True, info_topic=INFO_TOPIC
    )
    out = frame_step.enhance(enhancer, checked, frame_step.RCLPY_MESSAGES)
    got = np.frombuffer(bytes(out.image.data), np.float32)
    assert not np.isinf(got).any() and np.isfinite(got).any()


@pytest.fixture(scope="module")
def overflowing_enhancer(tmp_path_factory) -> Enhancer:
    """A real FDKN whose (finite) weights overflow float32 inside the network, so every
    output is NaN: what broken weights do to the node."""
    import torch

    path = tmp_path_factory.mktemp("weights") / "fdkn_overflow_x8.safetensors"
    model = build_model("fdkn", n1=16, n2=16)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1e30)
    card = ModelCard(model="fdkn", config={"n1": 16, "n2": 16}, task="upsampling", scale=8)
    save_model(model, card, path)
    return Enhancer(weights=path, engine="torch")


def test_an_output_without_any_valid_pixel_is_dropped(overflowing_enhancer):
    color_msg, depth_msg, info = rclpy_triple()
    checked = frame_step.check(
        color_msg, depth_msg, info, require_camera_info=True, info_topic=INFO_TOPIC
    )
    with pytest.raises(frame_step.Drop) as caught:
        frame_step.enhance(overflowing_enhancer, checked, frame_step.RCLPY_MESSAGES)
    assert caught.value.reason == "invalid_output" and "no valid pixel" in caught.value.text
    assert "invalid_output" in frame_step.DROP_REASONS
