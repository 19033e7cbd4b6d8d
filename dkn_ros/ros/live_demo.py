"""The live demo: an RGB-D camera over real ROS 2, the depth_enhancer node in its own
process, and a recorder that writes what the node published.

    dkn-ros live-demo [--frames 8] [--rate 5] [--source sequence|synthetic] [--size WxH]
                      [--scale 8] [--out DIR]

1. The node starts as a separate process (``python -m dkn_ros.ros.node``) on a private
   ROS domain (``ROS_DOMAIN_ID`` from the environment, else one picked for this run;
   discovery limited to this machine), with reliable QoS in and out.
2. This process publishes the camera (see :mod:`dkn_ros.demo`): ``color/image`` (rgb8),
   ``depth/image`` (16UC1 at 1/scale of the colour size) and ``color/camera_info``, at
   ``rate`` Hz, stamped with the ROS clock. By default the camera is the Open3D RGB-D
   sequence bundled with the package (five 640 x 480 frames, looped), its depth
   point-sampled to the low-resolution grid as a native low-resolution sensor delivers
   it; ``source="synthetic"`` renders a room with exact ground truth and Kinect-like
   noise, holes and edge shadows instead.
3. A recorder subscribes to ``depth_enhanced/image``, ``depth_enhanced/camera_info`` and
   ``/diagnostics`` and writes them, serialised as received, into a rosbag2 folder
   (``OUT/enhanced_bag``, sqlite3), plus one picture per enhanced frame
   (``OUT/frame_NNN.png``: colour | input | bicubic | enhanced | error; for a replayed
   bag, which has no reference depth, colour | input | enhanced).
4. It prints, per frame and in total: end-to-end latency (publish to receive), the
   frames enhanced and not, what the node dropped meanwhile (and why, from its
   diagnostics) and the RMSE in mm of bicubic upsampling and of the node's output
   against the reference depth: the camera's own full-resolution depth for the
   sequence (over pixels valid in it and in both outputs), the exact depth for the
   synthetic camera.

One warm-up frame is sent (and awaited) before the timed frames, so the model's first
load does not count as latency. It is neither counted nor recorded: the bag holds
exactly the enhanced frames reported, and the node's drops are reported from the
diagnostics after the warm-up to those after the last frame.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dkn_ros.ros.sync import DROP_REASONS as PAIRER_DROP_REASONS

__all__ = ["LiveDemoSummary", "camera_info_msg", "frames_from_bag", "run_live_demo"]

FASTDDS_PROFILE = Path(__file__).with_name("fastdds_large_images.xml")
OUTPUT_TOPIC = "/depth_enhanced/image"
OUTPUT_INFO_TOPIC = "/depth_enhanced/camera_info"
DIAGNOSTICS_TOPIC = "/diagnostics"


@dataclass
class LiveDemoSummary:
    """What the live demo measured, over the timed frames (the warm-up frame is neither
    counted nor recorded): ``received`` frames came back enhanced and are in the bag,
    ``node_drops`` are the node's drop counters (reason -> count) over the same frames."""

    published: int = 0
    received: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    rmse_bicubic_mm: list[float] = field(default_factory=list)
    rmse_enhanced_mm: list[float] = field(default_factory=list)
    node_drops: dict[str, int] = field(default_factory=dict)
    engine: str = ""
    bag_path: Path | None = None
    pictures: list[Path] = field(default_factory=list)

    @property
    def not_enhanced(self) -> int:
        """Published frames that did not come back (dropped by the node, lost on the
        way, or later than the demo waited)."""
        return self.published - self.received


def _replay_panel(color: np.ndarray, depth_lr: np.ndarray, enhanced: np.ndarray) -> np.ndarray:
    """colour | input depth (nearest, at colour size) | enhanced depth, colour-mapped
    with one range (the enhanced depth's 1st-99th percentile): (H, 3 W, 3) uint8.

    ``color``: (H, W, 3) RGB uint8; ``depth_lr`` and ``enhanced``: uint16 mm or float32
    m (any size up to colour size, colour size)."""
    from dkn_ros.processing import nearest_resize, to_metres
    from dkn_ros.visualise import colorize, label, side_by_side

    height, width = color.shape[:2]
    lr_m, out_m = to_metres(depth_lr), to_metres(enhanced)
    valid = out_m[np.isfinite(out_m)]
    lo, hi = np.percentile(valid, [1, 99]) if valid.size else (0.0, 1.0)
    step = height / depth_lr.shape[0]
    return side_by_side([
        label(color, "COLOUR"),
        label(colorize(nearest_resize(lr_m, (height, width)), lo, hi), f"INPUT X{step:.3g}"),
        label(colorize(out_m, lo, hi), "ENHANCED"),
    ])  # fmt: skip


def _pick_domain_id() -> int:
    """A ROS domain for this run: the environment's, else one from the process id."""
    if os.environ.get("ROS_DOMAIN_ID"):
        return int(os.environ["ROS_DOMAIN_ID"])
    return 120 + os.getpid() % 80


def camera_info_msg(intrinsics, header):
    """sensor_msgs/CameraInfo of a :class:`dkn_ros.synthetic.CameraIntrinsics` (no
    distortion) with ``header``."""
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo()
    info.header = header
    info.width, info.height = intrinsics.width, intrinsics.height
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, intrinsics.fy, intrinsics.cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, 0.0, intrinsics.fy, intrinsics.cy, 0.0,
              0.0, 0.0, 1.0, 0.0]  # fmt: skip
    return info


def _start_node(
    engine: str, model: str, require_camera_info: bool, quality: str, max_rate: float
) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "dkn_ros.ros.node", "--ros-args",
        "-p", "input_qos:=reliable", "-p", "output_qos:=reliable",
        "-p", f"engine:={engine}", "-p", f"model:={model}",
        "-p", f"quality:={quality}", "-p", f"max_rate:={float(max_rate)}",
        "-p", f"require_camera_info:={str(require_camera_info).lower()}",
        "--log-level", "warn",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop_node(process: subprocess.Popen) -> str:
    """Stop the node (SIGINT, as Ctrl-C would) and return what it printed."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.stdout.read() if process.stdout else ""


def frames_from_bag(path: str | Path, color_topic: str, depth_topic: str, info_topic: str | None,
                    limit: int) -> list[tuple]:
    """Up to ``limit`` (colour, depth, camera_info or None) rclpy messages from a rosbag2,
    colour and depth paired by header stamp (approximate time, 50 ms slop)."""
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import CameraInfo, Image

    from dkn_ros.ros.sync import ApproximateTimePairer, stamp_to_ns

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: bag not found")
    pairer = ApproximateTimePairer(queue_size=50, slop=0.05)
    pairs, info = [], None
    with Reader(path) as reader:
        types = {conn.topic: conn.msgtype for conn in reader.connections}
        for topic in (color_topic, depth_topic, info_topic):
            if topic is not None and topic not in types:
                known = ", ".join(f"{t} ({m})" for t, m in sorted(types.items()))
                raise ValueError(f"{path}: no topic {topic}; the bag has: {known}")
        topics = (color_topic, depth_topic, info_topic)
        wanted = [c for c in reader.connections if c.topic in topics]
        for connection, _, raw in reader.messages(connections=wanted):
            if connection.topic == info_topic:
                info = deserialize_message(bytes(raw), CameraInfo)
                continue
            msg = deserialize_message(bytes(raw), Image)
            stream = 0 if connection.topic == color_topic else 1
            pairs += pairer.add(stream, stamp_to_ns(msg.header.stamp), (msg, info))
        pairs += pairer.flush()
    if len(pairs) < 2:
        raise ValueError(f"{path}: found {len(pairs)} colour/depth pairs, need at least 2")
    return [(pair.color[0], pair.depth[0], pair.color[1]) for pair in pairs[:limit]]


class _Recorder:
    """Subscribes to the node's outputs and writes them into a rosbag2 as received."""

    def __init__(self, node, bag_path: Path):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.serialization import serialize_message
        from rosbags.rosbag2 import Writer
        from rosbags.typesys import Stores, get_typestore
        from sensor_msgs.msg import CameraInfo, Image

        self._serialize = serialize_message
        self._lock = threading.Lock()
        self.images: dict[int, tuple[Image, float]] = {}  # stamp ns -> (msg, receive time)
        self.diagnostics: DiagnosticArray | None = None
        self.warm_up: set[int] = set()  # stamps of warm-up frames: awaited, not recorded
        self.warmed_up = False  # a warm-up frame came back
        self._closed = False
        store = get_typestore(Stores.ROS2_JAZZY)
        self._writer = Writer(bag_path, version=9)
        self._writer.open()
        self._connections = {
            OUTPUT_TOPIC: self._writer.add_connection(
                OUTPUT_TOPIC, "sensor_msgs/msg/Image", typestore=store
            ),
            OUTPUT_INFO_TOPIC: self._writer.add_connection(
                OUTPUT_INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=store
            ),
            DIAGNOSTICS_TOPIC: self._writer.add_connection(
                DIAGNOSTICS_TOPIC, "diagnostic_msgs/msg/DiagnosticArray", typestore=store
            ),
        }
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.subscriptions = [
            node.create_subscription(Image, OUTPUT_TOPIC, self._on_image, qos),
            node.create_subscription(CameraInfo, OUTPUT_INFO_TOPIC, self._on_info, qos),
            node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diag, 10),
        ]
        self._clock = node.get_clock()

    def _write(self, topic: str, msg) -> bool:
        """Write ``msg`` unless the recorder is closed or it belongs to a warm-up frame;
        True when written. Call with the lock held."""
        if self._closed:
            return False
        if topic != DIAGNOSTICS_TOPIC and _stamp_ns(msg.header.stamp) in self.warm_up:
            self.warmed_up = True
            return False
        self._writer.write(
            self._connections[topic], self._clock.now().nanoseconds, self._serialize(msg)
        )
        return True

    def _on_image(self, msg) -> None:
        received = time.perf_counter()
        with self._lock:
            if self._write(OUTPUT_TOPIC, msg):
                self.images[_stamp_ns(msg.header.stamp)] = (msg, received)

    def _on_info(self, msg) -> None:
        with self._lock:
            self._write(OUTPUT_INFO_TOPIC, msg)

    def _on_diag(self, msg) -> None:
        with self._lock:
            if self._write(DIAGNOSTICS_TOPIC, msg) and any(
                status.name.startswith("dkn_ros") for status in msg.status
            ):
                self.diagnostics = msg

    def close(self) -> None:
        """Stop recording and close the bag: what it holds is what was counted."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()


def _stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def _node_drops(diagnostics) -> dict[str, int]:
    """The node's cumulative drop counters by reason from a DiagnosticArray."""
    drops: dict[str, int] = {}
    for status in diagnostics.status if diagnostics is not None else ():
        for item in status.values:
            if item.key.startswith("dropped ") and item.key != "dropped total":
                drops[item.key.removeprefix("dropped ")] = int(item.value)
    return drops


def _wait(executor, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"live demo: timed out after {timeout:.0f} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)


def run_live_demo(
    frames: int = 8,
    rate_hz: float = 5.0,
    size: tuple[int, int] | None = None,
    scale: int = 8,
    source: str = "sequence",
    out_dir: str | Path = "live_demo_output",
    seed: int = 0,
    model: str = "fdkn",
    engine: str = "auto",
    quality: str = "auto",
    max_rate: float | None = None,
    startup_timeout: float = 180.0,
    print_fn=print,
    bag: str | Path | None = None,
    bag_topics: tuple[str, str, str | None] = ("", "", None),
) -> LiveDemoSummary:
    """Run the live demo (see the module docstring) and return what it measured.

    ``source``, ``size``, ``scale`` and ``seed`` choose the camera, as for
    :func:`dkn_ros.demo.demo_frames` (``size`` None: 640 x 480). With ``bag``, the camera
    replays up to ``frames + 1`` colour/depth pairs of that rosbag2 (``bag_topics`` =
    colour, depth, camera_info or None), restamped with the current time at ``rate_hz``;
    there is no ground truth, so no RMSE is printed. ``quality`` is the node's (auto keeps
    up with ``max_rate``, default the camera's ``rate_hz``).
    """
    from dkn_ros.demo import compare_with_bicubic, demo_frames, demo_panel, describe_source
    from dkn_ros.imageio import write_png

    about = None if bag else describe_source(source, size, scale)  # checks before starting
    out_dir = Path(out_dir)
    bag_path = out_dir / "enhanced_bag"
    if bag_path.exists():  # a previous run's output: replaced, as the pictures are
        if not (bag_path / "metadata.yaml").is_file():
            raise FileExistsError(f"{bag_path}: exists and is not a rosbag2; choose another --out")
        shutil.rmtree(bag_path)
        for picture in out_dir.glob("frame_*.png"):
            picture.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ["ROS_DOMAIN_ID"] = str(_pick_domain_id())
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    # Shared memory large enough for camera images (see the profile's comment).
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))

    # Prepare every frame before starting anything: the camera then publishes at its rate.
    # Frame 0 is the warm-up.
    recorded = frames_from_bag(bag, *bag_topics, limit=frames + 1) if bag else []
    frames = len(recorded) - 1 if bag else frames
    scene = [] if bag else demo_frames(source, frames + 1, size, scale, seed=seed)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from dkn_ros.ros.image_codec import numpy_to_image

    has_info = not bag or all(info is not None for _, _, info in recorded)
    process = _start_node(
        engine, model, has_info, quality, max_rate if max_rate is not None else rate_hz
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    summary = LiveDemoSummary(bag_path=bag_path)
    recorder = None
    try:
        camera = rclpy.create_node("demo_camera", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        color_pub = camera.create_publisher(Image, "color/image", qos)
        depth_pub = camera.create_publisher(Image, "depth/image", qos)
        info_pub = camera.create_publisher(CameraInfo, "color/camera_info", qos)
        recorder = _Recorder(camera, bag_path)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(camera)

        def node_ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    "live demo: the depth_enhancer node exited:\n" + _stop_node(process)
                )
            publishers = [color_pub, depth_pub, info_pub]
            return all(p.get_subscription_count() > 0 for p in publishers) and (
                camera.count_publishers(OUTPUT_TOPIC) > 0
            )

        print_fn(
            f"live demo: depth_enhancer node started (pid {process.pid}, "
            f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}); waiting for it to come up"
        )
        _wait(executor, node_ready, startup_timeout, "the depth_enhancer node's topics")

        sent: dict[int, tuple[int, float]] = {}  # stamp ns -> (frame index, publish time)

        def publish(index: int) -> int:
            header = Header(stamp=camera.get_clock().now().to_msg(), frame_id="camera_color")
            if bag:
                color_msg, depth_msg, info_msg = recorded[index]
                header.frame_id = color_msg.header.frame_id
                for msg in (color_msg, depth_msg, info_msg):
                    if msg is not None:
                        msg.header.stamp = header.stamp
                if info_msg is not None:
                    info_pub.publish(info_msg)
            else:
                frame = scene[index]
                color_msg = numpy_to_image(frame.color, "rgb8", header)
                depth_msg = numpy_to_image(frame.depth_lr, "16UC1", header)
                info_pub.publish(camera_info_msg(frame.intrinsics, header))
            color_pub.publish(color_msg)
            depth_pub.publish(depth_msg)
            stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
            sent[stamp] = (index, time.perf_counter())
            return stamp

        # Warm-up: loads the model in the node; not counted. Sent again every few seconds
        # until one comes back, since discovery may still be completing on the node's side.
        recorder.warm_up.add(publish(0))
        deadline = time.monotonic() + startup_timeout
        while not recorder.warmed_up:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(
                    f"live demo: no enhanced frame within {startup_timeout:.0f} s; node log:\n"
                    + _stop_node(process)[-2000:]
                )
            resend_at = time.monotonic() + 3.0
            while time.monotonic() < resend_at and not recorder.warmed_up:
                executor.spin_once(timeout_sec=0.05)
            if not recorder.warmed_up:
                recorder.warm_up.add(publish(0))
        # The node's drop counters from here on are the timed frames' (the warm-up's
        # resends may have left unmatched messages behind).
        seen = recorder.diagnostics
        _wait(executor, lambda: recorder.diagnostics is not seen, 5.0, "diagnostics")
        drops_before = _node_drops(recorder.diagnostics)
        print_fn(
            f"live demo: publishing {frames} frames at {rate_hz:g} Hz "
            + (f"from {bag}" if bag else f"of {about}")
        )
        period = 1.0 / rate_hz
        stamps = []
        next_time = time.monotonic()
        for index in range(1, frames + 1):
            _wait(executor, lambda t=next_time: time.monotonic() >= t, period + 5, "the clock")
            stamps.append(publish(index))
            next_time += period
        settle = time.monotonic() + 15.0
        _wait(
            executor,
            lambda: all(s in recorder.images for s in stamps) or time.monotonic() > settle,
            30.0,
            "the last frames",
        )
        # One more diagnostics period so the node's counters include the last frames.
        seen = recorder.diagnostics
        _wait(executor, lambda: recorder.diagnostics is not seen, 5.0, "diagnostics")
        recorder.close()  # the bag holds exactly the frames counted below
        drops_after = _node_drops(recorder.diagnostics)
        summary.node_drops = {
            reason: count - drops_before.get(reason, 0)
            for reason, count in drops_after.items()
            if count > drops_before.get(reason, 0)
        }
        summary.engine = next(
            (item.value for status in recorder.diagnostics.status for item in status.values
             if item.key == "engine"), "",
        )  # fmt: skip

        from dkn_ros.ros.image_codec import image_to_numpy, to_rgb

        summary.published = len(stamps)
        print_fn(f"{'frame':>5} {'latency':>9} {'bicubic RMSE':>13} {'ours RMSE':>10}")
        for stamp in stamps:
            index, published_at = sent[stamp]
            if stamp not in recorder.images:
                print_fn(f"{index:>5} {'dropped':>9}")
                continue
            msg, received_at = recorder.images[stamp]
            latency = (received_at - published_at) * 1000.0
            summary.received += 1
            summary.latencies_ms.append(latency)
            if bag:  # no ground truth: colour | input | enhanced, no RMSE
                color_msg, depth_msg, _ = recorded[index]
                color = to_rgb(image_to_numpy(color_msg), color_msg.encoding)
                panel = _replay_panel(color, image_to_numpy(depth_msg), image_to_numpy(msg))
                summary.pictures.append(out_dir / f"frame_{index:03d}.png")
                write_png(summary.pictures[-1], panel)
                print_fn(f"{index:>5} {latency:>6.0f} ms {'n/a':>13} {'n/a':>10}")
                continue
            frame = scene[index]
            enhanced = np.asarray(image_to_numpy(msg))
            bicubic, rmses = compare_with_bicubic(frame.truth_m, frame.depth_lr, enhanced)
            summary.rmse_bicubic_mm.append(rmses[0])
            summary.rmse_enhanced_mm.append(rmses[1])
            panel = demo_panel(
                frame.color, frame.depth_lr, bicubic, enhanced, frame.truth_m, rmses,
                model.upper(),
            )  # fmt: skip
            summary.pictures.append(out_dir / f"frame_{index:03d}.png")
            write_png(summary.pictures[-1], panel)
            print_fn(f"{index:>5} {latency:>6.0f} ms {rmses[0]:>10.1f} mm {rmses[1]:>7.1f} mm")
    finally:
        if recorder is not None:
            recorder.close()
        rclpy.try_shutdown(context=context)
        _stop_node(process)
    _print_summary(summary, print_fn)
    return summary


def _print_summary(summary: LiveDemoSummary, print_fn) -> None:
    if summary.received and not summary.rmse_enhanced_mm:
        latency = np.asarray(summary.latencies_ms)
        print_fn(f" latency median {np.median(latency):.0f} ms, max {np.max(latency):.0f} ms")
    elif summary.received:
        latency = np.asarray(summary.latencies_ms)
        print_fn(
            f" mean {np.mean(latency):>6.0f} ms {np.mean(summary.rmse_bicubic_mm):>10.1f} mm "
            f"{np.mean(summary.rmse_enhanced_mm):>7.1f} mm   (latency median "
            f"{np.median(latency):.0f} ms, max {np.max(latency):.0f} ms)"
        )
    print_fn(
        f"frames: {summary.published} published, {summary.received} enhanced, "
        f"{summary.not_enhanced} not enhanced"
    )
    if summary.node_drops:
        drops = ", ".join(f"{reason}={n}" for reason, n in sorted(summary.node_drops.items()))
        print_fn(f"dropped by the node during these frames (its diagnostics): {drops}")
        if set(summary.node_drops) & set(PAIRER_DROP_REASONS):
            print_fn(f"  ({', '.join(PAIRER_DROP_REASONS)} count single colour or depth "
                     "messages, the other reasons colour/depth pairs)")  # fmt: skip
    elif summary.not_enhanced:
        print_fn(
            "dropped by the node during these frames (its diagnostics): none; the frames "
            "not enhanced were lost on the way or came back after the demo stopped waiting"
        )
    if summary.engine:
        print_fn(f"engine: {summary.engine}")
    print_fn(
        f"recorded: {summary.bag_path} (rosbag2, sqlite3: the {summary.received} enhanced "
        f"images, their camera_info and the diagnostics); {len(summary.pictures)} pictures "
        f"beside it ({', '.join(p.name for p in summary.pictures) or 'none'})"
    )
