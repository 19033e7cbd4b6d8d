"""Helpers for tests that run real ROS 2 nodes over real DDS (no mocks).

Call :func:`isolate_ros` before ``rclpy.init``: it gives this test process (and the
node processes it starts, which inherit the environment) a ROS domain of their own and
keeps discovery on this machine, so parallel test runs and other ROS users do not mix.
Every wait here has a deadline and fails with a message that says what was awaited and
shows the tail of the node process's log.
"""

from __future__ import annotations

import array
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def isolate_ros(offset: int = 0) -> int:
    """Set ``ROS_DOMAIN_ID`` (100..200, from the pid and ``offset``) and
    ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` in ``os.environ``; returns the domain."""
    domain = 100 + (os.getpid() + offset) % 101
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return domain


def ros_arg(value: object) -> str:
    """A parameter value as ``-p name:=VALUE`` wants it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class NodeProcess:
    """A node started with ``python -m MODULE --ros-args ...`` (or, with ``program``,
    ``PROGRAM... --ros-args ...``: an installed executable), its output in a file.
    ``env``: the environment (default ``os.environ``)."""

    def __init__(
        self,
        module: str,
        ros_args: list[str],
        name: str = "node",
        *,
        program: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        start = program if program is not None else [sys.executable, "-m", module]
        self.command = [*start, "--ros-args", *ros_args]
        self._log = tempfile.NamedTemporaryFile(
            "w+", prefix=f"{name}-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        self.process = subprocess.Popen(
            self.command,
            cwd=REPO,
            env=dict(os.environ if env is None else env, PYTHONUNBUFFERED="1"),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT (the node's clean shutdown), then SIGKILL after ``timeout`` s; returns
        the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self._log.close()
        return self.process.returncode

    def __repr__(self) -> str:
        return f"NodeProcess({' '.join(self.command)})"


def start_node_process(
    params: dict[str, object] | None = None,
    extra: list[str] | None = None,
    name: str = "depth_enhancer",
) -> NodeProcess:
    """Start ``python -m dkn_ros.ros.node --ros-args -p k:=v ... EXTRA``."""
    args: list[str] = []
    for key, value in (params or {}).items():
        args += ["-p", f"{key}:={ros_arg(value)}"]
    return NodeProcess("dkn_ros.ros.node", args + list(extra or []), name=name)


def wait_for(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    executor=None,
    process: NodeProcess | None = None,
    poll: Callable[[], None] | None = None,
):
    """Spin ``executor`` (or sleep briefly) until ``condition()`` is truthy; return its
    value. Fails after ``timeout`` seconds, or at once when ``process`` has exited, with
    ``what`` and the process's log tail."""
    deadline = time.monotonic() + timeout
    while True:
        if poll is not None:
            poll()
        if executor is not None:
            executor.spin_once(timeout_sec=0.02)
        else:
            time.sleep(0.02)
        value = condition()
        if value:
            return value
        if process is not None and not process.alive():
            raise AssertionError(
                f"node process exited (code {process.process.returncode}) while waiting for "
                f"{what}\n--- node log ---\n{process.log_tail()}"
            )
        if time.monotonic() > deadline:
            log = f"\n--- node log ---\n{process.log_tail()}" if process is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{log}")


# ---------------------------------------------------------------------- messages


def stamp_msg(stamp_ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def image_msg(
    array_: np.ndarray,
    encoding: str,
    stamp: int,
    frame_id: str,
    *,
    step: int | None = None,
    data: bytes | None = None,
):
    """A sensor_msgs/Image built by hand (not with the codec under test); ``step`` and
    ``data`` override the computed ones to make broken messages."""
    from sensor_msgs.msg import Image

    array_ = np.ascontiguousarray(array_)
    msg = Image()
    msg.header.stamp = stamp_msg(stamp)
    msg.header.frame_id = frame_id
    msg.height = int(array_.shape[0]) if array_.ndim else 0
    msg.width = int(array_.shape[1]) if array_.ndim > 1 else 0
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big")
    row = msg.width * array_.itemsize * (array_.shape[2] if array_.ndim == 3 else 1)
    msg.step = row if step is None else step
    buffer = array.array("B")
    buffer.frombytes(array_.tobytes() if data is None else data)
    msg.data = buffer
    return msg


def camera_info_msg(intrinsics, stamp: int, frame_id: str):
    """sensor_msgs/CameraInfo of a :class:`dkn_ros.synthetic.CameraIntrinsics`."""
    from std_msgs.msg import Header

    from dkn_ros.ros.live_demo import camera_info_msg as build

    return build(intrinsics, Header(stamp=stamp_msg(stamp), frame_id=frame_id))


def image_to_array(msg) -> np.ndarray:
    """Decode a 16UC1 / 32FC1 output image by hand (independent of the codec)."""
    dtype = {"16UC1": np.uint16, "32FC1": np.float32}[msg.encoding]
    assert msg.step == msg.width * np.dtype(dtype).itemsize, (msg.step, msg.width)
    return np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.width)


def diagnostic_values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
