"""Stopping the depth_enhancer process (real rclpy, real DDS, no mocks).

``ros2 launch`` run non-interactively (CI, systemd) delivers Ctrl-C to the node twice
(the terminal's process group and launch itself), then SIGTERM after 5 s. The node must
take any number of SIGINT/SIGTERM, in any order, and still exit 0 without a traceback,
also when a slow frame is in flight (the stop then waits at most
``SHUTDOWN_WAIT_S`` for it and never tears ONNX Runtime down under a running frame,
which used to end in SIGABRT: "terminate called without an active exception").
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import image_msg, isolate_ros, start_node_process, wait_for
from sensor_msgs.msg import Image

from dkn_ros.ros.node import SHUTDOWN_WAIT_S

STARTUP_S = 90.0  # importing torch and starting DDS on 2 slow, busy cores
EXIT_MARGIN_S = 15.0  # teardown (DDS, logging) on busy cores, beyond the node's own wait
BAD_OUTPUT = ("Traceback", "terminate called", "Exception ignored", "Aborted")


@pytest.fixture(scope="module")
def driver():
    isolate_ros(offset=37)  # a domain apart from test_node.py's, same rules
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    node = rclpy.create_node("shutdown_test_driver", context=context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    context.try_shutdown()


def wait_exit(process, since: float, limit: float) -> float:
    """Seconds from ``since`` until the node process exited (fails after ``limit``)."""
    try:
        process.process.wait(timeout=max(0.0, since + limit - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.process.kill()
        process.process.wait()
        raise AssertionError(
            f"the node did not exit within {limit:g} s\n--- node log ---\n{process.log_tail()}"
        ) from None
    return time.monotonic() - since


def assert_clean_exit(process) -> None:
    rc = process.stop()  # already exited: only collects the code and closes the log
    log = process.log()
    assert rc == 0, f"exit code {rc}\n--- node log ---\n{log}"
    for bad in BAD_OUTPUT:
        assert bad not in log, f"{bad!r} in the node's output\n--- node log ---\n{log}"


SEQUENCES = {
    "SIGINT-SIGINT": (signal.SIGINT, signal.SIGINT),
    "SIGINT-SIGINT-SIGINT": (signal.SIGINT, signal.SIGINT, signal.SIGINT),
    "SIGINT-SIGTERM": (signal.SIGINT, signal.SIGTERM),
    "SIGTERM-SIGTERM": (signal.SIGTERM, signal.SIGTERM),
}


@pytest.mark.parametrize("signals", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_repeated_signals_exit_zero_without_traceback(driver, signals):
    """Signals in quick succession: the later ones land in the teardown (destroy_node,
    the worker join, rclpy's shutdown), where they used to raise KeyboardInterrupt (exit
    -2) or make rclpy fail on its shut-down context (traceback, exit 1)."""
    process = start_node_process({"engine": "torch"}, name="shutdown")
    try:
        wait_for(lambda: "ready:" in process.log(), STARTUP_S, "the ready line", None, process)
        start = time.monotonic()
        for number in signals:
            process.process.send_signal(number)
            time.sleep(0.02)
        wait_exit(process, start, EXIT_MARGIN_S)
    finally:
        process.stop()
    assert_clean_exit(process)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_signal_during_a_slow_frame_waits_bounded_and_exits_zero(driver):
    """A real slow frame: DKN in ONNX Runtime, 16 iterations on 640 x 480 (about a
    minute on 2 CPU cores; far beyond SHUTDOWN_WAIT_S on any CPU). SIGINT twice and
    SIGTERM while it runs: the node waits SHUTDOWN_WAIT_S for the frame, says in one
    line that it does not wait longer, and exits 0 without tearing ONNX Runtime down
    under the running frame (it used to join for 10 s, then abort)."""
    node, executor = driver
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    color_pub = node.create_publisher(Image, "/slow/color/image", qos)
    depth_pub = node.create_publisher(Image, "/slow/depth/image", qos)
    params = {
        "model": "dkn",
        "engine": "onnx",
        "iterations": 16,
        "input_qos": "reliable",
        "require_camera_info": False,
    }
    process = start_node_process(params, ["-r", "__ns:=/slow"], name="slow_frame")
    try:
        wait_for(
            lambda: color_pub.get_subscription_count() >= 1
            and depth_pub.get_subscription_count() >= 1
            and "ready:" in process.log(),
            STARTUP_S,
            "the slow node's subscriptions",
            executor,
            process,
        )
        rng = np.random.default_rng(0)
        color = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        depth = rng.integers(500, 4000, (60, 80)).astype(np.uint16)
        stamp = node.get_clock().now().nanoseconds
        idle = cpu_seconds(process.process.pid)
        color_pub.publish(image_msg(color, "rgb8", stamp, "camera"))
        depth_pub.publish(image_msg(depth, "16UC1", stamp, "camera"))
        # The frame is in flight once the node has worked for a while (an idle node uses
        # next to no CPU).
        wait_for(
            lambda: cpu_seconds(process.process.pid) - idle > 3.0,
            120.0,
            "the node to work on the frame (3 s of CPU time)",
            executor,
            process,
        )
        start = time.monotonic()
        for number in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
            process.process.send_signal(number)
            time.sleep(0.05)
        took = wait_exit(process, start, SHUTDOWN_WAIT_S + EXIT_MARGIN_S)
    finally:
        process.stop()
        node.destroy_publisher(color_pub)
        node.destroy_publisher(depth_pub)
    assert_clean_exit(process)
    log = process.log()
    assert "still being enhanced" in log, f"the frame was not in flight?\n{log}"
    assert took >= SHUTDOWN_WAIT_S - 0.5, f"exited after {took:.1f} s without waiting"
