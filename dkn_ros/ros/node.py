"""The ``depth_enhancer`` ROS 2 node: colour + low-resolution depth in, enhanced depth out.

    ros2 run dkn_ros depth_enhancer --ros-args -r color/image:=/camera/color/image_raw ...
    python -m dkn_ros.ros.node --ros-args --params-file config/depth_enhancer.yaml
    python -m dkn_ros.ros.node --help     # topics and parameters, without starting ROS

Subscribed topics (relative, remap them to the camera):

* ``color/image`` (sensor_msgs/Image): rgb8, bgr8, rgba8, bgra8 or mono8 guidance.
* ``depth/image`` (sensor_msgs/Image): depth registered to the colour camera, at colour
  size or 1/s of it (s = 2..16): 16UC1/mono16 millimetres (0 = invalid) or 32FC1 metres
  (NaN = invalid), REP 118.
* ``color/camera_info`` (sensor_msgs/CameraInfo): the colour camera's; the latest is kept.

With ``color_transport`` / ``depth_transport`` set as image_transport names its
transports, the node subscribes to sensor_msgs/CompressedImage on ``<resolved image
topic>/compressed`` (JPEG/PNG) or ``<resolved image topic>/compressedDepth`` (PNG/RVL)
instead, e.g. ``/camera/color/image_raw/compressed`` when ``color/image`` is remapped to
``/camera/color/image_raw``. Compressed pairs are decoded on the worker
(``frame_step.check`` there), so only the pairs that are enhanced are decoded.

Published topics:

* ``depth_enhanced/image`` (sensor_msgs/Image): depth at colour resolution, with the
  colour image's header; encoding as the depth input unless ``output_encoding`` says.
* ``depth_enhanced/camera_info`` (sensor_msgs/CameraInfo): the colour camera_info with
  the output's header, so ``depth_image_proc/point_cloud_xyzrgb`` takes the pair as is.
* ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): rates, latency, processing time,
  drops by reason, engine; every ``diagnostics_period`` seconds of the steady clock (so
  also under ``use_sim_time`` before anything is published on ``/clock``, which it then
  reports as a warning; the message's stamp is ROS time).

Parameters: see :data:`PARAMETERS` (name, default, meaning, allowed values).

Threading: the subscription callbacks only read stamps and image metadata, feed the
approximate-time pairer and make the frame step's message checks
(``dkn_ros.ros.frame_step.check``: no pixel is read); the newest complete pair goes into
a one-slot mailbox (an unprocessed older pair there is overwritten and counted as
dropped ``busy``). A plain worker thread waits on a ``threading.Condition``, runs the
frame step's enhancement (``frame_step.enhance``: the enhancer, which checks the arrays,
and the output messages) and publishes. Message intake therefore never waits for the
network, whatever executor the node is spun in (a ``SingleThreadedExecutor`` in
:func:`main`, or a host process's executor shared with other nodes), and there is never
a backlog: at most one pair waits, the newest.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import signal
import sys
import textwrap
import threading
from dataclasses import dataclass

import numpy as np
import rclpy
import rclpy.logging
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from dkn_ros.engines import ENGINES
from dkn_ros.engines.base import PRECISIONS
from dkn_ros.enhancer import INVALID_POLICIES, MAX_SCALE, QUALITIES, Enhancer
from dkn_ros.models import MODELS, ModelCard, card_path
from dkn_ros.models.registry import shipped_weights
from dkn_ros.ros import compressed, frame_step, sync

__all__ = ["DEFAULT_NODE_NAME", "PARAMETERS", "DepthEnhancerNode", "NodeConfigError", "main"]

DEFAULT_NODE_NAME = "depth_enhancer"

COLOR_TOPIC = "color/image"
DEPTH_TOPIC = "depth/image"
INFO_TOPIC = "color/camera_info"
OUTPUT_TOPIC = "depth_enhanced/image"
OUTPUT_INFO_TOPIC = "depth_enhanced/camera_info"
DIAGNOSTICS_TOPIC = "/diagnostics"
RATE_WINDOW = 30  # colour messages the measured input rate is taken over

QOS_CHOICES = ("sensor_data", "reliable")
#: image_transport's transport names: raw = sensor_msgs/Image on the topic itself,
#: others = sensor_msgs/CompressedImage on <topic>/<transport>.
COLOR_TRANSPORTS = ("raw", "compressed")
DEPTH_TRANSPORTS = ("raw", "compressedDepth", "compressed")

COLOR, DEPTH = 0, 1  # pairer streams
# On shutdown the worker may finish the frame in hand for at most this many seconds.
# Below ros2 launch's escalation (SIGTERM 5 s after SIGINT, SIGKILL 5 s later), so a
# node under launch still exits by itself; a frame running longer is abandoned (its
# result would be dropped anyway) and the process ends without tearing the inference
# engine down under it (see main()).
SHUTDOWN_WAIT_S = 5.0
THROTTLE_S = 5.0  # at most one drop warning per reason every THROTTLE_S seconds
CLOCK_WAIT_S = 5.0  # use_sim_time: warn when /clock has given no time this long after start
CLOCK_THROTTLE_S = 30.0  # and repeat the warning at most this often
DEFAULT_MAX_PIXELS = 1920 * 1080  # Full HD colour: the largest common RGB-D colour stream

# Drop reasons counted by the node itself (the pairer adds its own, e.g. clock jumps):
# those of the frame step (unsupported_encoding, empty_image, bad_layout, bad_stamp,
# too_large, size_mismatch, invalid_depth, no_camera_info, camera_info_mismatch,
# invalid_output) and the worker's.
DROP_REASONS = (
    *frame_step.DROP_REASONS,
    "busy",  # overwritten in the mailbox by a newer pair before the worker took it
    "enhance_error",  # the enhancer failed on the pair (logged as an error)
)
EXPECTED_REASONS = ("busy", "unmatched")  # by design: input faster than processing, rates differ
ERROR_REASONS = ("invalid_output",)  # the network itself gives no depth: diagnostics ERROR


class NodeConfigError(ValueError):
    """A parameter value the node cannot start with; the message is one line naming the
    parameter, the allowed values and the value received."""


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of the node: default, meaning and allowed values."""

    name: str
    default: bool | int | float | str
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None  # inclusive range for numbers
    high: float | None = None
    read_only: bool = True  # False: may be changed at runtime with ros2 param set

    @property
    def type_name(self) -> str:
        return {bool: "bool", int: "int", float: "double", str: "string"}[type(self.default)]

    def allowed(self) -> str:
        """The allowed values in words."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.low is not None:
            return f"{self.type_name} in {self.low:g}..{self.high:g}"
        return f"a {self.type_name}"

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(
            description=self.description,
            read_only=self.read_only,
            additional_constraints=self.allowed(),
        )
        if self.low is not None and isinstance(self.default, int):
            descriptor.integer_range = [
                IntegerRange(from_value=int(self.low), to_value=int(self.high), step=1)
            ]
        elif self.low is not None:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(self.low), to_value=float(self.high), step=0.0)
            ]
        return descriptor

    def check(self, value: object) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if self.choices and value not in self.choices:
            return f"{value!r} is not {self.allowed()}"
        if self.low is not None and not self.low <= value <= self.high:
            return f"{value!r} is out of range: {self.allowed()}"
        if self.name == "device" and not re.fullmatch(r"cpu|cuda(:\d+)?", str(value)):
            return f"{value!r} is not 'cpu', 'cuda' or 'cuda:N'"
        if self.name == "engine_size" and not re.fullmatch(r"[1-9]\d*x[1-9]\d*", str(value)):
            return f"{value!r} is not WIDTHxHEIGHT, e.g. '640x480'"
        return None


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("model", "fdkn", "network: 'fdkn' (fast, one pass), 'fdkn_s' (its small "
                  "distilled version) or 'dkn' (larger, slower); 'quality' chooses between "
                  "fdkn and fdkn_s", choices=tuple(MODELS)),
    ParameterSpec("quality", "auto", "'full' (FDKN as trained, float32), 'fast' (the small "
                  "distilled FDKN, bfloat16 on a CPU that has it) or 'auto': on the first "
                  "frame of each size, time each candidate on it and keep the best one that "
                  "keeps up with the input rate (max_rate if set); said in the log and on "
                  "/diagnostics. It chooses between the shipped fdkn and fdkn_s weights: "
                  "with 'weights' set or another model, that runs as it is",
                  choices=QUALITIES),
    ParameterSpec("max_rate", 0.0, "Hz: the rate 'auto' quality keeps up with; 0 = the "
                  "colour rate measured from the header stamps (30 Hz assumed until "
                  "measured)",
                  low=0.0, high=1000.0, read_only=False),
    ParameterSpec("weights", "", "weights file (.safetensors with its .json card); "
                  "'' = the shipped weights for the model and the input's scale"),
    ParameterSpec("scale", 0, "pin the shipped weights of this trained scale (2..16, 1 = "
                  "same-size) for every frame; 0 = the closest trained scale to each frame's "
                  "size ratio (any real ratio up to 16)", low=0, high=MAX_SCALE),
    ParameterSpec("engine", "auto", "inference engine: 'auto' (on CUDA TensorRT if "
                  "installed, else PyTorch; on the CPU PyTorch), 'torch', 'onnx' or "
                  "'tensorrt'; an engine that cannot run here falls back (TensorRT, PyTorch "
                  "CUDA, CPU) with one warning", choices=tuple(ENGINES)),
    ParameterSpec("device", "cpu", "'cpu', 'cuda' or 'cuda:N'; without CUDA a GPU request "
                  "runs on the CPU (one warning)"),
    ParameterSpec("precision", "fp16", "GPU arithmetic: 'fp16' (convolutions in half "
                  "precision, weighted average and residual add in fp32) or 'fp32'; the CPU "
                  "always uses fp32", choices=PRECISIONS),
    ParameterSpec("engine_size", "640x480", "WIDTHxHEIGHT of the colour images, which the "
                  "TensorRT engine is built for (cached per size); larger frames run on "
                  "PyTorch CUDA"),
    ParameterSpec("invalid", "keep", "invalid-pixel policy: 'keep' (output invalid where the "
                  "input was) or 'fill' (every pixel gets a value)",
                  choices=INVALID_POLICIES, read_only=False),
    ParameterSpec("iterations", 1, "how many times the filter is applied (4 removes texture)",
                  low=1, high=16, read_only=False),
    ParameterSpec("slop", 0.02, "seconds: largest stamp difference of a colour/depth pair",
                  low=0.0, high=10.0),
    ParameterSpec("queue_size", 10, "messages per stream the time pairer keeps",
                  low=1, high=1000),
    ParameterSpec("output_encoding", "", "'' = as the depth input (16UC1/mono16 mm or 32FC1 m),"
                  " '16UC1' (mm, 0 = invalid) or '32FC1' (m, NaN = invalid)",
                  choices=frame_step.OUTPUT_ENCODINGS, read_only=False),
    ParameterSpec("color_transport", "raw", "how colour arrives (image_transport's names): "
                  "'raw' (sensor_msgs/Image on color/image) or 'compressed' "
                  "(sensor_msgs/CompressedImage, JPEG/PNG, on <color/image resolved>/compressed)",
                  choices=COLOR_TRANSPORTS),
    ParameterSpec("depth_transport", "raw", "how depth arrives: 'raw' (sensor_msgs/Image on "
                  "depth/image), 'compressedDepth' (CompressedImage, PNG/RVL, on <depth/image "
                  "resolved>/compressedDepth) or 'compressed' (16-bit PNG on .../compressed)",
                  choices=DEPTH_TRANSPORTS),
    ParameterSpec("input_qos", "sensor_data", "input QoS: 'sensor_data' (best effort, live "
                  "cameras; also accepts reliable publishers) or 'reliable' (bag replay, "
                  "no loss)", choices=QOS_CHOICES),
    ParameterSpec("output_qos", "reliable", "output QoS: 'reliable' or 'sensor_data' "
                  "(best effort)", choices=("reliable", "sensor_data")),
    ParameterSpec("qos_depth", 5, "history depth of the input and output QoS", low=1, high=1000),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages",
                  low=0.1, high=3600.0),
    ParameterSpec("max_pixels", DEFAULT_MAX_PIXELS, "largest colour image, in pixels (width "
                  "x height), that is enhanced; larger frames are dropped (too_large) before "
                  "any pixel work. Default 1920x1080: the network's memory grows with the "
                  "pixels (measured on the CPU: 1.3 GB of RSS at 1920x1080, 4.5 GB at "
                  "3840x2160)", low=1, high=7680 * 4320, read_only=False),
    ParameterSpec("require_camera_info", True, "true: pairs that arrive before any colour "
                  "camera_info are dropped (counted, logged); false: publish the image alone "
                  "until camera_info arrives", read_only=False),
)  # fmt: skip
_SPECS = {spec.name: spec for spec in PARAMETERS}


def _qos(kind: str, depth: int) -> QoSProfile:
    reliability = (
        ReliabilityPolicy.RELIABLE if kind == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )


@dataclass(frozen=True)
class _Undecoded:
    """A pair with a CompressedImage, waiting in the mailbox: the worker decodes and
    checks it (``frame_step.check``) with the camera_info current when it was paired."""

    color_msg: Image | CompressedImage
    depth_msg: Image | CompressedImage
    camera_info: CameraInfo | None


@dataclass
class _PeriodStats:
    """Counters of one diagnostics period."""

    color_in: int = 0
    depth_in: int = 0
    published: int = 0
    latency_ms: float = 0.0
    latency_n: int = 0  # frames with a latency (none while sim time has not started)
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0


class DepthEnhancerNode(Node):
    """Enhance the depth of an RGB-D camera with DKN/FDKN (see the module docstring).

    Args:
        node_name: the node's name (default ``depth_enhancer``).
        **kwargs: the usual :class:`rclpy.node.Node` keyword arguments (``namespace``,
            ``context``, ``cli_args``, ``parameter_overrides``, ...), so the node can be
            composed with others in one process and executor.

    Raises:
        NodeConfigError: a parameter value is not allowed or the enhancer cannot be made
            (missing weights, unavailable device...); it is logged before raising.
    """

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._destroyed = False
        try:
            self._setup()
        except NodeConfigError as exc:
            self.get_logger().error(str(exc))
            self._stop_worker()
            super().destroy_node()
            raise

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._mailbox: frame_step.Frame | _Undecoded | None = None
        self._cond = threading.Condition()
        self._stats_lock = threading.Lock()
        self._pair_lock = threading.Lock()
        self._drops = dict.fromkeys(DROP_REASONS, 0)
        self._drops_at_last_report: dict[str, int] = {}
        self._drop_loggers: dict[str, object] = {}
        self._period = _PeriodStats()
        self._processed = 0
        self._camera_info: CameraInfo | None = None
        self._warned_frames = False
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._color_stamps: collections.deque[int] = collections.deque(maxlen=RATE_WINDOW)

        values = self._declare_parameters()
        self._settings = values
        self._enhancer = self._make_enhancer(values)
        self._pairer = sync.ApproximateTimePairer(
            queue_size=values["queue_size"], slop=values["slop"]
        )
        self._pairer_stats = self._pairer.stats

        self._info_topic = self.resolve_topic_name(INFO_TOPIC)
        in_qos = _qos(values["input_qos"], values["qos_depth"])
        out_qos = _qos(values["output_qos"], values["qos_depth"])
        self._image_pub = self.create_publisher(Image, OUTPUT_TOPIC, out_qos)
        self._info_pub = self.create_publisher(CameraInfo, OUTPUT_INFO_TOPIC, out_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        # camera_info first: when it and a pair are ready in the same executor cycle,
        # rclpy serves subscriptions in creation order, so the pair sees the info.
        self.create_subscription(CameraInfo, INFO_TOPIC, self._on_camera_info, in_qos)
        color_type, color_topic = self._input(COLOR_TOPIC, "color_transport", values)
        depth_type, depth_topic = self._input(DEPTH_TOPIC, "depth_transport", values)
        self._decode_on_worker = CompressedImage in (color_type, depth_type)
        self.create_subscription(color_type, color_topic, self._on_color, in_qos)
        self.create_subscription(depth_type, depth_topic, self._on_depth, in_qos)
        # The steady clock, not ROS time: under use_sim_time without /clock, ROS time
        # stands still and a ROS-time timer would never fire.
        self._started = self._last_report = self._steady.now()
        self.create_timer(
            values["diagnostics_period"], self._publish_diagnostics, clock=self._steady
        )

        self._worker = threading.Thread(
            target=self._work, name=f"{self.get_name()}_worker", daemon=True
        )
        self._worker.start()
        self.get_logger().info(
            f"ready: {self._enhancer.describe()}; subscribed to "
            f"{self.resolve_topic_name(color_topic)} ({color_type.__name__}), "
            f"{self.resolve_topic_name(depth_topic)} ({depth_type.__name__}), "
            f"{self._info_topic} ({values['input_qos']}); publishing "
            f"{self.resolve_topic_name(OUTPUT_TOPIC)}"
        )

    def _input(self, topic: str, parameter: str, values: dict) -> tuple[type, str]:
        """(message type, topic) of an image input for the image_transport transport name
        in ``values[parameter]``: ``raw`` is sensor_msgs/Image on ``topic``;
        ``compressed`` / ``compressedDepth`` is sensor_msgs/CompressedImage on the
        resolved (remapped) ``topic`` plus ``/<transport>``, as image_transport's
        subscribers name it."""
        transport = values[parameter]
        if transport == "raw":
            return Image, topic
        try:
            compressed.require_opencv()
        except ImportError as exc:
            raise NodeConfigError(f"invalid parameter {parameter} ({transport!r}): {exc}") from None
        return CompressedImage, f"{self.resolve_topic_name(topic)}/{transport}"

    def _declare_parameters(self) -> dict[str, object]:
        values: dict[str, object] = {}
        for spec in PARAMETERS:
            try:
                value = self.declare_parameter(spec.name, spec.default, spec.descriptor()).value
            except ParameterException as exc:  # out of range or wrong type
                text = " ".join(str(exc).split()).removesuffix(f": {spec.name}")
                text = text.split("Reason: ", 1)[-1]
                if isinstance(spec.default, float) and "'INTEGER'" in text:
                    text += " (write a double with a decimal point, e.g. 1.0)"
                raise NodeConfigError(
                    f"invalid parameter {spec.name} (must be {spec.allowed()}): {text}"
                ) from None
            problem = spec.check(value)
            if problem is not None:
                raise NodeConfigError(f"invalid parameter {spec.name}: {problem}")
            values[spec.name] = value
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        return values

    def set_parameters(self, parameter_list: list[Parameter]) -> list[SetParametersResult]:
        """rclpy's, and a warning for each change refused (:meth:`_log_refused`)."""
        results = super().set_parameters(parameter_list)
        for parameter, result in zip(parameter_list, results, strict=False):
            self._log_refused([parameter], result)
        return results

    def set_parameters_atomically(self, parameter_list: list[Parameter]) -> SetParametersResult:
        """rclpy's (``ros2 param set`` comes here), and a warning when refused."""
        result = super().set_parameters_atomically(parameter_list)
        self._log_refused(parameter_list, result)
        return result

    def _log_refused(self, parameters: list[Parameter], result: SetParametersResult) -> None:
        """One warning line naming the parameters, the values asked for and why they were
        refused (read-only, out of range, wrong type, not allowed)."""
        if result.successful:
            return
        asked = ", ".join(f"{p.name} := {p.value!r}" for p in parameters)
        reason = " ".join(str(result.reason).split()) or "no reason given"
        self.get_logger().warning(f"parameter change refused: {asked}: {reason}")

    def _validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            spec = _SPECS.get(parameter.name)
            if spec is None:
                continue  # use_sim_time and others: rclpy's own
            problem = spec.check(parameter.value)
            if problem is not None:
                return SetParametersResult(successful=False, reason=f"{spec.name}: {problem}")
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        settings = dict(self._settings)
        for parameter in parameters:
            if parameter.name in _SPECS:
                settings[parameter.name] = parameter.value
                self.get_logger().info(f"parameter {parameter.name} set to {parameter.value!r}")
        self._enhancer.invalid = settings["invalid"]
        self._enhancer.iterations = settings["iterations"]
        self._enhancer.max_rate = settings["max_rate"] or None
        self._settings = settings  # one assignment: the worker sees old or new, never half

    def _make_enhancer(self, values: dict[str, object]) -> Enhancer:
        # A GPU request on a machine without CUDA or TensorRT is not an error: the
        # engines fall back (TensorRT, PyTorch CUDA, CPU) and say why in one warning,
        # which reaches this node's log through the bridge below.
        model, device = values["model"], values["device"]
        _bridge_package_logging()
        width, height = (int(v) for v in values["engine_size"].split("x"))
        quality = values["quality"]
        if quality != "full" and (values["weights"] or model != "fdkn"):
            given = f"weights {values['weights']!r}" if values["weights"] else f"model {model!r}"
            self.get_logger().info(
                f"{given} given: it runs as it is (quality 'full'); quality {quality!r} "
                "chooses between the shipped fdkn and fdkn_s weights only"
            )
            quality = "full"
        try:
            enhancer = Enhancer(
                model=model,
                weights=values["weights"] or None,
                scale=values["scale"] or None,
                engine=values["engine"],
                device=device,
                invalid=values["invalid"],
                iterations=values["iterations"],
                engine_options={"precision": values["precision"], "size": (height, width)},
                quality=quality,
                max_rate=values["max_rate"] or None,
            )
            if not values["weights"] and not shipped_weights(model, enhancer.weights_dir):
                raise FileNotFoundError(
                    f"no shipped weights for model {model!r} in {enhancer.weights_dir}; "
                    "set the weights parameter to a .safetensors file"
                )
            self._warm_up(enhancer, values["scale"] or None, (height, width))
        except (ValueError, OSError, ImportError, RuntimeError) as exc:
            text = " ".join(str(exc).split())
            culprit = "weights" if values["weights"] and isinstance(exc, OSError) else None
            where = f"invalid parameter {culprit}: " if culprit else ""
            raise NodeConfigError(
                f"{where}cannot create the enhancer (model {model!r}, weights "
                f"{values['weights'] or 'shipped'!r}, engine {values['engine']!r}, device "
                f"{device!r}): {text}"
            ) from None
        return enhancer

    @staticmethod
    def _warm_up(enhancer: Enhancer, scale: int | None, size: tuple[int, int]) -> None:
        """Load the weights and run the engine once on a tiny frame, so that a bad
        engine or device fails at startup and the first real frame is not slowed by
        loading (or by the one-time ONNX export). On a GPU, once more at ``size`` (H, W,
        the ``engine_size`` parameter), which captures that size's CUDA graph (or sets
        the TensorRT engine's shape) before the first real frame."""
        if scale is None and enhancer.weights is not None:
            card = ModelCard.read(card_path(enhancer.weights))
            scale = card.trained_scale
        if scale is None:
            shipped = sorted(shipped_weights(enhancer.model_name, enhancer.weights_dir))
            scale = 8 if 8 in shipped else shipped[0]
        color = np.zeros((16 * scale, 16 * scale, 3), np.uint8)
        enhancer.enhance(color, np.full((16, 16), 1000, np.uint16))
        height, width = size
        on_gpu = "on cuda" in (enhancer.engine_description or "")
        if on_gpu and height % scale == 0 and width % scale == 0:
            color = np.zeros((height, width, 3), np.uint8)
            enhancer.enhance(color, np.full((height // scale, width // scale), 1000, np.uint16))

    # ------------------------------------------------------------------ intake

    def _on_color(self, msg: Image) -> None:
        with self._stats_lock:
            self._period.color_in += 1
            self._color_stamps.append(sync.stamp_to_ns(msg.header.stamp))
        self._on_image(COLOR, msg)

    def _input_rate(self) -> float | None:
        """The camera's colour rate: 1 / the median step between the header stamps of
        the last :data:`RATE_WINDOW` colour messages, or None before three steps. Stamps,
        not arrival times: a busy process receives in bursts, and the median ignores the
        gaps that lost messages leave."""
        with self._stats_lock:
            stamps = list(self._color_stamps)
        steps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False) if b > a)
        if len(steps) < 3:
            return None
        return 1e9 / steps[len(steps) // 2]

    def _on_depth(self, msg: Image) -> None:
        with self._stats_lock:
            self._period.depth_in += 1
        self._on_image(DEPTH, msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_image(self, stream: int, msg: Image) -> None:
        """Feed the pairer; check a completed pair's metadata and post it to the worker."""
        stamp = sync.stamp_to_ns(msg.header.stamp)
        with self._pair_lock:
            pairs = self._pairer.add(stream, stamp, msg)
            self._report_pairer_drops(stream, msg)
        if not pairs:
            return
        if len(pairs) > 1:  # rare: older pairs completed at once are superseded
            self._count_drop("busy", len(pairs) - 1)
        pair = pairs[-1]
        if self._decode_on_worker:  # decoding is pixel work: the worker checks the pair
            checked = _Undecoded(pair.color, pair.depth, self._camera_info)
        else:
            try:
                checked = self._check_pair(pair.color, pair.depth, self._camera_info)
            except frame_step.Drop as drop:
                self._drop(drop.reason, f"{_stamp_text(pair.color)}: {drop.text}")
                return
        with self._cond:
            if self._mailbox is not None:
                self._count_drop("busy")
            self._mailbox = checked
            self._cond.notify()

    def _report_pairer_drops(self, stream: int, msg: Image) -> None:
        """Log what the pairer just dropped for reasons worth a warning (rate-limited);
        the counts themselves are read from the pairer for the diagnostics."""
        stats = self._pairer.stats
        previous, self._pairer_stats = self._pairer_stats, stats
        what = ("colour", "depth")[stream]
        if stats["clock_jumps"] > previous["clock_jumps"]:
            self._throttled("clock_jump").warning(
                f"time went backwards: {what} {_stamp_text(msg)} is more than "
                f"{self._pairer.jump_threshold:g} s older than the last one (bag loop or "
                "restarted simulation?): pairing restarts from this frame, queued frames "
                "dropped",
                throttle_duration_sec=THROTTLE_S,
                throttle_time_source_type=self._steady,
            )
        dropped, before = stats["dropped"], previous["dropped"]
        if dropped["late"] > before["late"]:
            self._throttled("late").warning(
                f"dropped {what} {_stamp_text(msg)} (late, {dropped['late']} so far): its "
                "stamp is older than the newest one already received on that stream",
                throttle_duration_sec=THROTTLE_S,
                throttle_time_source_type=self._steady,
            )
        if dropped["queue_full"] > before["queue_full"]:
            self._throttled("queue_full").warning(
                f"dropped {what} frames (queue_full, {dropped['queue_full']} so far): no "
                f"partner within slop {self._pairer.slop:g} s among the last "
                f"{self._pairer.queue_size} (is the other stream publishing?)",
                throttle_duration_sec=THROTTLE_S,
                throttle_time_source_type=self._steady,
            )

    def _check_pair(
        self, color_msg: Image, depth_msg: Image, camera_info: CameraInfo | None
    ) -> frame_step.Frame:
        """The message checks of the frame step (encodings, layout, camera_info; for
        sensor_msgs/CompressedImage also the decoding); the enhancer checks the arrays
        (values, sizes) on the worker."""
        frame = frame_step.check(
            color_msg,
            depth_msg,
            camera_info,
            require_camera_info=self._settings["require_camera_info"],
            info_topic=self._info_topic,
            max_pixels=self._settings["max_pixels"],
        )
        if color_msg.header.frame_id != depth_msg.header.frame_id and not self._warned_frames:
            self._warned_frames = True
            self.get_logger().warning(
                f"colour frame_id {color_msg.header.frame_id!r} differs from depth frame_id "
                f"{depth_msg.header.frame_id!r}: the depth must be registered to the colour "
                "camera (see the README); the output uses the colour frame (warned once)"
            )
        return frame

    # ------------------------------------------------------------------ worker

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._mailbox is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                frame, self._mailbox = self._mailbox, None
            try:
                if isinstance(frame, _Undecoded):
                    frame = self._check_pair(frame.color_msg, frame.depth_msg, frame.camera_info)
                self._process(frame)
            except frame_step.Drop as drop:
                self._drop(drop.reason, f"{_stamp_text(frame.color_msg)}: {drop.text}")
            except Exception as exc:  # never let one frame kill the worker
                if self._stopping or not self.context.ok():
                    return
                self._count_drop("enhance_error")
                self._throttled("enhance_error").error(
                    f"{_stamp_text(frame.color_msg)}: enhancement failed: "
                    f"{type(exc).__name__}: {exc}",
                    throttle_duration_sec=THROTTLE_S,
                    throttle_time_source_type=self._steady,
                )

    def _process(self, frame: frame_step.Frame) -> None:
        self._enhancer.input_rate_hz = self._input_rate()  # what quality 'auto' keeps up with
        out = frame_step.enhance(
            self._enhancer,
            frame,
            frame_step.RCLPY_MESSAGES,
            output_encoding=self._settings["output_encoding"],
        )
        # Everything that could fail is done before publishing: a frame is published and
        # counted as published, or dropped with a reason, never both.
        now_ns = self.get_clock().now().nanoseconds
        stamp_ns = sync.stamp_to_ns(frame.color_msg.header.stamp)
        latency_ms = (now_ns - stamp_ns) / 1e6 if now_ns > 0 else None  # 0: no /clock yet
        timings = self._enhancer.last_timings
        if self._stopping:
            return
        self._image_pub.publish(out.image)
        if out.camera_info is not None:
            self._info_pub.publish(out.camera_info)
        with self._stats_lock:
            self._processed += 1
            period = self._period
            period.published += 1
            if latency_ms is not None:
                period.latency_ms += latency_ms
                period.latency_n += 1
            period.preprocess_ms += timings.preprocess_ms
            period.inference_ms += timings.inference_ms
            period.postprocess_ms += timings.postprocess_ms

    def _stop_worker(self, timeout: float = SHUTDOWN_WAIT_S) -> None:
        """Tell the worker to stop and wait up to ``timeout`` s for the frame in hand;
        a frame running longer is left to the (daemon) thread, with one warning."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        worker = self._worker
        if worker is None or worker is threading.current_thread():
            return
        worker.join(timeout=timeout)
        if worker.is_alive():
            self.get_logger().warning(
                f"a frame was still being enhanced {timeout:g} s after the stop request: "
                "not waiting for it (its result is dropped)"
            )

    def _worker_running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def destroy_node(self) -> None:
        """Stop the worker (it may finish the frame in hand, for at most
        :data:`SHUTDOWN_WAIT_S`), then destroy the node. Calling it again does nothing."""
        if self._destroyed:
            return
        self._destroyed = True
        self._stop_worker()
        super().destroy_node()

    # ------------------------------------------------------------------ drops

    def _count_drop(self, reason: str, count: int = 1) -> int:
        with self._stats_lock:
            self._drops[reason] = self._drops.get(reason, 0) + count
            return self._drops[reason]

    def _throttled(self, reason: str):
        """A child logger per reason: rclpy throttles per logger and call site, so one
        reason's warnings do not hide another's."""
        logger = self._drop_loggers.get(reason)
        if logger is None:
            logger = self._drop_loggers[reason] = self.get_logger().get_child(reason)
        return logger

    def _drop(self, reason: str, text: str) -> None:
        count = self._count_drop(reason)
        self._throttled(reason).warning(
            f"dropped frame ({reason}, {count} so far; at most one such line every "
            f"{THROTTLE_S:g} s): {text}",
            throttle_duration_sec=THROTTLE_S,
            throttle_time_source_type=self._steady,
        )

    @property
    def camera_info(self) -> CameraInfo | None:
        """The latest colour camera_info received, None before the first."""
        return self._camera_info

    @property
    def frames_published(self) -> int:
        """Enhanced frames published so far."""
        return self._processed

    def drop_counts(self) -> dict[str, int]:
        """Cumulative drops by reason: the node's own and the pairer's."""
        with self._stats_lock:
            counts = dict(self._drops)
        for reason, count in self._pairer.dropped.items():
            counts[reason] = counts.get(reason, 0) + count
        return counts

    # ------------------------------------------------------------------ diagnostics

    def _no_clock(self, steady: Time) -> str | None:
        """Under ``use_sim_time`` with no time from ``/clock`` yet: the problem in words
        (and a warning after :data:`CLOCK_WAIT_S` s, repeated every
        :data:`CLOCK_THROTTLE_S` s); else None."""
        clock = self.get_clock()
        if not clock.ros_time_is_active or clock.now().nanoseconds > 0:
            return None
        waited = (steady - self._started).nanoseconds / 1e9
        text = (
            f"use_sim_time is true but no time received on /clock for {waited:.0f} s: ROS "
            "time stands at 0 (play the bag with --clock, or start the simulator)"
        )
        if waited >= CLOCK_WAIT_S:
            self._throttled("no_clock").warning(
                text,
                throttle_duration_sec=CLOCK_THROTTLE_S,
                throttle_time_source_type=self._steady,
            )
        return text

    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()  # ROS time (sim time under use_sim_time): the stamp
        steady = self._steady.now()
        elapsed = (steady - self._last_report).nanoseconds / 1e9
        with self._stats_lock:
            period, self._period = self._period, _PeriodStats()
            processed = self._processed
        self._last_report = steady
        if elapsed <= 0.0:
            return
        drops = self.drop_counts()
        new_drops = {
            reason: count - self._drops_at_last_report.get(reason, 0)
            for reason, count in drops.items()
        }
        self._drops_at_last_report = drops
        status = DiagnosticStatus(
            name=f"dkn_ros: {self.get_fully_qualified_name().lstrip('/')}",
            hardware_id=f"{self.get_fully_qualified_name()} on {self._settings['device']}",
        )
        no_clock = self._no_clock(steady)
        status.level, status.message = _level(period, new_drops, no_clock)

        def mean(total: float, n: int = period.published) -> str:
            return f"{total / n:.1f}" if n else "n/a"

        values = [
            ("colour rate (Hz)", f"{period.color_in / elapsed:.2f}"),
            ("depth rate (Hz)", f"{period.depth_in / elapsed:.2f}"),
            ("output rate (Hz)", f"{period.published / elapsed:.2f}"),
            ("latency mean (ms)", mean(period.latency_ms, period.latency_n)),
            (
                "processing mean (ms)",
                mean(period.preprocess_ms + period.inference_ms + period.postprocess_ms),
            ),
            ("preprocess mean (ms)", mean(period.preprocess_ms)),
            ("inference mean (ms)", mean(period.inference_ms)),
            ("postprocess mean (ms)", mean(period.postprocess_ms)),
            ("frames published", str(processed)),
            *((f"dropped {reason}", str(count)) for reason, count in sorted(drops.items())),
            ("dropped total", str(sum(drops.values()))),
            ("clock jumps", str(self._pairer.stats["clock_jumps"])),
            ("engine", self._enhancer.describe()),
            ("model", self._settings["model"]),
            *_quality_values(self._enhancer),
            ("scale", str(self._settings["scale"] or "auto")),
            ("last scale", f"{self._enhancer.last_scale:.3g}" if processed else "none yet"),
            ("period (s)", f"{elapsed:.3f}"),
        ]
        status.values = [KeyValue(key=key, value=value) for key, value in values]
        self._diag_pub.publish(DiagnosticArray(header=Header(stamp=now.to_msg()), status=[status]))


def _quality_values(enhancer: Enhancer) -> list[tuple[str, str]]:
    """The /diagnostics entries of the quality level: what runs and, under ``auto``, the
    latencies and the rate the choice was made with."""
    values = [("quality", f"{enhancer.quality}: {enhancer.candidate.label}")]
    choice = enhancer.last_choice
    if choice is not None:
        latencies = ", ".join(f"{label} {ms:.0f}" for label, ms in choice.latencies_ms.items())
        values += [
            ("quality latencies (ms)", latencies),
            ("quality rate (Hz)", f"{choice.rate_hz:.1f} ({choice.rate_source})"),
            ("quality keeps up", "yes" if choice.keeps_up else "no: the fastest"),
        ]
    return values


def _level(
    period: _PeriodStats, new_drops: dict[str, int], no_clock: str | None = None
) -> tuple[bytes, str]:
    """Diagnostic level and message of one period. ERROR when outputs had no valid pixel
    (``invalid_output``: the network gives no depth, e.g. broken weights). WARN when
    ``use_sim_time`` has no ``/clock`` yet (``no_clock``, the text), when a stream had no
    input, on drops other than the expected ones (``busy``: newer pairs replaced older
    ones while the network ran; ``unmatched``: frames without a partner, as when the two
    streams have different rates), or when both streams had input but nothing was
    published; the message names every problem."""
    problems = [no_clock] if no_clock else []
    problems += [f"no {name} input" for name, n in (("colour", period.color_in),
                 ("depth", period.depth_in)) if n == 0]  # fmt: skip
    unexpected = {r: n for r, n in new_drops.items() if n > 0 and r not in EXPECTED_REASONS}
    if unexpected:
        problems.append(
            "dropped " + ", ".join(f"{n} {reason}" for reason, n in sorted(unexpected.items()))
        )
    if not problems and period.published == 0:
        problems.append("input but no output (no colour/depth pairs within slop?)")
    if any(reason in unexpected for reason in ERROR_REASONS):
        problems.append("outputs with no valid pixel: the network gave no finite depth "
                        "(broken weights or engine?)")
        return DiagnosticStatus.ERROR, "; ".join(problems)
    if problems:
        return DiagnosticStatus.WARN, "; ".join(problems)
    skipped = {r: n for r, n in new_drops.items() if n > 0}
    if skipped:
        text = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        return DiagnosticStatus.OK, f"ok (skipped {text})"
    return DiagnosticStatus.OK, "ok"


# ---------------------------------------------------------------------- helpers


class _RosLogBridge(logging.Handler):
    """Python ``logging`` records of the package (engine choice and fallbacks, TensorRT
    builds, weights warnings) as ROS log lines under the same logger name."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            ros_logger = rclpy.logging.get_logger(record.name)
            message = record.getMessage()
            if record.levelno >= logging.ERROR:
                ros_logger.error(message)
            elif record.levelno >= logging.WARNING:
                ros_logger.warning(message)
            elif record.levelno >= logging.INFO:
                ros_logger.info(message)
            else:
                ros_logger.debug(message)
        except Exception:  # logging must never break the node
            self.handleError(record)


def _bridge_package_logging() -> None:
    """Send the ``dkn_ros`` Python loggers to ROS logging, once per process."""
    package = logging.getLogger("dkn_ros")
    if not any(isinstance(handler, _RosLogBridge) for handler in package.handlers):
        package.addHandler(_RosLogBridge())
        package.setLevel(logging.INFO)
        package.propagate = False  # one line per message, in the ROS log only


def _stamp_text(msg: Image) -> str:
    stamp = msg.header.stamp
    return f"frame at {stamp.sec}.{stamp.nanosec:09d} s"


def usage() -> str:
    """The ``--help`` text: what the node does, its topics, and every parameter with its
    type, default and meaning (from :data:`PARAMETERS`)."""
    lines = [
        "usage: python -m dkn_ros.ros.node [-h] [--ros-args -p NAME:=VALUE ... "
        "-r FROM:=TO ... --params-file FILE]",
        "       ros2 run dkn_ros depth_enhancer [--ros-args ...]",
        "",
        "The depth_enhancer ROS 2 node: enhances the depth of an RGB-D camera with DKN/FDKN",
        "(colour + low-resolution or noisy depth in, depth at colour resolution out).",
        f"  subscribes: {COLOR_TOPIC}, {DEPTH_TOPIC} (sensor_msgs/Image), {INFO_TOPIC}",
        "    (color_transport / depth_transport: sensor_msgs/CompressedImage on",
        "    <topic>/compressed or <topic>/compressedDepth instead, as image_transport)",
        f"  publishes:  {OUTPUT_TOPIC}, {OUTPUT_INFO_TOPIC}, {DIAGNOSTICS_TOPIC}",
        "  remap the topics with --ros-args -r color/image:=/camera/color/image_raw ...",
        "",
        "parameters (--ros-args -p NAME:=VALUE, or a --params-file; 'runtime' ones can",
        "also be changed with ros2 param set):",
    ]
    for spec in PARAMETERS:
        default = spec.default
        shown = str(default).lower() if isinstance(default, bool) else repr(default)
        runtime = "" if spec.read_only else ", runtime"
        head = f"  {spec.name} ({spec.type_name}, default {shown}{runtime}): "
        lines += textwrap.wrap(
            head + spec.description, width=88, subsequent_indent="      ", break_on_hyphens=False
        )
    lines += [
        "  use_sim_time (bool, default false): ROS's own: take time from /clock (bag replay)",
        "",
        "example: python -m dkn_ros.ros.node --ros-args -p engine:=onnx -p scale:=8",
    ]
    return "\n".join(lines)


def _wants_help(argv: list[str]) -> bool:
    """True when ``-h`` or ``--help`` is among the arguments that are not ROS's."""
    try:
        own = remove_ros_args(argv)[1:]
    except RuntimeError:  # malformed ROS arguments: rclpy.init reports them
        return False
    return any(arg in ("-h", "--help") for arg in own)


class _StopSignals:
    """Python handlers for SIGINT and SIGTERM that only count the signals.

    Installed before ``rclpy.init``: rclpy's own handlers then sit on top of them, shut
    the context down and wake the executor, and chain to these. So no signal ever
    raises (``KeyboardInterrupt`` used to land inside ``destroy_node`` when ``ros2
    launch`` delivered Ctrl-C twice), and any number of them during the teardown is
    harmless."""

    NUMBERS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: list[int] = []
        for number in self.NUMBERS:
            signal.signal(number, self._handle)

    def _handle(self, number: int, frame) -> None:
        self.received.append(number)

    def ignore_from_now_on(self) -> None:
        """Ignore both signals (the process is exiting). Without this the interpreter's
        own finalisation restores their default action, and one more signal in that
        last half second killed the process (exit -2 or -15)."""
        for number in self.NUMBERS:
            signal.signal(number, signal.SIG_IGN)


def main(args: list[str] | None = None) -> int:
    """Console-script entry point: spin one ``depth_enhancer`` until shut down.

    ``args``: the command line with the program name first (default ``sys.argv``).
    ``-h``/``--help`` (outside ``--ros-args``) prints :func:`usage` and returns 0
    without starting ROS. Returns 0 on a normal shutdown, 2 (as ``dkn-ros`` does for
    user errors) when the parameters or the enhancer are unusable (the reason is
    logged as one line).

    Shutdown: SIGINT or SIGTERM, any number of them, in any order, ends the process
    with exit code 0. The frame in hand may finish for at most :data:`SHUTDOWN_WAIT_S`
    seconds; past that the process exits (0, after one warning) without waiting for it
    and without running the interpreter's teardown under the running inference engine
    (ONNX Runtime aborts the process when its threads are torn down mid-run). It sets
    the process's SIGINT/SIGTERM handlers: call it as a program's entry point, not from a
    host process (compose :class:`DepthEnhancerNode` there instead).
    """
    if _wants_help(sys.argv if args is None else args):
        print(usage())
        return 0
    stop = _StopSignals()
    rclpy.init(args=args)
    node = None
    executor = None
    try:
        executor = SingleThreadedExecutor()
        node = DepthEnhancerNode()
        executor.add_node(node)
        while rclpy.ok():
            executor.spin_once()
    except ExternalShutdownException:
        pass
    except NodeConfigError:
        return 2  # already logged by the node (one line)
    except _rclpy.RCLError:
        # A signal shut the context down between two ROS calls (rclpy's handler runs
        # asynchronously): that is the shutdown that was asked for.
        if not stop.received:
            raise
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()  # uninstalls rclpy's handlers: ours are back on top
        stop.ignore_from_now_on()
        if node is not None and node._worker_running():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # see the docstring: never finalise under a running frame
    return 0


if __name__ == "__main__":
    sys.exit(main())
