"""The depth_enhancer node over real ROS 2 (rclpy, Fast DDS), no mocks.

The node runs in its own process (``python -m dkn_ros.ros.node``), started once for the
module and shared by the tests; the test process publishes colour / depth / camera_info
made by ``dkn_ros.synthetic`` (320 x 240 colour, 40 x 30 depth) and subscribes to the
outputs and ``/diagnostics``. Every test uses fresh, increasing stamps, so leftovers of
one test cannot pass for another's output.
"""

from __future__ import annotations

import array
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (
    REPO,
    camera_info_msg,
    diagnostic_values,
    image_msg,
    image_to_array,
    isolate_ros,
    stamp_msg,
    stamp_ns,
    start_node_process,
    wait_for,
)
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from dkn_ros import processing
from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

WIDTH, HEIGHT, SCALE = 320, 240, 8
COLOR_FRAME = "camera_color_optical_frame"
DEPTH_FRAME = "camera_depth_optical_frame"
NODE_PARAMS = {
    "engine": "torch",  # no one-time ONNX export on a fresh machine
    "quality": "full",  # outputs are compared with Enhancer(); auto is tested on its own
    "input_qos": "reliable",  # the test publishes reliably: nothing lost
    "diagnostics_period": 0.5,
    "max_pixels": WIDTH * HEIGHT,  # the test frames exactly; one more column is too large
}
STARTUP_S = 90.0  # importing torch and starting DDS on 2 slow, busy cores
OUTPUT_S = 30.0
STATUS = "dkn_ros: depth_enhancer"


# ---------------------------------------------------------------------- harness


class Harness:
    """A plain rclpy node that feeds one depth_enhancer and records what comes out."""

    def __init__(self, node, executor, prefix: str = "/", color_topic: str | None = None):
        self.node, self.executor, self.prefix = node, executor, prefix
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.color_pub = node.create_publisher(Image, color_topic or f"{prefix}color/image", qos)
        self.depth_pub = node.create_publisher(Image, f"{prefix}depth/image", qos)
        self.info_pub = node.create_publisher(CameraInfo, f"{prefix}color/camera_info", qos)
        self.images: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.statuses: list = []  # (arrival index, DiagnosticArray header, status)
        node.create_subscription(
            Image, f"{prefix}depth_enhanced/image", self.images.append, qos
        )
        node.create_subscription(
            CameraInfo, f"{prefix}depth_enhanced/camera_info", self.infos.append, qos
        )
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self._last_stamp = 0

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.statuses.append((msg.header, status))

    def next_stamp(self) -> int:
        """Now (this node's clock), at least 100 ms after the last stamp handed out."""
        now = self.node.get_clock().now().nanoseconds
        self._last_stamp = max(now, self._last_stamp + 100_000_000)
        return self._last_stamp

    def wait(self, condition, what: str, timeout: float = OUTPUT_S, process=None, poll=None):
        return wait_for(condition, timeout, what, self.executor, process, poll)

    def wait_connected(self, process=None, timeout: float = STARTUP_S) -> None:
        """Until the node's subscriptions match our publishers and its output ours."""
        self.wait(
            lambda: self.color_pub.get_subscription_count() >= 1
            and self.depth_pub.get_subscription_count() >= 1
            and self.info_pub.get_subscription_count() >= 1
            and self.node.count_publishers(f"{self.prefix}depth_enhanced/image") >= 1
            and self.node.count_publishers(f"{self.prefix}depth_enhanced/camera_info") >= 1,
            f"the node's topics under {self.prefix} to match ours",
            timeout,
            process,
        )

    def publish(self, color_msg: Image, depth_msg: Image, info: CameraInfo | None = None):
        if info is not None:
            self.info_pub.publish(info)
        self.color_pub.publish(color_msg)
        self.depth_pub.publish(depth_msg)

    def outputs(self, stamp: int) -> list[Image]:
        return [m for m in self.images if stamp_ns(m.header.stamp) == stamp]

    def wait_output(self, stamp: int, process=None, timeout: float = OUTPUT_S, poll=None):
        self.wait(
            lambda: self.outputs(stamp),
            f"an enhanced image stamped {stamp / 1e9:.3f} s on {self.prefix}depth_enhanced/image",
            timeout,
            process,
            poll,
        )
        return self.outputs(stamp)[0]

    def wait_status(
        self, name, condition, what, process=None, poll=None, since=None, timeout=OUTPUT_S
    ):
        """The first diagnostics status named ``name`` arriving from now on (or after
        ``since`` statuses) for which ``condition(values)`` holds; returns (header,
        status, values)."""
        start = len(self.statuses) if since is None else since

        def found():
            for header, status in self.statuses[start:]:
                if status.name == name and condition(diagnostic_values(status)):
                    return header, status, diagnostic_values(status)
            return None

        return self.wait(found, f"diagnostics {name!r} with {what}", timeout, process, poll)


def drops(values: dict[str, str], reason: str) -> int:
    return int(values.get(f"dropped {reason}", 0))


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def frame():
    """One synthetic RGB-D frame: colour, ground truth, degraded x8 depth, intrinsics."""
    rendered = render_frame(0.0, width=WIDTH, height=HEIGHT)
    depth_mm = degrade_depth(rendered.depth, KinectDegradation(scale=SCALE))
    assert depth_mm.shape == (HEIGHT // SCALE, WIDTH // SCALE)
    return rendered, depth_mm


@pytest.fixture(scope="module")
def context():
    isolate_ros()  # before rclpy.init and before any node process starts
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


@pytest.fixture(scope="module")
def executor(context):
    ex = SingleThreadedExecutor(context=context)
    yield ex
    ex.shutdown()


@pytest.fixture(scope="module")
def harness(context, executor):
    node = rclpy.create_node("depth_enhancer_test_driver", context=context)
    executor.add_node(node)
    yield Harness(node, executor)
    executor.remove_node(node)
    node.destroy_node()


def good_messages(harness, frame, stamp: int, depth_frame: str = COLOR_FRAME):
    rendered, depth_mm = frame
    return (
        image_msg(rendered.color, "rgb8", stamp, COLOR_FRAME),
        image_msg(depth_mm, "16UC1", stamp, depth_frame),
        camera_info_msg(rendered.intrinsics, stamp, COLOR_FRAME),
    )


@pytest.fixture(scope="module")
def enhancer(harness, frame):
    """The node process, connected and warm (one frame went through)."""
    process = start_node_process(NODE_PARAMS)
    try:
        harness.wait_connected(process)
        send_until_output(harness, frame, process, timeout=10.0)
        yield process
    finally:
        process.stop()


def send_until_output(harness, frame, process, timeout: float) -> Image:
    """Send good pairs (camera_info first) until one comes out: the very first pair may
    race camera_info. Up to 5 tries of ``timeout`` seconds; the output."""
    for _ in range(5):
        stamp = harness.next_stamp()
        color_msg, depth_msg, info = good_messages(harness, frame, stamp)
        harness.info_pub.publish(info)
        harness.publish(color_msg, depth_msg, info)
        try:
            return harness.wait_output(stamp, process, timeout=timeout)
        except AssertionError:
            if not process.alive():
                raise
    raise AssertionError(f"no output after 5 tries\n{process.log_tail()}")


@pytest.fixture(scope="module")
def reference():
    """The library itself, to compare the node's output with."""
    from dkn_ros.enhancer import Enhancer

    return Enhancer(engine="torch")


def send_good(harness, frame, process, depth_frame: str = COLOR_FRAME) -> tuple[int, Image]:
    stamp = harness.next_stamp()
    color_msg, depth_msg, info = good_messages(harness, frame, stamp, depth_frame)
    harness.publish(color_msg, depth_msg, info)
    return stamp, harness.wait_output(stamp, process)


# ---------------------------------------------------------------------- 1, 2: good frames


def test_good_pair_gives_enhanced_depth_with_colour_header(harness, enhancer, frame, reference):
    rendered, depth_mm = frame
    stamp, out = send_good(harness, frame, enhancer, depth_frame=DEPTH_FRAME)

    assert out.header.frame_id == COLOR_FRAME
    assert stamp_ns(out.header.stamp) == stamp
    assert (out.width, out.height, out.encoding) == (WIDTH, HEIGHT, "16UC1")
    got = image_to_array(out)

    truth_mm = rendered.depth * 1000.0
    valid = got > 0
    assert valid.mean() > 0.7, f"only {valid.mean():.0%} of the output is valid"
    rmse = float(np.sqrt(np.mean((got[valid] - truth_mm[valid]) ** 2)))
    bicubic = processing.bicubic_upsample_depth(depth_mm, (HEIGHT, WIDTH)).astype(np.float64)
    bicubic_rmse = float(np.sqrt(np.mean((bicubic[valid] - truth_mm[valid]) ** 2)))
    assert rmse < 60.0 and rmse < 1.5 * bicubic_rmse, (rmse, bicubic_rmse)

    # Exactly what the library computes for the same arrays (plumbing adds nothing).
    expected = reference.enhance(rendered.color, depth_mm)
    np.testing.assert_array_equal(got == 0, expected == 0)
    assert np.abs(got.astype(np.int32) - expected.astype(np.int32)).max() <= 1

    info = harness.wait(
        lambda: [i for i in harness.infos if stamp_ns(i.header.stamp) == stamp],
        "the output camera_info with the output's stamp",
        process=enhancer,
    )[0]
    assert info.header.frame_id == COLOR_FRAME
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    np.testing.assert_allclose(info.k, camera_info_msg(rendered.intrinsics, 0, "x").k)
    assert len(harness.outputs(stamp)) == 1

    harness.wait(
        lambda: "differs from depth frame_id" in enhancer.log(),
        "the warning about different colour and depth frame ids",
        process=enhancer,
    )


def test_float_metres_in_gives_float_metres_out_with_nan_invalid(
    harness, enhancer, frame, reference
):
    rendered, depth_mm = frame
    metres = np.where(depth_mm > 0, depth_mm / 1000.0, np.nan).astype(np.float32)
    stamp = harness.next_stamp()
    color_msg, _, info = good_messages(harness, frame, stamp)
    harness.publish(color_msg, image_msg(metres, "32FC1", stamp, COLOR_FRAME), info)
    out = harness.wait_output(stamp, enhancer)

    assert (out.width, out.height, out.encoding) == (WIDTH, HEIGHT, "32FC1")
    got = image_to_array(out)
    invalid = np.isnan(got)
    assert 0.0 < invalid.mean() < 0.3, f"{invalid.mean():.0%} NaN"
    assert not (got[~invalid] <= 0).any() and np.isfinite(got[~invalid]).all()
    expected = reference.enhance(rendered.color, metres)
    np.testing.assert_array_equal(invalid, np.isnan(expected))
    np.testing.assert_allclose(got[~invalid], expected[~invalid], atol=1e-3)
    truth = rendered.depth[~invalid]
    assert float(np.sqrt(np.mean((got[~invalid] - truth) ** 2))) < 0.06


# ---------------------------------------------------------------------- 3: bad input


def _depth_f32(depth_mm: np.ndarray, fill: float) -> np.ndarray:
    out = depth_mm.astype(np.float32) / 1000.0
    out[:3, :3] = fill
    return out


BAD_INPUTS = {
    # name: (reason counted, function (frame, stamp) -> (colour msg, depth msg))
    "unsupported colour encoding yuv422": (
        "unsupported_encoding",
        lambda f, s: (
            image_msg(f[0].color[:, :, :2], "yuv422", s, COLOR_FRAME),
            image_msg(f[1], "16UC1", s, COLOR_FRAME),
        ),
    ),
    "depth step smaller than a row": (
        "bad_layout",
        lambda f, s: (
            image_msg(f[0].color, "rgb8", s, COLOR_FRAME),
            image_msg(f[1], "16UC1", s, COLOR_FRAME, step=f[1].shape[1] * 2 - 2),
        ),
    ),
    "depth data too short": (
        "bad_layout",
        lambda f, s: (
            image_msg(f[0].color, "rgb8", s, COLOR_FRAME),
            image_msg(f[1], "16UC1", s, COLOR_FRAME, data=f[1].tobytes()[:-100]),
        ),
    ),
    "zero-size depth": (
        "empty_image",
        lambda f, s: (
            image_msg(f[0].color, "rgb8", s, COLOR_FRAME),
            image_msg(np.zeros((0, 0), np.uint16), "16UC1", s, COLOR_FRAME),
        ),
    ),
    "depth 7x5 is no fraction of 320x240": (
        "size_mismatch",
        lambda f, s: (
            image_msg(f[0].color, "rgb8", s, COLOR_FRAME),
            image_msg(f[1][:5, :7], "16UC1", s, COLOR_FRAME),
        ),
    ),
    "all-NaN depth": (
        "invalid_depth",
        lambda f, s: (
            image_msg(f[0].color, "rgb8", s, COLOR_FRAME),
            image_msg(np.full(f[1].shape, np.nan, np.float32), "32FC1", s, COLOR_FRAME),
        ),
    ),
    "Inf in depth": (
        "invalid_depth",
        lambda f, s: (
            image_msg(f[0].color, "rgb8", s, COLOR_FRAME),
            image_msg(_depth_f32(f[1], np.inf), "32FC1", s, COLOR_FRAME),
        ),
    ),
    "1e30 in 32FC1 depth": (
        "invalid_depth",
        lambda f, s: (
            image_msg(f[0].color, "rgb8", s, COLOR_FRAME),
            image_msg(_depth_f32(f[1], 1e30), "32FC1", s, COLOR_FRAME),
        ),
    ),
    "3e38 in 32FC1 depth": (
        "invalid_depth",
        lambda f, s: (
            image_msg(f[0].color, "rgb8", s, COLOR_FRAME),
            image_msg(_depth_f32(f[1], 3e38), "32FC1", s, COLOR_FRAME),
        ),
    ),
    "depth data longer than step * height": (
        "bad_layout",
        lambda f, s: (
            image_msg(f[0].color, "rgb8", s, COLOR_FRAME),
            image_msg(f[1], "16UC1", s, COLOR_FRAME, data=f[1].tobytes() + bytes(8)),
        ),
    ),
    "negative stamp": ("bad_stamp", lambda f, s: _negative(*good_messages(None, f, s)[:2])),
    "colour one column over max_pixels": (
        "too_large",
        lambda f, s: (
            image_msg(np.pad(f[0].color, ((0, 0), (0, SCALE), (0, 0))), "rgb8", s, COLOR_FRAME),
            image_msg(np.pad(f[1], ((0, 0), (0, 1))), "16UC1", s, COLOR_FRAME),
        ),
    ),
    "stamp 0.5 s older than the last (late)": ("late", None),
}


def _negative(*messages):
    for msg in messages:
        msg.header.stamp.sec = -1  # 1969: before the epoch
    return messages


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_dropped_and_next_good_frame_processed(harness, enhancer, frame, case):
    reason, make = BAD_INPUTS[case]
    _, _, before = harness.wait_status(STATUS, lambda v: True, "any values", enhancer)
    last_good = harness._last_stamp  # the previous test's good frame, processed
    stamp = harness.next_stamp()
    if make is None:  # late: the bad pair is stamped before the last good one
        stamp = last_good - 500_000_000
        color_msg, depth_msg, _ = good_messages(harness, frame, stamp)
        expected_drops = 2  # the colour and the depth message
    else:
        color_msg, depth_msg = make(frame, stamp)
        expected_drops = 1  # the pair
    harness.publish(color_msg, depth_msg)
    _, status, values = harness.wait_status(
        STATUS,
        lambda v: drops(v, reason) >= drops(before, reason) + expected_drops,
        f"'dropped {reason}' counted",
        enhancer,
    )
    assert drops(values, reason) == drops(before, reason) + expected_drops, values
    assert drops(values, "enhance_error") == drops(before, "enhance_error"), values
    assert status.level == b"\x01" and reason in status.message  # WARN, naming the reason

    _, out = send_good(harness, frame, enhancer)  # the node lives on
    assert (out.width, out.height) == (WIDTH, HEIGHT)
    assert not harness.outputs(stamp)
    harness.wait(
        lambda: f"({reason}," in enhancer.log(),
        f"a log line naming the reason {reason}",
        process=enhancer,
    )


def test_big_endian_depth_is_byte_swapped(harness, enhancer, frame):
    """is_bigendian = 1 is honoured (byte-swapped, as cv_bridge does), not refused: the
    same depth in big-endian order gives the same output as in the machine's order."""
    _, native = send_good(harness, frame, enhancer)
    rendered, depth_mm = frame
    stamp = harness.next_stamp()
    big = image_msg(depth_mm.astype(">u2"), "16UC1", stamp, COLOR_FRAME)
    big.is_bigendian = 1
    harness.publish(image_msg(rendered.color, "rgb8", stamp, COLOR_FRAME), big)
    out = harness.wait_output(stamp, enhancer)
    np.testing.assert_array_equal(image_to_array(out), image_to_array(native))


def test_refused_parameter_changes_are_logged(harness, enhancer, frame):
    """ros2 param set through the parameter service: each refusal is one warning line in
    the node's log naming the parameter, the value and why; a runtime max_pixels change
    takes effect."""
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(harness.node, "/depth_enhancer")
    assert client.wait_for_services(timeout_sec=30.0)

    def set_one(name, value):
        future = client.set_parameters([Parameter(name, value=value)])
        harness.wait(future.done, f"the reply to setting {name}")
        return future.result().results[0]

    refused = {  # parameter, value -> what the log line must say why
        ("scale", 4): "read-only",
        ("output_encoding", "rgb8"): "'rgb8' is not one of",
        ("iterations", 99): "iterations",
    }
    for (name, value), why in refused.items():
        assert not set_one(name, value).successful
        line = f"parameter change refused: {name} := {value!r}: "
        harness.wait(lambda line=line: line in enhancer.log(), f"log {line!r}", process=enhancer)
        logged = [text for text in enhancer.log().splitlines() if line in text]
        assert len(logged) == 1 and why in logged[0], logged

    try:  # max_pixels at runtime: one pixel less than the test frames drops them
        assert set_one("max_pixels", WIDTH * HEIGHT - 1).successful
        _, _, before = harness.wait_status(STATUS, lambda v: True, "any values", enhancer)
        stamp = harness.next_stamp()
        harness.publish(*good_messages(harness, frame, stamp))
        harness.wait_status(
            STATUS,
            lambda v: drops(v, "too_large") == drops(before, "too_large") + 1,
            "the too_large drop",
            enhancer,
        )
    finally:
        assert set_one("max_pixels", WIDTH * HEIGHT).successful
    send_good(harness, frame, enhancer)


def test_clock_jump_back_restarts_pairing(harness, enhancer, frame):
    _, _, before = harness.wait_status(STATUS, lambda v: True, "any values", enhancer)
    send_good(harness, frame, enhancer)
    back = harness.next_stamp() - 5_000_000_000  # a bag played in a loop
    color_msg, depth_msg, info = good_messages(harness, frame, back)
    harness.publish(color_msg, depth_msg, info)
    harness.wait_output(back, enhancer)  # the new epoch's first pair is processed
    send_good(harness, frame, enhancer)  # and time going forward again too
    _, _, values = harness.wait_status(
        STATUS,
        lambda v: int(v["clock jumps"]) > int(before["clock jumps"]),
        "the clock jump counted",
        enhancer,
    )
    harness.wait(
        lambda: "time went backwards" in enhancer.log(), "the jump's log line", process=enhancer
    )


# ---------------------------------------------------------------------- 4: flooding


def test_flood_drops_old_pairs_and_keeps_up(harness, enhancer, frame):
    _, _, before = harness.wait_status(STATUS, lambda v: True, "any values", enhancer)
    rendered, depth_mm = frame
    first = harness.next_stamp()
    stamps = [first + i * 33_000_000 for i in range(30)]
    harness._last_stamp = stamps[-1]
    messages = [
        (
            image_msg(rendered.color, "rgb8", s, COLOR_FRAME),
            image_msg(depth_mm, "16UC1", s, DEPTH_FRAME),
        )
        for s in stamps
    ]
    seen = len(harness.images)
    for color_msg, depth_msg in messages:
        harness.publish(color_msg, depth_msg)
    harness.wait_output(stamps[-1], enhancer)  # the newest pair always gets through

    outputs = [stamp_ns(m.header.stamp) for m in harness.images[seen:]]
    assert 1 <= len(outputs) < len(stamps), outputs
    assert set(outputs) <= set(stamps)
    assert outputs == sorted(outputs)
    assert enhancer.alive()
    skipped = ("busy", "unmatched", "queue_full")

    def counted(v):
        return sum(drops(v, r) for r in skipped) >= sum(drops(before, r) for r in skipped) + 1

    _, status, values = harness.wait_status(STATUS, counted, "drops of the flood", enhancer)
    assert int(values["frames published"]) >= int(before["frames published"]) + len(outputs)
    assert enhancer.log().count("differs from depth frame_id") == 1  # warned once


def test_diagnostics_content(harness, enhancer, frame):
    send_good(harness, frame, enhancer)
    def quiet(v):
        rates = ("colour rate (Hz)", "depth rate (Hz)", "output rate (Hz)")
        return all(float(v[k]) == 0 for k in rates)

    header, status, values = harness.wait_status(STATUS, quiet, "a quiet period", enhancer)
    assert status.level == b"\x01" and "no colour input; no depth input" in status.message
    assert status.hardware_id
    for key in (
        "colour rate (Hz)",
        "depth rate (Hz)",
        "output rate (Hz)",
        "latency mean (ms)",
        "processing mean (ms)",
        "preprocess mean (ms)",
        "inference mean (ms)",
        "postprocess mean (ms)",
        "dropped busy",
        "dropped no_camera_info",
        "dropped unmatched",
    ):
        assert key in values, (key, values)
    assert values["model"] == "fdkn" and values["scale"] == "auto"
    assert "torch on cpu" in values["engine"] and values["last scale"] == "8"

    def active(v):  # a period with input on both streams and output
        rates = ("colour rate (Hz)", "depth rate (Hz)", "output rate (Hz)")
        return all(float(v[k]) > 0 for k in rates)

    for attempt in range(5):  # a pair's input and output may straddle two periods
        since = len(harness.statuses)
        send_good(harness, frame, enhancer)
        try:
            _, status, values = harness.wait_status(
                STATUS, active, "an active period", enhancer, since=since, timeout=3.0
            )
            break
        except AssertionError:
            if attempt == 4:
                raise
    assert status.level == b"\x00", status.message
    assert 0.0 < float(values["latency mean (ms)"]) < 20_000.0
    assert float(values["inference mean (ms)"]) > 0.0
    total = float(values["processing mean (ms)"])
    parts = sum(float(values[f"{k} mean (ms)"]) for k in ("preprocess", "inference", "postprocess"))
    assert abs(total - parts) < 0.5


def test_quality_auto_keeps_up_and_says_so(harness, context, executor, frame):
    """quality auto in its own node (namespace /q): with a rate nothing can keep up with
    it runs the fastest candidate it measured (which one that is at this small size
    depends on the machine's load, so the test reads it from the reported latencies);
    after a runtime max_rate of 0.5 Hz it chooses again, full float32, the best one. The
    choice and the latencies are in the log and on /diagnostics."""
    from rclpy.parameter_client import AsyncParameterClient

    params = {**NODE_PARAMS, "quality": "auto", "max_rate": 1000.0}
    process = start_node_process(params, extra=["-r", "__ns:=/q"], name="depth_enhancer_q")
    node = rclpy.create_node("quality_test_driver", context=context)
    executor.add_node(node)
    try:
        q = Harness(node, executor, prefix="/q/")
        q.wait_connected(process)
        send_until_output(q, frame, process, timeout=20.0)
        name = "dkn_ros: q/depth_enhancer"
        _, _, values = q.wait_status(
            name, lambda v: "quality latencies (ms)" in v, "the quality choice", process
        )
        latencies = dict(
            entry.rsplit(" ", 1) for entry in values["quality latencies (ms)"].split(", ")
        )
        assert "full fp32" in latencies and any(k.startswith("fast") for k in latencies)
        chosen = values["quality"].removeprefix("auto: ")
        assert int(latencies[chosen]) == min(int(ms) for ms in latencies.values()), values
        assert values["quality rate (Hz)"] == "1000.0 (max_rate)"
        assert values["quality keeps up"] == "no: the fastest"
        assert "quality auto at 320x240, depth 40x30" in process.log()

        client = AsyncParameterClient(node, "/q/depth_enhancer")
        assert client.wait_for_services(timeout_sec=30.0)
        future = client.set_parameters([Parameter("max_rate", value=0.5)])
        q.wait(future.done, "the reply to setting max_rate")
        assert future.result().results[0].successful
        send_until_output(q, frame, process, timeout=20.0)
        _, _, values = q.wait_status(
            name, lambda v: v.get("quality") == "auto: full fp32", "the new choice", process
        )
        assert values["quality rate (Hz)"] == "0.5 (max_rate)"
        assert values["quality keeps up"] == "yes"
    finally:
        executor.remove_node(node)
        node.destroy_node()
        assert process.stop() == 0, process.log_tail()


# ---------------------------------------------------------------------- 5: sim time


def test_use_sim_time(context, executor, frame):
    node = rclpy.create_node("sim_time_driver", context=context)
    executor.add_node(node)
    harness = Harness(node, executor, prefix="/sim/")
    clock_pub = node.create_publisher(Clock, "/clock", 10)
    start = time.monotonic()
    sim_start = 1_000_000_000_000  # 1000 s of simulated time

    def sim_now() -> int:
        return sim_start + int((time.monotonic() - start) * 1e9)

    def tick():
        clock_pub.publish(Clock(clock=stamp_msg(sim_now())))

    params = dict(NODE_PARAMS, use_sim_time=True, require_camera_info=False)
    process = start_node_process(params, ["-r", "__ns:=/sim"], name="sim")
    try:
        wait_for(
            lambda: harness.color_pub.get_subscription_count() >= 1
            and node.count_publishers("/sim/depth_enhanced/image") >= 1
            and clock_pub.get_subscription_count() >= 1,
            STARTUP_S,
            "the sim-time node's topics",
            executor,
            process,
        )
        # Nothing on /clock yet: diagnostics still come (on the steady clock) and say
        # why time stands still, and the log says it once CLOCK_WAIT_S have passed.
        harness.wait(
            lambda: any(
                status.name == "dkn_ros: sim/depth_enhancer"
                and status.level == b"\x01"
                and "no time received on /clock" in status.message
                for _, status in harness.statuses
            ),
            "diagnostics saying that /clock is silent",
            process=process,
        )
        harness.wait(
            lambda: "no time received on /clock" in process.log(),
            "the log line saying that /clock is silent",
            process=process,
        )
        rendered, depth_mm = frame
        stamp = sim_now()
        harness.publish(
            image_msg(rendered.color, "rgb8", stamp, COLOR_FRAME),
            image_msg(depth_mm, "16UC1", stamp, COLOR_FRAME),
        )  # no camera_info: require_camera_info is false
        out = harness.wait_output(stamp, process, poll=tick)
        assert stamp_ns(out.header.stamp) == stamp and out.header.frame_id == COLOR_FRAME
        assert not harness.infos

        def measured(v):
            return v["latency mean (ms)"] != "n/a"

        header, _, values = harness.wait_status(
            "dkn_ros: sim/depth_enhancer", measured, "a latency", process, poll=tick
        )
        # Sim time: ~1000 s, not the wall clock's ~1.7e9 s; latency over sim time.
        assert 1000 <= header.stamp.sec < 10_000, header.stamp
        assert 0.0 <= float(values["latency mean (ms)"]) < 20_000.0, values
    finally:
        rc = process.stop()
        executor.remove_node(node)
        node.destroy_node()
    assert rc == 0, process.log_tail()


# ---------------------------------------------------------------------- 5b: compressed


def compressed_msg(fmt: str, data: bytes, stamp: int, frame_id: str) -> CompressedImage:
    msg = CompressedImage()
    msg.header.stamp = stamp_msg(stamp)
    msg.header.frame_id = frame_id
    msg.format = fmt
    msg.data = array.array("B", data)
    return msg


def test_compressed_transports_over_dds(context, executor, frame, reference):
    """image_transport-style input: JPEG colour on <remapped color/image>/compressed and
    PNG compressedDepth on <depth/image>/compressedDepth, published by this process to a
    node process; a malformed compressedDepth message is dropped (bad_layout, counted,
    one log line) and the node goes on."""
    cv2 = pytest.importorskip("cv2")
    from compressed_helpers import compressed_depth, jpeg_or_png

    node = rclpy.create_node("compressed_driver", context=context)
    executor.add_node(node)
    harness = Harness(node, executor, prefix="/cmp/")
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    color_topic = "/cmp/camera/color/image_raw/compressed"  # color/image is remapped
    harness.color_pub = node.create_publisher(CompressedImage, color_topic, qos)
    depth_topic = "/cmp/depth/image/compressedDepth"
    harness.depth_pub = node.create_publisher(CompressedImage, depth_topic, qos)
    params = dict(NODE_PARAMS, color_transport="compressed", depth_transport="compressedDepth")
    process = start_node_process(
        params, ["-r", "__ns:=/cmp", "-r", "color/image:=camera/color/image_raw"], name="cmp"
    )
    rendered, depth_mm = frame
    color_fmt, color_data = jpeg_or_png(rendered.color, "rgb8", "jpeg")
    depth_fmt, depth_data = compressed_depth(depth_mm, "16UC1", "png")

    def send(stamp: int, depth: bytes = depth_data) -> None:
        harness.publish(
            compressed_msg(color_fmt, color_data, stamp, COLOR_FRAME),
            compressed_msg(depth_fmt, depth, stamp, COLOR_FRAME),
            camera_info_msg(rendered.intrinsics, stamp, COLOR_FRAME),
        )

    try:
        harness.wait_connected(process)
        for _ in range(5):  # the very first pair may race camera_info: retry
            stamp = harness.next_stamp()
            send(stamp)
            try:
                out = harness.wait_output(stamp, process, timeout=15.0)
                break
            except AssertionError:
                if not process.alive():
                    raise
        else:
            raise AssertionError(f"no output after 5 tries\n{process.log_tail()}")
        assert (out.width, out.height, out.encoding) == (WIDTH, HEIGHT, "16UC1")
        assert out.header.frame_id == COLOR_FRAME and stamp_ns(out.header.stamp) == stamp
        # What the library makes of the decoded JPEG (decoded here with OpenCV).
        decoded = cv2.imdecode(np.frombuffer(color_data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        expected = reference.enhance(np.ascontiguousarray(decoded), depth_mm)
        got = image_to_array(out)
        np.testing.assert_array_equal(got == 0, expected == 0)
        assert np.abs(got.astype(np.int32) - expected.astype(np.int32)).max() <= 1
        assert "cmp/camera/color/image_raw/compressed (CompressedImage)" in process.log()

        _, _, before = harness.wait_status(
            "dkn_ros: cmp/depth_enhancer", lambda v: True, "any values", process
        )
        bad = harness.next_stamp()
        send(bad, depth=depth_data[:12] + b"garbage, not a PNG" * 4)
        _, _, values = harness.wait_status(
            "dkn_ros: cmp/depth_enhancer",
            lambda v: drops(v, "bad_layout") > drops(before, "bad_layout"),
            "'dropped bad_layout' counted",
            process,
        )
        assert drops(values, "bad_layout") == drops(before, "bad_layout") + 1, values
        harness.wait(
            lambda: "dropped frame (bad_layout, 1 so far" in process.log()
            and "depth image: compressedDepth" in process.log(),
            "one log line naming the malformed compressedDepth message",
            process=process,
        )
        stamp = harness.next_stamp()
        send(stamp)
        assert harness.wait_output(stamp, process).encoding == "16UC1"  # the node lives on
        assert not harness.outputs(bad)
    finally:
        rc = process.stop()
        executor.remove_node(node)
        node.destroy_node()
    assert rc == 0, process.log_tail()


# ---------------------------------------------------------------------- 6: composition


def test_composition_namespace_remap_and_missing_camera_info(context, frame):
    """The node and a plain node in one process and one executor; the enhancer is in
    namespace /cam with its colour input remapped to /cam/rgb."""
    from dkn_ros.ros.node import DepthEnhancerNode

    executor = SingleThreadedExecutor(context=context)
    enhancer = DepthEnhancerNode(
        namespace="cam",
        context=context,
        cli_args=["--ros-args", "-r", "color/image:=/cam/rgb"],
        parameter_overrides=[
            Parameter("engine", value="torch"),
            Parameter("input_qos", value="reliable"),
            Parameter("diagnostics_period", value=0.5),
        ],
    )
    plain = rclpy.create_node("cam_user", context=context)
    try:
        executor.add_node(enhancer)
        executor.add_node(plain)
        harness = Harness(plain, executor, prefix="/cam/", color_topic="/cam/rgb")
        harness.wait_connected(timeout=30.0)
        assert enhancer.get_fully_qualified_name() == "/cam/depth_enhancer"

        rendered, depth_mm = frame
        stamp = harness.next_stamp()
        color_msg, depth_msg, info = good_messages(harness, frame, stamp)
        harness.publish(color_msg, depth_msg)  # no camera_info yet: dropped
        harness.wait(
            lambda: enhancer.drop_counts()["no_camera_info"] == 1, "the no_camera_info drop"
        )
        _, status, _ = harness.wait_status(
            "dkn_ros: cam/depth_enhancer",
            lambda v: drops(v, "no_camera_info") == 1,
            "the no_camera_info drop",
        )
        assert status.level == b"\x01" and "no_camera_info" in status.message

        harness.info_pub.publish(info)
        harness.wait(lambda: enhancer.camera_info is not None, "camera_info in the node")
        stamp = harness.next_stamp()
        color_msg, depth_msg, _ = good_messages(harness, frame, stamp)
        harness.publish(color_msg, depth_msg)
        out = harness.wait_output(stamp)
        assert (out.width, out.height, out.header.frame_id) == (WIDTH, HEIGHT, COLOR_FRAME)
        harness.wait(
            lambda: [i for i in harness.infos if stamp_ns(i.header.stamp) == stamp],
            "/cam/depth_enhanced/camera_info",
        )
        assert enhancer.frames_published == 1

        # Runtime parameters: validated with a reason; read-only ones refused.
        bad, fixed = enhancer.set_parameters(
            [Parameter("output_encoding", value="rgb8"), Parameter("scale", value=4)]
        )
        assert not bad.successful and "output_encoding" in bad.reason, bad.reason
        assert not fixed.successful and "read-only" in fixed.reason, fixed.reason
        assert enhancer.set_parameters([Parameter("output_encoding", value="32FC1")])[0].successful
        stamp = harness.next_stamp()
        color_msg, depth_msg, _ = good_messages(harness, frame, stamp)
        harness.publish(color_msg, depth_msg)
        assert harness.wait_output(stamp).encoding == "32FC1"
    finally:
        executor.shutdown()
        enhancer.destroy_node()
        plain.destroy_node()
    workers = [t for t in threading.enumerate() if t.name.endswith("_worker")]
    assert not workers, f"worker threads outlived destroy_node: {workers}"


def test_output_without_valid_pixels_is_dropped_and_flagged(context, frame, tmp_path, capfd):
    """Weights that load (finite) but overflow float32 in the network give no valid
    output pixel: the frame is dropped (invalid_output), diagnostics say ERROR with a
    message, and the node lives on. In-process node, real DDS (as the composition test)."""
    import torch

    from dkn_ros.models import ModelCard, build_model, save_model
    from dkn_ros.ros.node import DepthEnhancerNode

    weights = tmp_path / "fdkn_overflow_x8.safetensors"
    model = build_model("fdkn", n1=16, n2=16)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(1e30)
    card = ModelCard(model="fdkn", config={"n1": 16, "n2": 16}, task="upsampling", scale=8)
    save_model(model, card, weights)

    executor = SingleThreadedExecutor(context=context)
    enhancer = DepthEnhancerNode(
        namespace="broken",
        context=context,
        parameter_overrides=[
            Parameter("engine", value="torch"),
            Parameter("weights", value=str(weights)),
            Parameter("input_qos", value="reliable"),
            Parameter("diagnostics_period", value=0.5),
        ],
    )
    plain = rclpy.create_node("broken_user", context=context)
    try:
        executor.add_node(enhancer)
        executor.add_node(plain)
        harness = Harness(plain, executor, prefix="/broken/")
        harness.wait_connected(timeout=30.0)
        stamp = harness.next_stamp()
        harness.publish(*good_messages(harness, frame, stamp))
        _, status, values = harness.wait_status(
            "dkn_ros: broken/depth_enhancer",
            lambda v: drops(v, "invalid_output") == 1,
            "the invalid_output drop",
        )
        assert status.level == b"\x02", status  # ERROR
        assert "invalid_output" in status.message and "no valid pixel" in status.message
        assert not harness.outputs(stamp) and values["frames published"] == "0"
        log = capfd.readouterr().err  # the node's ROS log, in this process
        assert "dropped frame (invalid_output, 1 so far" in log and "no valid pixel" in log, log
    finally:
        executor.shutdown()
        enhancer.destroy_node()
        plain.destroy_node()


@pytest.mark.parametrize("kind", ["nan weights", "card scale 100000"])
def test_broken_weights_stop_the_node_with_one_line(context, tmp_path, kind):
    """A weights file with a NaN, or a card whose scale used to reach a 7 TiB allocation
    at warm-up: the node refuses to start with one line and exit code 2."""
    import json

    import torch

    from dkn_ros.models import ModelCard, build_model, save_model

    weights = tmp_path / "fdkn_broken_x8.safetensors"
    model = build_model("fdkn", n1=8, n2=8)
    card = ModelCard(model="fdkn", config={"n1": 8, "n2": 8}, task="upsampling", scale=8)
    if kind == "nan weights":
        with torch.no_grad():
            model.guidance_stream.offset_head.weight[0, 0, 0, 0] = float("nan")
    save_model(model, card, weights)
    if kind == "card scale 100000":
        path = weights.with_suffix(".json")
        path.write_text(json.dumps({**json.loads(path.read_text()), "scale": 100000}))
    fragment = "non-finite" if kind == "nan weights" else "field 'scale'"
    result = subprocess.run(
        [sys.executable, "-m", "dkn_ros.ros.node", "--ros-args", "-p", "engine:=torch",
         "-p", f"weights:={weights}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and fragment in errors[0] and weights.stem in errors[0], output


# ---------------------------------------------------------------------- 7: params file


CONFIG_FILES = sorted((REPO / "config").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIG_FILES, ids=[path.stem for path in CONFIG_FILES])
def test_params_file_starts_and_stops_cleanly(harness, config):
    """Every shipped parameter file is accepted by the real node."""
    namespace = f"/params_{config.stem}"
    process = start_node_process(
        extra=["--params-file", str(config), "-r", f"__ns:={namespace}"],
        name=f"params_{config.stem}",
    )
    try:
        harness.wait(
            lambda: harness.node.count_publishers(f"{namespace}/depth_enhanced/image") >= 1
            and harness.node.count_subscribers(f"{namespace}/color/image") >= 1
            and "ready:" in process.log(),
            f"the topics and the ready line of the node started with {config.name}",
            STARTUP_S,
            process,
        )
        reliable = 'input_qos: "reliable"' in config.read_text()
        expected_qos = "reliable" if reliable else "sensor_data"
        assert f"({expected_qos})" in process.log()  # input_qos from the file
    finally:
        rc = process.stop()
    assert rc == 0, process.log_tail()


@pytest.mark.parametrize(
    "argument, fragments",
    [
        ("engine:=banana", ["engine", "banana", "'auto', 'torch', 'onnx'"]),
        ("scale:=99", ["scale", "0..16", "99"]),
        ("weights:=/no/such/weights.safetensors", ["weights", "/no/such/weights.safetensors"]),
    ],
)
def test_invalid_parameter_exits_with_one_line(context, argument, fragments):
    result = subprocess.run(
        [sys.executable, "-m", "dkn_ros.ros.node", "--ros-args", "-p", argument],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


# ---------------------------------------------------------------------- 8: --help


@pytest.mark.parametrize("argv", [["--help"], ["-h", "--ros-args", "-p", "engine:=torch"]])
def test_help_prints_usage_without_starting_the_node(argv):
    """``--help`` lists the topics and every parameter with its default and how to set
    it, and exits 0 without starting ROS (it used to start the node and spin)."""
    from dkn_ros.ros.node import PARAMETERS, usage

    result = subprocess.run(
        [sys.executable, "-m", "dkn_ros.ros.node", *argv],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == usage().strip()
    assert "--ros-args -p NAME:=VALUE" in result.stdout
    assert "depth_enhanced/image" in result.stdout and "color/camera_info" in result.stdout
    for spec in PARAMETERS:
        value = spec.default
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        assert f"  {spec.name} ({spec.type_name}, default {shown}" in result.stdout
    assert "ready:" not in result.stdout + result.stderr  # no node was made
