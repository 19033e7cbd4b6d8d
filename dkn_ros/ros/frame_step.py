"""One frame through the enhancer, for every ROS front end: a colour Image, a depth Image
and the colour CameraInfo in; the enhanced depth Image and its CameraInfo out, or a
:class:`Drop` with a reason and a one-line text.

    frame = frame_step.check(color_msg, depth_msg, camera_info,
                             require_camera_info=True, info_topic="/camera/color/camera_info")
    out = frame_step.enhance(enhancer, frame, frame_step.RCLPY_MESSAGES)
    publish(out.image); out.camera_info and publish(out.camera_info)

The node (``dkn_ros.ros.node``) runs :func:`check` on its intake thread (message
metadata only: no pixel is read; for compressed input, which :func:`check` decodes, on
its worker) and :func:`enhance` on its worker; the offline bag path
(``dkn_ros.ros.bag``) decodes each message as it is read (:func:`to_image`,
:func:`decode_color`, :func:`decode_depth`, so that a bad message leaves its partner
unpaired) and builds the :class:`Frame` of a pair itself. sensor_msgs/CompressedImage
(image_transport's ``compressed`` and ``compressedDepth`` plugins) is accepted wherever
an Image is: :func:`to_image` decodes it (``dkn_ros.ros.compressed``). Both rclpy
messages and messages deserialised by ``rosbags`` are read through their common field
names; output messages are built by a :class:`MessageFactory` (:data:`RCLPY_MESSAGES`
here, the bag has its own).

Every check is made once per frame:

* messages (here): encoding, empty image, data layout (``step``, data length equal
  to ``step * height``; big-endian data is byte-swapped, not refused), a negative
  header stamp, the colour pixel count against ``max_pixels``, the camera_info size
  against the colour size, ``require_camera_info``;
* arrays (the :class:`~dkn_ros.enhancer.Enhancer` itself, ``processing.check_color``,
  ``check_depth``, ``infer_scale``): dtype, +-Inf, negative or no valid depth, size
  ratio and aspect; its ``processing.InputError`` becomes a :class:`Drop`;
* the output (:func:`enhance`): a frame whose enhanced depth has no valid pixel at all
  (while its input had some) is a :class:`Drop` (``invalid_output``): the network
  produced no finite value, e.g. broken weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dkn_ros import processing
from dkn_ros.ros import compressed, image_codec

__all__ = [
    "COLOR_ENCODINGS",
    "DEPTH_ENCODINGS",
    "DROP_REASONS",
    "OUTPUT_ENCODINGS",
    "RCLPY_MESSAGES",
    "Drop",
    "Frame",
    "MessageFactory",
    "Output",
    "camera_info_for",
    "check",
    "check_size",
    "check_stamp",
    "decode_color",
    "decode_depth",
    "enhance",
    "to_encoding",
    "to_image",
]

COLOR_ENCODINGS = image_codec.COLOR_ENCODINGS  # rgb8, bgr8, rgba8, bgra8, mono8
DEPTH_ENCODINGS = tuple(image_codec.DEPTH_OUTPUT_ENCODINGS)  # 16UC1, mono16 (mm), 32FC1 (m)
OUTPUT_ENCODINGS = ("", "16UC1", "32FC1")  # '' = as the depth input

#: Why a frame is dropped here (counter names of the node's diagnostics).
DROP_REASONS = (
    "unsupported_encoding",  # an encoding that cannot be read
    "empty_image",  # width or height 0
    "bad_layout",  # step / data length inconsistent with width, height and encoding
    "bad_stamp",  # a header stamp before 1970 (negative seconds): no time a camera gives
    "too_large",  # more colour pixels than max_pixels
    "size_mismatch",  # depth larger than colour, > 16x smaller, or another aspect ratio
    "invalid_depth",  # +-Inf, negative or no valid depth pixel at all
    "no_camera_info",  # require_camera_info and no colour camera_info yet
    "camera_info_mismatch",  # camera_info size differs from the colour image's
    "invalid_output",  # the enhanced depth has no valid pixel (non-finite network output)
)

# processing.InputError reasons -> drop reasons. Decoded colour is always (H, W, 3)
# uint8, so bad_color means its data could not be used as an image.
_INPUT_REASONS = {"bad_color": "bad_layout", "bad_depth": "invalid_depth",
                  "size_mismatch": "size_mismatch"}  # fmt: skip


class Drop(Exception):
    """A frame that is not enhanced: ``reason`` (one of :data:`DROP_REASONS`) and a
    one-line ``text`` saying what is wrong, with the values involved."""

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass(frozen=True)
class Frame:
    """A colour/depth pair whose messages passed the message checks (no pixel read yet).

    ``color``: (H, W, C) uint8 view of ``color_msg.data``, channels as its encoding says
    (C = 1, 3 or 4); ``depth``: (h, w) uint16 mm or float32 m view of ``depth_msg.data``;
    ``camera_info``: the colour camera_info to publish beside the output, or None.
    """

    color_msg: Any
    depth_msg: Any
    color: np.ndarray
    depth: np.ndarray
    camera_info: Any | None


@dataclass(frozen=True)
class Output:
    """The messages of one enhanced frame, both with the colour image's header."""

    image: Any  # sensor_msgs/Image: (H, W) depth at colour resolution
    camera_info: Any | None  # sensor_msgs/CameraInfo, None when the frame had none


@dataclass(frozen=True)
class MessageFactory:
    """How a front end builds its output messages.

    ``image(depth, encoding, header)``: a sensor_msgs/Image of (H, W) ``depth``
    (uint16 mm for 16UC1, float32 m for 32FC1) with the header's stamp and frame_id.
    ``camera_info(info, header)``: a copy of ``info`` with ``header``.
    """

    image: Callable[[np.ndarray, str, Any], Any]
    camera_info: Callable[[Any, Any], Any]


def _rclpy_camera_info(info: Any, header: Any) -> Any:
    out = type(info)()
    for name in info.get_fields_and_field_types():
        setattr(out, name, getattr(info, name))
    out.header = header
    return out


#: rclpy messages (``sensor_msgs.msg``), for the node.
RCLPY_MESSAGES = MessageFactory(
    image=lambda depth, encoding, header: image_codec.numpy_to_image(depth, encoding, header),
    camera_info=_rclpy_camera_info,
)


# ---------------------------------------------------------------------- message checks


def _decode(what: str, msg: Any, encodings: tuple[str, ...]) -> np.ndarray:
    if msg.encoding not in encodings:
        raise Drop(
            "unsupported_encoding",
            f"{what} image has unsupported encoding {msg.encoding!r}; expected one of "
            + ", ".join(encodings),
        )
    if msg.width == 0 or msg.height == 0:
        raise Drop("empty_image", f"{what} image is empty ({msg.width}x{msg.height})")
    try:
        return image_codec.image_to_numpy(msg)
    except image_codec.ImageError as exc:
        raise Drop("bad_layout", f"{what} image: {exc}") from None


def to_image(msg: Any, what: str) -> Any:
    """``msg`` itself when it is a sensor_msgs/Image; the decoded image
    (:class:`~dkn_ros.ros.compressed.DecodedImage`, with the fields of an Image and the
    message's header) when it is a sensor_msgs/CompressedImage of image_transport's
    ``compressed`` or ``compressedDepth`` plugin. ``what`` (colour, depth) names the
    image in the drop text.

    Raises:
        Drop: ``unsupported_encoding`` (unknown format string or encoding) or
            ``bad_layout`` (data that does not decode: bad header, garbage bytes).
    """
    if not compressed.is_compressed(msg):
        return msg
    try:
        return compressed.decode(msg)
    except compressed.CompressedError as exc:
        raise Drop(exc.reason, f"{what} image: {exc}") from None


def decode_color(msg: Any) -> np.ndarray:
    """(H, W, C) uint8 view of a colour sensor_msgs/Image (rclpy or rosbags; C as its
    encoding says), or :class:`Drop` (``unsupported_encoding``, ``empty_image``,
    ``bad_layout``)."""
    return _decode("colour", msg, COLOR_ENCODINGS)


def decode_depth(msg: Any) -> np.ndarray:
    """(h, w) view of a depth sensor_msgs/Image: uint16 mm (16UC1, mono16) or float32 m
    (32FC1), values unchecked (the enhancer checks them); or :class:`Drop` as
    :func:`decode_color`."""
    return _decode("depth", msg, DEPTH_ENCODINGS)


def camera_info_for(
    info: Any | None,
    color_shape: tuple[int, ...],
    *,
    require_camera_info: bool,
    info_topic: str,
) -> Any | None:
    """The camera_info to publish beside a frame of ``color_shape`` (H, W, ...).

    A camera_info of size 0 x 0 (size not given) is accepted. One of another size than
    the colour image is a :class:`Drop` (``camera_info_mismatch``) when
    ``require_camera_info``, else it is left out (None); no camera_info at all is a
    :class:`Drop` (``no_camera_info``) when ``require_camera_info``, else None.
    ``info_topic`` names the topic in the drop text.
    """
    height, width = color_shape[:2]
    if info is not None and (info.width, info.height) not in ((0, 0), (width, height)):
        if require_camera_info:
            raise Drop(
                "camera_info_mismatch",
                f"{info_topic} is {info.width}x{info.height} but the colour image is "
                f"{width}x{height}",
            )
        info = None
    if info is None and require_camera_info:
        raise Drop(
            "no_camera_info",
            f"no camera_info received on {info_topic} yet (set require_camera_info:=false "
            "to publish the image alone)",
        )
    return info


def check_stamp(msg: Any) -> None:
    """:class:`Drop` (``bad_stamp``) when the header stamp is negative (before 1970):
    no clock a camera or a simulation uses gives one, and ROS time cannot hold it."""
    stamp = msg.header.stamp
    if stamp.sec < 0:
        raise Drop(
            "bad_stamp",
            f"header stamp {stamp.sec} s {stamp.nanosec} ns is negative (before 1970)",
        )


def check_size(msg: Any, max_pixels: int | None) -> None:
    """:class:`Drop` (``too_large``) when the image has more than ``max_pixels`` pixels
    (None: no limit); reads the header fields only."""
    pixels = int(msg.width) * int(msg.height)
    if max_pixels is not None and pixels > max_pixels:
        raise Drop(
            "too_large",
            f"colour image {msg.width}x{msg.height} has {pixels} pixels, more than "
            f"max_pixels = {max_pixels}",
        )


def check(
    color_msg: Any,
    depth_msg: Any,
    camera_info: Any | None,
    *,
    require_camera_info: bool,
    info_topic: str,
    max_pixels: int | None = None,
) -> Frame:
    """The message checks of a pair (:func:`check_stamp`, :func:`to_image`,
    :func:`check_size` of the colour image against ``max_pixels``, None = no limit,
    :func:`decode_color`, :func:`decode_depth`, :func:`camera_info_for`): cheap for
    sensor_msgs/Image (no pixel is read); a sensor_msgs/CompressedImage is decoded here
    (the frame's messages are then the decoded images), before its size is known.
    Raises :class:`Drop`. The depth is never larger than the colour image (else
    ``size_mismatch``), so the limit bounds both."""
    check_stamp(color_msg)
    color_msg = to_image(color_msg, "colour")
    depth_msg = to_image(depth_msg, "depth")
    check_size(color_msg, max_pixels)
    color = decode_color(color_msg)
    depth = decode_depth(depth_msg)
    info = camera_info_for(
        camera_info, color.shape, require_camera_info=require_camera_info, info_topic=info_topic
    )
    return Frame(color_msg, depth_msg, color, depth, info)


# ---------------------------------------------------------------------- enhancement


def to_encoding(depth: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W) uint16 mm or float32 m depth in the units of ``encoding``: 16UC1 (uint16
    mm, 0 = invalid) or 32FC1 (float32 m, NaN = invalid); returned as is when it
    already is."""
    want = np.float32 if encoding == "32FC1" else np.uint16
    if depth.dtype == want:
        return depth
    return processing.from_metres(processing.to_metres(depth), want)


def enhance(
    enhancer: Any,
    frame: Frame,
    messages: MessageFactory,
    *,
    output_encoding: str = "",
) -> Output:
    """Enhance a checked frame and build its output messages.

    Args:
        enhancer: a :class:`dkn_ros.enhancer.Enhancer` with ``color_order="rgb"``.
        frame: from :func:`check` (or built by the caller from the decode functions).
        messages: builds the output messages (:data:`RCLPY_MESSAGES` for rclpy).
        output_encoding: ``""`` (as the depth input: 16UC1 for 16UC1 and mono16, 32FC1
            for 32FC1), ``"16UC1"`` or ``"32FC1"``.

    Returns:
        The depth image at colour resolution and the camera_info (or None), both with
        the colour image's header (stamp and frame_id).

    Raises:
        Drop: the enhancer refused the arrays (``processing.InputError``:
            ``invalid_depth``, ``size_mismatch``, ``bad_layout``), or its output has no
            valid pixel (``invalid_output``).
        Exception: anything else the enhancer raises (a failure, not bad input).
    """
    try:
        color = image_codec.to_rgb(frame.color, frame.color_msg.encoding)
    except image_codec.ImageError as exc:
        raise Drop("bad_layout", f"colour image: {exc}") from None
    try:
        depth = enhancer.enhance(color, frame.depth)
    except processing.InputError as exc:
        raise Drop(_INPUT_REASONS[exc.reason], str(exc)) from None
    if not processing.valid_mask(depth).any():
        raise Drop(
            "invalid_output",
            f"the enhanced depth has no valid pixel (all {depth.size} invalid) although the "
            "input had valid depth: the network gave no finite value (broken weights?)",
        )
    encoding = output_encoding or image_codec.DEPTH_OUTPUT_ENCODINGS[frame.depth_msg.encoding]
    header = frame.color_msg.header
    image = messages.image(to_encoding(depth, encoding), encoding, header)
    info = None if frame.camera_info is None else messages.camera_info(frame.camera_info, header)
    return Output(image, info)
