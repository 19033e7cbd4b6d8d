#!/usr/bin/env python3
"""End-to-end latency and overhead of the ``depth_enhancer`` ROS 2 node on this machine.

    .venv/bin/python bench/node_latency.py [--duration 30] [--variants onnx@30,torch@30,onnx@2]
                                           [--wait-quiet 900] [--json out.json]

What it does (a script, not a test; about 4 minutes with the defaults):

1. Waits (polling every 10 s, up to ``--wait-quiet`` seconds) until no ``pytest`` and no
   ``dkn_ros.ros.node`` process runs on the machine, so the cores are quiet; reports
   whether they were. During the run it keeps checking for foreign ones every 5 s.
2. Pre-renders a few synthetic frames (``dkn_ros.synthetic.render_frame``, 640 x 480 rgb8
   colour; ``degrade_depth(..., KinectDegradation(scale=8))``, 80 x 60 16UC1 depth;
   camera_info) and builds their messages once: publishing only sets the header stamp.
3. Measures the pieces of the node's overhead directly, in this process:
   ``image_codec.image_to_numpy`` (+ ``to_rgb``) of the 640 x 480 rgb8 input and
   ``image_codec.numpy_to_image`` of the 640 x 480 16UC1 output, rclpy (de)serialisation
   of the rgb8 image, and the Enhancer's pre- and post-processing
   (``Enhancer.last_timings`` of direct ``enhance`` calls, engine onnx).
4. DDS transport baseline: a tiny relay node in another process (this script with
   ``--relay``) republishes every 640 x 480 rgb8 Image it receives unchanged; the
   round trip (publish here -> receive the echo here) is measured at the node variants'
   first rate.
5. For each variant ``ENGINE[/QUALITY]@RATE`` (QUALITY full, fast or auto; default
   full): starts the node in its own process,

       python -m dkn_ros.ros.node --ros-args -p input_qos:=reliable -p output_qos:=reliable
           -p engine:=ENGINE -p quality:=QUALITY -p diagnostics_period:=0.1

   (``diagnostics_period`` 0.1 s instead of the default 1 s so that each diagnostics
   period holds at most one output frame at ~4-5 fps: its "mean" values are then that
   frame's own pre-processing / inference / post-processing / latency; ``--diagnostics-
   period 1.0`` gives the plain command and period means.) All processes share a
   private ``ROS_DOMAIN_ID`` and ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``. Warm-up:
   a frame is sent (again every 3 s) until an output comes back (the model is loaded
   and the first full-size frame run), then 3 more frames at 2 Hz, and for quality
   ``auto`` 6 s more at RATE, so that the node has measured the rate and chosen. Then frames are
   published at RATE Hz for ``--duration`` seconds (colour, depth and camera_info with
   one fresh stamp), and for every output received (matched by header stamp):

   * end-to-end latency: publish wall time here -> receive wall time here;
   * from ``/diagnostics``: the node's pre-processing, inference and post-processing
     time and its own latency (stamp -> the node's publish);
   * node overhead = end-to-end - inference (conversion, pairing, waiting in the
     one-slot mailbox, pre-/post-processing, DDS transport both ways);
   * its split: output transport (end-to-end - node latency), and, for frames that
     arrived while the worker was busy (input faster than processing), the worker's
     time per frame (interval between two consecutive node publishes) minus
     pre+inference+post = the worker's own extra (colour conversion, checks, output
     conversion, ``numpy_to_image``, publish), and node latency - worker time = input
     transport + pairing + wait in the mailbox.

   Also input vs output rate, the node's drops by reason (diagnostics counters, timed
   window only) and the node process's RSS (``VmRSS`` of /proc/PID/status) every
   second: start / end / max of the timed window.

6. Unless ``--no-shm-compare``: the relay baseline and ``--shm-variants`` (default
   onnx@30,onnx@2, ``--shm-duration`` 20 s) again, in a fresh process of this script
   whose processes all load a Fast DDS profile (``FASTRTPS_DEFAULT_PROFILES_FILE``) with
   a 16 MiB shared-memory segment (``--shm-mib``): the default segment (0.5 MiB) is
   smaller than a 640 x 480 rgb8 image, which then goes over UDP loopback in fragments.
   These rows are marked ``+shm16``. The node and its code are the same.

Drops are the node's counters: ``busy`` counts pairs overwritten in the mailbox, the
pairer's reasons (``unmatched``, ``queue_full``, ...) count single colour or depth
messages. Tables are printed in Markdown; ``--json`` keeps every number, per frame.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT, SCALE = 640, 480, 8
N_FRAMES = 4  # pre-rendered frames, cycled
OUTPUT_TOPIC = "/depth_enhanced/image"
DIAGNOSTICS_TOPIC = "/diagnostics"
RELAY_IN, RELAY_OUT = "/relay/in", "/relay/out"
QUIET_PATTERNS = ("pytest", "dkn_ros.ros.node")
STARTUP_S = 180.0
AUTO_SETTLE_S = 6.0  # quality auto: seconds at the variant's rate before the timed window
SUFFIX = ""  # " +shm16" etc. when run with --fastdds-shm-mib
# The Fast DDS profile the package ships (16 MiB segment); --shm-mib changes its size.
SHM_PROFILE = Path(__file__).resolve().parents[1] / "dkn_ros" / "ros" / "fastdds_large_images.xml"


# ---------------------------------------------------------------------- small helpers


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def median(values) -> float:
    return float(statistics.median(values)) if len(values) else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN -> n/a


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    import onnxruntime
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        from importlib.metadata import version

        rclpy_version = version("ros-jazzy-rclpy")
    except Exception:  # noqa: BLE001 - informative only
        rclpy_version = "?"
    rmw = os.environ.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp"
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "rclpy": f"{rclpy_version} (ROS 2 Jazzy, {rmw})",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_start": os.getloadavg(),
    }


def _own_lineage() -> set[int]:
    """This process and its ancestors (a parent's command line may mention a pattern)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def foreign_processes(exclude: set[int] = frozenset()) -> list[str]:
    """``pid cmdline`` of processes matching QUIET_PATTERNS that are not ours."""
    skip = _own_lineage() | set(exclude)
    found = []
    for pattern in QUIET_PATTERNS:
        result = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
        for line in result.stdout.splitlines():
            pid = int(line.split(maxsplit=1)[0])
            if pid not in skip and line not in found:
                found.append(line)
    return found


CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_jiffies() -> int:
    """Machine-wide non-idle CPU time (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal


def process_jiffies(pid: int) -> int:
    """utime + stime of one process (all its threads); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


class OtherCpu:
    """CPU used by everything except the given processes between start and stop, in
    cores (machine-wide busy time minus theirs)."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.t0, self.busy0 = time.perf_counter(), busy_jiffies()
        self.own0 = sum(process_jiffies(pid) for pid in pids)

    def cores(self) -> float:
        seconds = time.perf_counter() - self.t0
        busy = busy_jiffies() - self.busy0
        own = sum(process_jiffies(pid) for pid in self.pids) - self.own0
        return max(busy - own, 0) / CLK_TCK / seconds if seconds > 0 else float("nan")


def wait_quiet(limit_s: float, poll_s: float = 10.0, log=print, max_other: float = 0.25) -> dict:
    """Poll until no foreign pytest / node process runs and the rest of the machine
    uses less than ``max_other`` cores (over 3 s), at most ``limit_s`` seconds."""
    start = time.monotonic()
    seen: list[str] = []
    while True:
        found = foreign_processes()
        if not found:
            sample = OtherCpu([os.getpid()])
            time.sleep(3.0)
            other = sample.cores()
            waited = time.monotonic() - start
            if other < max_other or waited >= limit_s:
                quiet = other < max_other
                log(
                    f"# no pytest / dkn_ros.ros.node after {waited:.0f} s; other CPU use "
                    f"{other:.2f} cores ({'quiet' if quiet else 'NOT quiet'})"
                )
                return {
                    "quiet": quiet,
                    "waited_s": round(waited, 1),
                    "seen": seen,
                    "other_cores": round(other, 2),
                }
            found = [f"other processes use {other:.2f} cores"]
        for line in found:
            if line not in seen:
                seen.append(line)
        if time.monotonic() - start >= limit_s:
            log(f"# NOT quiet after {limit_s:.0f} s; still running: {found}")
            return {
                "quiet": False,
                "waited_s": round(limit_s, 1),
                "seen": seen,
                "still": found,
                "other_cores": float("nan"),
            }
        log(f"# waiting for quiet: {len(found)} process(es) running, e.g. {found[0][:100]}")
        time.sleep(poll_s)


# ---------------------------------------------------------------------- scene


@dataclass
class Scene:
    frames: list  # RGBDFrame
    depths: list  # (60, 80) uint16
    color_msgs: list
    depth_msgs: list
    info_msgs: list


def make_scene() -> Scene:
    from dkn_ros.ros.image_codec import numpy_to_image
    from dkn_ros.ros.live_demo import camera_info_msg
    from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

    degradation = KinectDegradation(scale=SCALE)
    scene = Scene([], [], [], [], [])
    for index in range(N_FRAMES):
        frame = render_frame(index / 30.0, width=WIDTH, height=HEIGHT, seed=0)
        depth = degrade_depth(frame.depth, degradation, seed=index)
        scene.frames.append(frame)
        scene.depths.append(depth)
        scene.color_msgs.append(numpy_to_image(frame.color, "rgb8"))
        scene.depth_msgs.append(numpy_to_image(depth, "16UC1"))
        info = camera_info_msg(frame.intrinsics, scene.color_msgs[-1].header)
        scene.info_msgs.append(info)
    for msgs in (scene.color_msgs, scene.depth_msgs, scene.info_msgs):
        for msg in msgs:
            msg.header.frame_id = "camera_color_optical_frame"
    return scene


# ---------------------------------------------------------------------- in-process pieces


def time_calls(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure_pieces(scene: Scene, enhance_runs: int, log=print) -> dict:
    """Codec, rclpy (de)serialisation and Enhancer pre/post, in this process."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from dkn_ros.enhancer import Enhancer
    from dkn_ros.ros import image_codec

    color_msg, depth_msg = scene.color_msgs[0], scene.depth_msgs[0]
    output = np.ascontiguousarray(scene.frames[0].depth * 1000.0).astype(np.uint16)
    header = color_msg.header

    def decode():
        color = image_codec.to_rgb(image_codec.image_to_numpy(color_msg), "rgb8")
        image_codec.image_to_numpy(depth_msg)
        return color

    serialized = serialize_message(color_msg)
    pieces: dict[str, list[float]] = {
        "image_to_numpy rgb8 640x480 + to_rgb, 16UC1 80x60": time_calls(decode, 300),
        "numpy_to_image 16UC1 640x480 (output)": time_calls(
            lambda: image_codec.numpy_to_image(output, "16UC1", header=header), 200
        ),
        "numpy_to_image rgb8 640x480": time_calls(
            lambda: image_codec.numpy_to_image(scene.frames[0].color, "rgb8", header=header),
            200,
        ),
        "rclpy serialize rgb8 640x480": time_calls(lambda: serialize_message(color_msg), 100),
        "rclpy deserialize rgb8 640x480": time_calls(
            lambda: deserialize_message(serialized, Image), 100
        ),
    }
    log(f"# enhancer pre/post: {enhance_runs} direct Enhancer.enhance calls (engine onnx)")
    enhancer = Enhancer(engine="onnx")
    color = decode()
    pre, inf, post = [], [], []
    for run in range(enhance_runs + 2):
        frame = run % N_FRAMES
        enhancer.enhance(scene.frames[frame].color if run else color, scene.depths[frame])
        if run >= 2:  # the first two: loading, arena growth
            timings = enhancer.last_timings
            pre.append(timings.preprocess_ms)
            inf.append(timings.inference_ms)
            post.append(timings.postprocess_ms)
    pieces["Enhancer preprocess (direct)"] = pre
    pieces["Enhancer postprocess (direct)"] = post
    pieces["Enhancer inference onnx (direct, reference)"] = inf
    del enhancer
    gc.collect()
    return {
        name: {"median_ms": median(v), "p99_ms": percentile(v, 99), "runs": len(v)}
        for name, v in pieces.items()
    }


# ---------------------------------------------------------------------- ROS plumbing


def ros_env(domain: int) -> dict:
    return dict(
        os.environ,
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONUNBUFFERED="1",
    )


class Child:
    """A process of ours, output in a log file, stopped with SIGINT."""

    def __init__(self, command: list[str], env: dict, name: str):
        self.command = command
        self.log_file = tempfile.NamedTemporaryFile(
            "w+", prefix=f"node_latency-{name}-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        text = Path(self.log_file.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        if self.process.returncode in (0, -signal.SIGINT):  # keep the log of a failure
            Path(self.log_file.name).unlink(missing_ok=True)
        return self.process.returncode


class RssSampler:
    """VmRSS of one process every ``period`` s; also notes foreign pytest / node
    processes every 5 s."""

    def __init__(self, pid: int, period: float = 1.0):
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, float]] = []  # (perf_counter, MiB)
        self.foreign: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_check = 0.0
        while not self._stop.is_set():
            value = rss_mib(self.pid)
            if value is not None:
                self.samples.append((time.perf_counter(), value))
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 5.0
                for line in foreign_processes(exclude={self.pid}):
                    if line not in self.foreign:
                        self.foreign.append(line)
            self._stop.wait(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def window(self, start: float, end: float) -> list[float]:
        return [mib for t, mib in self.samples if start <= t <= end]


class Probe:
    """The measuring side: publishes the camera, records outputs and diagnostics.
    Subscriptions are served by an executor in a background thread; publishing
    happens in the caller's thread."""

    def __init__(self, context):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.camera = rclpy.create_node("synthetic_camera", context=context)
        self.color_pub = self.camera.create_publisher(Image, "color/image", qos)
        self.depth_pub = self.camera.create_publisher(Image, "depth/image", qos)
        self.info_pub = self.camera.create_publisher(CameraInfo, "color/camera_info", qos)
        self.relay_pub = self.camera.create_publisher(Image, RELAY_IN, qos)
        self.listener = rclpy.create_node("latency_probe", context=context)
        self.lock = threading.Lock()
        self.outputs: list[tuple[int, float]] = []  # (stamp ns, receive perf_counter)
        self.echoes: list[tuple[int, float]] = []
        self.diagnostics: list[tuple[float, int, dict]] = []  # (receive, stamp ns, values)
        self.listener.create_subscription(Image, OUTPUT_TOPIC, self._on_output, qos)
        self.listener.create_subscription(Image, RELAY_OUT, self._on_echo, qos)
        self.listener.create_subscription(
            DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 500
        )
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.listener)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutdown
                if not self._running:
                    return
                raise

    @staticmethod
    def _stamp(msg) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def _on_output(self, msg) -> None:
        received = time.perf_counter()
        with self.lock:
            self.outputs.append((self._stamp(msg), received))

    def _on_echo(self, msg) -> None:
        received = time.perf_counter()
        with self.lock:
            self.echoes.append((self._stamp(msg), received))

    def _on_diagnostics(self, msg) -> None:
        received = time.perf_counter()
        for status in msg.status:
            if status.name.startswith("dkn_ros"):
                values = {kv.key: kv.value for kv in status.values}
                with self.lock:
                    self.diagnostics.append((received, self._stamp(msg), values))

    def now_stamp(self):
        return self.camera.get_clock().now().to_msg()

    def publish_frame(self, scene: Scene, index: int) -> tuple[int, float]:
        """Publish frame ``index % N`` with a fresh stamp; return (stamp ns, publish time)."""
        k = index % N_FRAMES
        color, depth, info = scene.color_msgs[k], scene.depth_msgs[k], scene.info_msgs[k]
        published = time.perf_counter()
        stamp = self.now_stamp()
        for msg in (info, depth, color):
            msg.header.stamp = stamp
        self.info_pub.publish(info)
        self.depth_pub.publish(depth)
        self.color_pub.publish(color)
        return stamp.sec * 1_000_000_000 + stamp.nanosec, published

    def reset(self) -> None:
        with self.lock:
            self.outputs.clear()
            self.echoes.clear()
            self.diagnostics.clear()

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)
        self.camera.destroy_node()
        self.listener.destroy_node()


def wait_until(condition, timeout: float, what: str, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if child is not None and not child.alive():
            raise RuntimeError(f"{what}: the process exited:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            tail = f"\n{child.log_tail()}" if child is not None else ""
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        time.sleep(0.02)


def paced(rate_hz: float, duration_s: float, action) -> int:
    """Call ``action(i)`` at ``rate_hz`` for ``duration_s`` (no bursts when late)."""
    period = 1.0 / rate_hz
    count = int(round(duration_s * rate_hz))
    start = time.perf_counter()
    for index in range(count):
        target = start + index * period
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        action(index)
    remaining = start + count * period - time.perf_counter()
    if remaining > 0:  # the window is count periods long: rates are count / window
        time.sleep(remaining)
    return count


# ---------------------------------------------------------------------- relay baseline


def relay_main() -> int:
    """``--relay``: republish every Image of RELAY_IN on RELAY_OUT, unchanged."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("image_relay")
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(Image, RELAY_OUT, qos)
    node.create_subscription(Image, RELAY_IN, publisher.publish, qos)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def measure_relay(probe: Probe, scene: Scene, env: dict, rate: float, duration: float) -> dict:
    child = Child([sys.executable, str(Path(__file__).resolve()), "--relay"], env, "relay")
    try:
        wait_until(
            lambda: (
                probe.relay_pub.get_subscription_count() > 0
                and probe.listener.count_publishers(RELAY_OUT) > 0
            ),
            60,
            "the relay node",
            child,
        )
        msg = scene.color_msgs[0]
        sent: dict[int, float] = {}
        publish_ms: list[float] = []

        def send(_index: int) -> None:
            published = time.perf_counter()
            msg.header.stamp = probe.now_stamp()
            probe.relay_pub.publish(msg)
            publish_ms.append((time.perf_counter() - published) * 1e3)
            sent[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = published

        deadline = time.monotonic() + 30
        while not probe.echoes:  # warm-up: discovery may still be completing
            send(0)
            time.sleep(0.2)
            if time.monotonic() > deadline:
                raise RuntimeError("relay: no echo within 30 s\n" + child.log_tail())
        time.sleep(0.5)
        probe.reset()
        sent.clear()
        publish_ms.clear()
        count = paced(rate, duration, send)
        time.sleep(1.0)
        with probe.lock:
            echoes = list(probe.echoes)
    finally:
        child.stop()
    rtt = [(received - sent[stamp]) * 1e3 for stamp, received in echoes if stamp in sent]
    return {
        "name": "dds-relay rgb8 640x480 (round trip)" + SUFFIX,
        "rate_hz": rate,
        "window_s": duration,
        "publish_call_median_ms": median(publish_ms),
        "publish_call_p99_ms": percentile(publish_ms, 99),
        "sent": count,
        "received": len(rtt),
        "rtt_ms": rtt,
        "median_ms": median(rtt),
        "p99_ms": percentile(rtt, 99),
        "max_ms": max(rtt) if rtt else float("nan"),
    }


# ---------------------------------------------------------------------- node variants


@dataclass
class Variant:
    engine: str
    rate_hz: float
    quality: str = "full"

    @property
    def name(self) -> str:
        shown = "" if self.quality == "full" else f"/{self.quality}"
        return f"{self.engine}{shown}@{self.rate_hz:g}Hz{SUFFIX}"


@dataclass
class VariantResult:
    variant: Variant
    command: list[str] = field(default_factory=list)
    startup_s: float = 0.0
    warmup_s: float = 0.0
    sent: int = 0
    window_s: float = 0.0
    frames: list[dict] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)
    busy: bool = False
    other_cores: float = float("nan")
    rss_series: list = field(default_factory=list)
    rss: dict[str, float] = field(default_factory=dict)
    node_colour_rate_hz: float = float("nan")
    engine_description: str = ""
    foreign: list[str] = field(default_factory=list)
    per_frame_exact: int = 0


def _drops(values: dict) -> dict[str, int]:
    return {
        key.removeprefix("dropped "): int(value)
        for key, value in values.items()
        if key.startswith("dropped ") and key != "dropped total"
    }


def per_frame_diagnostics(diagnostics: list[tuple[float, int, dict]]) -> dict[int, dict]:
    """Node-side numbers by the cumulative index of the published frame. A period with
    exactly one frame gives that frame's own values; more than one, their mean."""
    by_index: dict[int, dict] = {}
    previous = None
    for _received, stamp, values in diagnostics:
        published = int(values.get("frames published", "0"))
        if previous is not None and published > previous:
            count = published - previous
            try:
                numbers = {
                    "pre_ms": float(values["preprocess mean (ms)"]),
                    "inf_ms": float(values["inference mean (ms)"]),
                    "post_ms": float(values["postprocess mean (ms)"]),
                    "node_latency_ms": float(values["latency mean (ms)"]),
                    "diag_stamp_ns": stamp,
                    "exact": count == 1,
                }
            except (KeyError, ValueError):
                numbers = None
            if numbers is not None:
                for index in range(previous + 1, published + 1):
                    by_index[index] = numbers
        previous = published if previous is None else max(previous, published)
    return by_index


def run_variant(
    variant: Variant, probe: Probe, scene: Scene, env: dict, args, log=print
) -> VariantResult:
    command = [
        sys.executable, "-m", "dkn_ros.ros.node", "--ros-args",
        "-p", "input_qos:=reliable", "-p", "output_qos:=reliable",
        "-p", f"engine:={variant.engine}", "-p", f"quality:={variant.quality}",
        "-p", f"diagnostics_period:={args.diagnostics_period!r}",
    ]  # fmt: skip
    result = VariantResult(variant, command=command)
    probe.reset()
    started = time.perf_counter()
    child = Child(command, env, variant.engine)
    sampler = RssSampler(child.pid)
    try:
        wait_until(
            lambda: (
                all(
                    p.get_subscription_count() > 0
                    for p in (probe.color_pub, probe.depth_pub, probe.info_pub)
                )
                and probe.listener.count_publishers(OUTPUT_TOPIC) > 0
            ),
            STARTUP_S,
            f"{variant.name}: the node's topics",
            child,
        )
        result.startup_s = time.perf_counter() - started

        # Warm-up: until one output comes back, then 3 more frames at 2 Hz.
        warm = time.perf_counter()
        deadline = time.monotonic() + STARTUP_S
        while not probe.outputs:
            probe.publish_frame(scene, 0)
            resend = time.monotonic() + 3.0
            while not probe.outputs and time.monotonic() < resend:
                if not child.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"{variant.name}: no output\n{child.log_tail()}")
                time.sleep(0.02)
        for index in range(1, 4):
            probe.publish_frame(scene, index)
            time.sleep(0.5)
        if variant.quality == "auto":
            # The node has seen 2 Hz so far: AUTO_SETTLE_S more at the variant's rate, so
            # that it measures the rate and makes its choice before the timed window.
            until = time.perf_counter() + AUTO_SETTLE_S
            index = 0
            while time.perf_counter() < until:
                probe.publish_frame(scene, index % len(scene.frames))
                index += 1
                time.sleep(1.0 / variant.rate_hz)

        # Quiet point: every output the node published has arrived, for 0.5 s.
        def settled() -> bool:
            with probe.lock:
                if not probe.diagnostics:
                    return False
                received, _, values = probe.diagnostics[-1]
                return (
                    int(values["frames published"]) == len(probe.outputs)
                    and time.perf_counter() - probe.outputs[-1][1] > 0.5
                    and received > probe.outputs[-1][1]
                )

        try:
            wait_until(settled, 15, f"{variant.name}: warm-up outputs", child)
        except RuntimeError as exc:
            log(f"# warning: {exc}".splitlines()[0])
        result.warmup_s = time.perf_counter() - warm
        with probe.lock:
            _, _, values0 = probe.diagnostics[-1]
            n_diag0 = len(probe.diagnostics)
        published0 = int(values0["frames published"])
        drops0 = _drops(values0)

        # Timed run.
        sent: dict[int, float] = {}

        def send(index: int) -> None:
            stamp, published = probe.publish_frame(scene, index)
            sent[stamp] = published

        other_cpu = OtherCpu([os.getpid(), child.pid])
        t_start = time.perf_counter()
        result.sent = paced(variant.rate_hz, args.duration, send)
        t_end = time.perf_counter()
        result.other_cores = other_cpu.cores()
        result.window_s = t_end - t_start
        rss_window = sampler.window(t_start, t_end)

        # Drain: the node's published count has not moved for 1.5 s (the frames in
        # hand and in the mailbox are done) and every output it published has arrived.
        state = {"count": -1, "since": time.monotonic()}

        def drained() -> bool:
            with probe.lock:
                if not probe.diagnostics:
                    return False
                count = int(probe.diagnostics[-1][2]["frames published"])
                received = len(probe.outputs)
            if count != state["count"]:
                state.update(count=count, since=time.monotonic())
            return time.monotonic() - state["since"] > 1.5 and received >= count

        try:
            wait_until(drained, 15, f"{variant.name}: the last outputs", child)
        except RuntimeError as exc:
            log(f"# warning: {exc}".splitlines()[0])
        with probe.lock:
            outputs = list(probe.outputs)
            diagnostics = list(probe.diagnostics)
    finally:
        sampler.stop()
        child.stop()
    result.foreign = sampler.foreign

    # Per frame.
    timed = [(stamp, received) for stamp, received in outputs if stamp in sent]
    node_side = per_frame_diagnostics(diagnostics[max(n_diag0 - 1, 0) :])
    first_timed = outputs.index(timed[0]) if timed else 0
    # The k-th output received after the warm-up ones is the node's frame published0+k
    # (reliable QoS, in order); checked against the count the node reports.
    final_published = int(diagnostics[-1][2]["frames published"])
    index_ok = final_published - published0 == len(outputs) - first_timed == len(timed)
    if not index_ok:
        log(
            f"# warning: {variant.name}: node published {final_published - published0} "
            f"frames in the window, received {len(timed)}; per-frame node numbers unmatched"
        )
    # Busy (input faster than processing): the worker goes from one pair straight to
    # the next, so the interval between two node publishes is the worker's time per
    # frame. Idle (input slower): each pair waits for nothing.
    processing_ms = [
        n["pre_ms"] + n["inf_ms"] + n["post_ms"] for n in node_side.values() if n["exact"]
    ]
    busy = 1000.0 / variant.rate_hz < median(processing_ms) if processing_ms else False
    result.busy = busy
    previous_pub_ns = None
    for k, (stamp, received) in enumerate(timed):
        frame = {"stamp_ns": stamp, "e2e_ms": (received - sent[stamp]) * 1e3}
        node = node_side.get(published0 + 1 + k) if index_ok else None
        if node is not None:
            frame.update({key: node[key] for key in ("pre_ms", "inf_ms", "post_ms")})
            frame["node_latency_ms"] = node["node_latency_ms"]
            frame["exact"] = node["exact"]
            frame["overhead_ms"] = frame["e2e_ms"] - node["inf_ms"]
            frame["out_transport_ms"] = frame["e2e_ms"] - node["node_latency_ms"]
            pub_ns = stamp + node["node_latency_ms"] * 1e6  # the node's publish, ROS time
            processing = node["pre_ms"] + node["inf_ms"] + node["post_ms"]
            if busy and previous_pub_ns is not None and node["exact"]:
                worker = (pub_ns - previous_pub_ns) / 1e6
                frame["worker_ms"] = worker
                frame["worker_extra_ms"] = worker - processing
                frame["input_wait_ms"] = node["node_latency_ms"] - worker
            elif not busy and node["exact"]:
                frame["in_node_other_ms"] = node["node_latency_ms"] - processing
            previous_pub_ns = pub_ns
        else:
            previous_pub_ns = None
        result.frames.append(frame)
    result.per_frame_exact = sum(1 for f in result.frames if f.get("exact"))

    drops1 = _drops(diagnostics[-1][2])
    result.drops = {
        reason: drops1.get(reason, 0) - drops0.get(reason, 0)
        for reason in sorted(set(drops0) | set(drops1))
        if drops1.get(reason, 0) - drops0.get(reason, 0)
    }
    in_window = [
        float(v["colour rate (Hz)"])
        for received, _, v in diagnostics
        if t_start + 0.5 < received < t_end
    ]
    result.node_colour_rate_hz = float(np.mean(in_window)) if in_window else float("nan")
    result.engine_description = diagnostics[-1][2].get("engine", "")
    if rss_window:
        result.rss = {
            "start": rss_window[0],
            "end": rss_window[-1],
            "max": max(rss_window),
            "min": min(rss_window),
            "samples": len(rss_window),
        }
        times = [t for t, _ in sampler.samples if t_start <= t <= t_end]
        if len(times) > 2:
            slope = np.polyfit(np.asarray(times) - times[0], rss_window, 1)[0]
            result.rss["slope_mib_per_min"] = float(slope * 60.0)
    result.rss_series = [(round(t - t_start, 2), round(mib, 1)) for t, mib in sampler.samples]
    peak = max((mib for _, mib in sampler.samples), default=float("nan"))
    result.rss["process_max"] = peak
    return result


def summarise(result: VariantResult) -> dict:
    frames = result.frames

    def col(key):
        return [f[key] for f in frames if key in f]

    e2e = col("e2e_ms")
    third = max(len(e2e) // 3, 1)
    return {
        "variant": result.variant.name,
        "engine": result.engine_description,
        "frames_out": len(frames),
        "sent": result.sent,
        "window_s": result.window_s,
        "in_fps": result.sent / result.window_s if result.window_s else float("nan"),
        "out_fps": len(frames) / result.window_s if result.window_s else float("nan"),
        "node_colour_rate_hz": result.node_colour_rate_hz,
        "e2e_median": median(e2e),
        "e2e_p99": percentile(e2e, 99),
        "e2e_max": max(e2e) if e2e else float("nan"),
        "e2e_first_third_median": median(e2e[:third]),
        "e2e_last_third_median": median(e2e[-third:]),
        "overhead_median": median(col("overhead_ms")),
        "overhead_p99": percentile(col("overhead_ms"), 99),
        "pre_median": median(col("pre_ms")),
        "inf_median": median(col("inf_ms")),
        "inf_p99": percentile(col("inf_ms"), 99),
        "post_median": median(col("post_ms")),
        "node_latency_median": median(col("node_latency_ms")),
        "out_transport_median": median(col("out_transport_ms")),
        "out_transport_p99": percentile(col("out_transport_ms"), 99),
        "worker_extra_median": median(col("worker_extra_ms")),
        "worker_extra_p99": percentile(col("worker_extra_ms"), 99),
        "worker_frames": len(col("worker_extra_ms")),
        "input_wait_median": median(col("input_wait_ms")),
        "input_wait_p99": percentile(col("input_wait_ms"), 99),
        "in_node_other_median": median(col("in_node_other_ms")),
        "in_node_other_p99": percentile(col("in_node_other_ms"), 99),
        "in_node_other_frames": len(col("in_node_other_ms")),
        "per_frame_exact": result.per_frame_exact,
        "drops": result.drops,
        "busy": result.busy,
        "other_cores": result.other_cores,
        "rss_series": result.rss_series,
        "rss": result.rss,
        "startup_s": result.startup_s,
        "warmup_s": result.warmup_s,
        "foreign_processes": result.foreign,
    }


# ---------------------------------------------------------------------- report


def print_report(info: dict, pieces: dict, relays: list[dict], summaries: list[dict], out=print):
    quiet = info["quiet"]
    out(
        f"# {info['cpu']}, {info['cores']} cores, python {info['python']}, torch "
        f"{info['torch']}, onnxruntime {info['onnxruntime']}, rclpy {info['rclpy']}; "
        f"{info['date']}; load average at start {info['loadavg_start'][0]:.2f}; quiet: "
        f"{'yes' if quiet['quiet'] else 'NO'} (waited {quiet['waited_s']:.0f} s; other CPU "
        f"{quiet['other_cores']:.2f} cores)"
    )
    out("")
    out(
        "| variant | e2e median ms | e2e p99 ms | out fps | in fps | overhead median ms "
        "| overhead p99 ms | drops (timed window) | RSS start/end/max MiB |"
    )
    out("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for s in summaries:
        drops = ", ".join(f"{k} {v}" for k, v in s["drops"].items()) or "none"
        rss = s["rss"]
        out(
            f"| {s['variant']} | {fmt(s['e2e_median'])} | {fmt(s['e2e_p99'])} | "
            f"{fmt(s['out_fps'], 2)} | {fmt(s['in_fps'], 2)} | {fmt(s['overhead_median'])} | "
            f"{fmt(s['overhead_p99'])} | {drops} | "
            f"{rss.get('start', 0):.0f} / {rss.get('end', 0):.0f} / {rss.get('max', 0):.0f} |"
        )
    for relay in relays:
        out(
            f"| baseline: {relay['name']} @{relay['rate_hz']:g}Hz | {fmt(relay['median_ms'])} "
            f"| {fmt(relay['p99_ms'])} | {relay['received'] / relay['window_s']:.2f} | "
            f"{relay['sent'] / relay['window_s']:.2f} | | | lost "
            f"{relay['sent'] - relay['received']} | |"
        )
    out("")
    out("Where the time goes (per frame, ms: median, p99 in brackets):")
    out("")
    out(
        "| variant | worker | inference | pre | post | node latency: stamp -> node publish "
        "| out transport: e2e - node latency | busy: stamp -> worker start (input transport, "
        "pairing, mailbox wait) | busy: worker time beyond pre+inf+post (conversions, "
        "publish, any wait for a pair) | idle: node latency - pre - inf - post (input "
        "transport, pairing, conversions, publish) |"
    )
    out("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in summaries:
        out(
            f"| {s['variant']} | {'busy' if s['busy'] else 'idle'} | {fmt(s['inf_median'])} "
            f"({fmt(s['inf_p99'])}) | {fmt(s['pre_median'])} | {fmt(s['post_median'])} | "
            f"{fmt(s['node_latency_median'])} | {fmt(s['out_transport_median'])} "
            f"({fmt(s['out_transport_p99'])}) | {fmt(s['input_wait_median'])} "
            f"({fmt(s['input_wait_p99'])}) | {fmt(s['worker_extra_median'])} "
            f"({fmt(s['worker_extra_p99'])}) | {fmt(s['in_node_other_median'])} "
            f"({fmt(s['in_node_other_p99'])}) |"
        )
    out("")
    out("Pieces measured directly (640 x 480):")
    out("")
    out("| piece | median ms | p99 ms | runs |")
    out("|---|---:|---:|---:|")
    for name, p in pieces.items():
        out(f"| {name} | {p['median_ms']:.3f} | {p['p99_ms']:.3f} | {p['runs']} |")
    for relay in relays:
        out(
            f"| rclpy publish() call, rgb8 640x480, 1 subscriber{relay['suffix']} | "
            f"{relay['publish_call_median_ms']:.3f} | {relay['publish_call_p99_ms']:.3f} | "
            f"{relay['sent']} |"
        )
        out(
            f"| DDS relay round trip rgb8 640x480{relay['suffix']} (2 x transport + relay's "
            f"rclpy receive/publish) | {relay['median_ms']:.3f} | {relay['p99_ms']:.3f} | "
            f"{relay['received']} |"
        )
    out("")
    for s in summaries:
        rss = s["rss"]
        out(
            f"# {s['variant']}: {s['engine']}; startup {s['startup_s']:.1f} s, warm-up "
            f"{s['warmup_s']:.1f} s; {s['frames_out']} outputs ({s['per_frame_exact']} with "
            f"their own diagnostics period); e2e max {fmt(s['e2e_max'])} ms, median first "
            f"third {fmt(s['e2e_first_third_median'])} / last third "
            f"{fmt(s['e2e_last_third_median'])} ms; node's colour rate "
            f"{fmt(s['node_colour_rate_hz'], 2)} Hz; RSS min {rss.get('min', 0):.0f}, slope "
            f"{rss.get('slope_mib_per_min', float('nan')):+.2f} MiB/min, process max "
            f"{rss.get('process_max', 0):.0f} MiB; CPU used by other processes "
            f"{s['other_cores']:.2f} cores"
            + (
                f"; FOREIGN processes seen: {s['foreign_processes']}"
                if s["foreign_processes"]
                else ""
            )
        )


# ---------------------------------------------------------------------- main


def parse_variants(text: str) -> list[Variant]:
    variants = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        engine, _, rate = item.partition("@")
        engine, _, quality = engine.partition("/")
        if engine not in ("onnx", "torch", "auto"):
            raise SystemExit(f"--variants: unknown engine {engine!r} in {item!r}")
        if quality not in ("", "full", "fast", "auto"):
            raise SystemExit(f"--variants: unknown quality {quality!r} in {item!r}")
        variants.append(Variant(engine, float(rate or 30), quality or "full"))
    return variants


def use_shm_profile(mib: int) -> Path:
    """Fast DDS: a shared-memory transport with a ``mib`` MiB segment for every
    participant started from here on (this process and its children)."""
    global SUFFIX
    path = Path(tempfile.gettempdir()) / f"node_latency_shm{mib}_{os.getpid()}.xml"
    shipped = SHM_PROFILE.read_text()
    path.write_text(shipped.replace("<segment_size>16777216<", f"<segment_size>{mib << 20}<"))
    atexit.register(path.unlink, missing_ok=True)
    os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(path)
    SUFFIX = f" +shm{mib}"
    return path


def run_shm_comparison(args, domain: int, log=print) -> dict | None:
    """This script again, in a fresh process (Fast DDS reads its profile once per
    process), with the shared-memory profile: relay baseline and ``--shm-variants``."""
    out = Path(tempfile.gettempdir()) / f"node_latency_shm_{os.getpid()}.json"
    command = [
        sys.executable, str(Path(__file__).resolve()),
        "--fastdds-shm-mib", str(args.shm_mib), "--variants", args.shm_variants,
        "--duration", repr(args.shm_duration), "--relay-duration", repr(args.relay_duration),
        "--diagnostics-period", repr(args.diagnostics_period), "--skip-pieces",
        "--wait-quiet", "0", "--domain", str(domain), "--json", str(out), "--no-shm-compare",
    ]  # fmt: skip
    log(f"# Fast DDS with a {args.shm_mib} MiB shared-memory segment: {args.shm_variants}")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not out.exists():
        log(f"# shared-memory comparison failed (code {result.returncode}):")
        log(result.stdout[-2000:] + result.stderr[-2000:])
        return None
    payload = json.loads(out.read_text())
    out.unlink()
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="timed seconds per variant")
    parser.add_argument(
        "--variants",
        default="onnx@30,torch@30,onnx@2",
        help="ENGINE[/QUALITY]@RATE_HZ,... (quality full, fast or auto; default full): "
        "default onnx@30,torch@30,onnx@2; the camera-rate check is auto/auto@30",
    )
    parser.add_argument("--relay-duration", type=float, default=8.0)
    parser.add_argument("--enhance-runs", type=int, default=8)
    parser.add_argument("--diagnostics-period", type=float, default=0.1)
    parser.add_argument("--wait-quiet", type=float, default=900.0, help="seconds, 0: no wait")
    parser.add_argument("--domain", type=int, default=None, help="ROS_DOMAIN_ID (default: pid)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--shm-variants",
        default="onnx@30,onnx@2",
        help="variants re-run with a large Fast DDS shared-memory segment",
    )
    parser.add_argument("--shm-duration", type=float, default=20.0)
    parser.add_argument("--shm-mib", type=int, default=16)
    parser.add_argument("--no-shm-compare", action="store_true")
    parser.add_argument("--fastdds-shm-mib", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--skip-pieces", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fastdds_shm_mib:
        use_shm_profile(args.fastdds_shm_mib)
    if args.relay:
        return relay_main()
    variants = parse_variants(args.variants)

    began = time.perf_counter()
    quiet = (
        wait_quiet(args.wait_quiet)
        if args.wait_quiet > 0
        else {"quiet": not foreign_processes(), "waited_s": 0.0, "seen": [], "other_cores": 0}
    )
    # 215..230: outside the tests' 100..200 and the live demo's 120..199.
    domain = args.domain if args.domain is not None else 215 + os.getpid() % 15
    env = ros_env(domain)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    info = machine()
    info["quiet"] = quiet
    info["ros_domain_id"] = domain
    info["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    print(f"# ROS_DOMAIN_ID={domain}, discovery LOCALHOST; rendering {N_FRAMES} frames")
    scene = make_scene()
    pieces = {}
    if not args.skip_pieces:
        print("# in-process pieces")
        pieces = measure_pieces(scene, args.enhance_runs)

    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    probe = Probe(context)
    summaries = []
    rate = variants[0].rate_hz if variants else 30.0
    try:
        print(f"# DDS relay baseline at {rate:g} Hz for {args.relay_duration:g} s")
        relay = measure_relay(probe, scene, env, rate, args.relay_duration)
        relay["suffix"] = SUFFIX
        relays = [relay]
        for variant in variants:
            print(f"# {variant.name}: node starting, then {args.duration:g} s timed")
            result = run_variant(variant, probe, scene, env, args)
            summaries.append(summarise(result))
            summaries[-1]["frames"] = result.frames
    finally:
        probe.close()
        rclpy.try_shutdown(context=context)
    if not args.no_shm_compare and args.shm_variants:
        payload = run_shm_comparison(args, domain + 1)
        if payload is not None:
            relays += payload["relays"]
            summaries += payload["variants"]
            info["shm_profile"] = f"{SHM_PROFILE} with a {args.shm_mib} MiB segment"
    info["loadavg_end"] = os.getloadavg()
    info["total_s"] = time.perf_counter() - began
    info["foreign_at_end"] = foreign_processes()
    print()
    print_report(info, pieces, relays, summaries)
    print(
        f"# load average at the end {info['loadavg_end'][0]:.2f}; total "
        f"{info['total_s']:.0f} s (waiting for quiet {quiet['waited_s']:.0f} s)"
    )
    if args.json:
        for relay in relays:
            relay.pop("rtt_ms", None)
        payload = {"machine": info, "pieces": pieces, "relays": relays, "variants": summaries}
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
