"""The package built by the real ROS 2 build tool, colcon, as a ROS workspace builds it.

The repository's tracked files are copied into ``WS/src/dkn_ros`` of two fresh
workspaces, built with ``colcon build`` and ``colcon build --symlink-install`` (which
used to fail: setup.py read README.md from colcon's build folder). The install trees
must hold what ``ros2 run`` / ``ros2 launch`` use, and the installed ``depth_enhancer``,
started from a sourced workspace, must enhance a frame published by this process over
real DDS and stop cleanly on SIGINT.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import colcon_core  # noqa: F401
except ImportError:
    pytest.skip(
        "colcon is not installed (pip install colcon-common-extensions; it is in the "
        "test extra: scripts/setup_env.sh test)",
        allow_module_level=True,
    )

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (
    REPO,
    NodeProcess,
    camera_info_msg,
    image_msg,
    image_to_array,
    isolate_ros,
    stamp_ns,
    wait_for,
)
from sensor_msgs.msg import CameraInfo, Image

from dkn_ros.synthetic import KinectDegradation, degrade_depth, render_frame

MODES = {"plain": [], "symlink": ["--symlink-install"]}
BUILD_S = 300.0
STARTUP_S = 90.0
WIDTH, HEIGHT, SCALE = 160, 120, 4
FRAME = "camera_color_optical_frame"


def colcon() -> list[str]:
    """The colcon of this Python environment (it runs setup.py with this Python)."""
    beside = Path(sys.executable).with_name("colcon")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("colcon")
    assert found, "colcon_core imports but no colcon executable is on PATH"
    return [found]


def copy_tracked_files(destination: Path) -> None:
    """The repository as a fresh clone has it: git's tracked files (no .venv, build
    outputs or caches), with their contents as in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree, or a submodule
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def sourced_environment(workspace: Path) -> dict[str, str]:
    """The environment after ``source install/local_setup.bash``, as a user has it."""
    script = f'source "{workspace}/install/local_setup.bash" && env -0'
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, check=True, timeout=60, env=os.environ
    )
    pairs = (item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    return dict(pairs)


class Workspaces:
    """Workspaces built from the tracked files on first use, one per mode (a failing
    --symlink-install build fails only the tests of that mode)."""

    def __init__(self, folder_factory):
        self._factory = folder_factory
        self._built: dict[str, Path] = {}

    def __getitem__(self, mode: str) -> Path:
        if mode not in self._built:
            workspace = self._factory.mktemp(f"colcon_{mode}")
            copy_tracked_files(workspace / "src" / "dkn_ros")
            command = [*colcon(), "build", *MODES[mode], "--event-handlers", "console_direct+"]
            result = subprocess.run(
                command, cwd=workspace, capture_output=True, text=True, timeout=BUILD_S
            )
            assert result.returncode == 0, (
                f"{' '.join(command)} failed ({result.returncode})\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
            self._built[mode] = workspace
        return self._built[mode]


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory) -> Workspaces:
    return Workspaces(tmp_path_factory)


@pytest.mark.parametrize("mode", MODES)
def test_install_tree_has_what_ros_uses(workspaces, mode):
    install = workspaces[mode] / "install" / "dkn_ros"
    executable = install / "lib" / "dkn_ros" / "depth_enhancer"
    assert executable.is_file() and os.access(executable, os.X_OK), executable
    marker = install / "share" / "ament_index" / "resource_index" / "packages" / "dkn_ros"
    assert marker.is_file(), marker
    share = install / "share" / "dkn_ros"
    assert (share / "package.xml").is_file()
    launch = {path.name for path in (share / "launch").iterdir()}
    assert launch == {path.name for path in (REPO / "launch").glob("*.py")}
    config = {path.name for path in (share / "config").iterdir()}
    assert {path.name for path in (REPO / "config").glob("*.yaml")} <= config
    assert "fastdds_large_images.xml" in config


@pytest.mark.parametrize("mode", MODES)
def test_sourced_workspace_finds_the_package(workspaces, mode):
    """After sourcing: the ament index lists dkn_ros (what FindPackageShare and the
    launch files' package check use), and Python imports dkn_ros from the workspace,
    not from the development tree."""
    workspace = workspaces[mode]
    env = sourced_environment(workspace)
    probe = (
        "from dkn_ros.ros.launch_support import missing_packages; import dkn_ros; "
        "from ament_index_python.packages import get_package_share_directory as share; "
        "print(dkn_ros.__file__); print(share('dkn_ros')); "
        "print(missing_packages(['dkn_ros', 'no_such_package_here']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=workspace,  # not the repository: "-c" puts the current folder on sys.path
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    module, share, missing = result.stdout.splitlines()
    assert Path(module).is_relative_to(workspace), module
    package = Path(module).parent  # the C kernels travel with it (dkn_ros/native.py)
    assert (package / "models" / "sampling_cpu.c").is_file()
    assert (package / "processing" / "guided.c").is_file()
    assert Path(share) == workspace / "install" / "dkn_ros" / "share" / "dkn_ros"
    assert missing == "['no_such_package_here']"


def test_installed_depth_enhancer_enhances_a_frame_and_stops_cleanly(workspaces):
    """``install/dkn_ros/lib/dkn_ros/depth_enhancer`` (what ``ros2 run`` starts) of the
    plain build, in a sourced environment, against a publisher in this process."""
    workspace = workspaces["plain"]
    isolate_ros(offset=71)  # before the environment is captured: the node inherits it
    env = sourced_environment(workspace)
    executable = workspace / "install" / "dkn_ros" / "lib" / "dkn_ros" / "depth_enhancer"
    rendered = render_frame(0.0, width=WIDTH, height=HEIGHT)
    depth_mm = degrade_depth(rendered.depth, KinectDegradation(scale=SCALE))

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    node = rclpy.create_node("colcon_test_driver", context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    color_pub = node.create_publisher(Image, "/installed/color/image", qos)
    depth_pub = node.create_publisher(Image, "/installed/depth/image", qos)
    info_pub = node.create_publisher(CameraInfo, "/installed/color/camera_info", qos)
    images: list[Image] = []
    node.create_subscription(Image, "/installed/depth_enhanced/image", images.append, qos)
    process = NodeProcess(
        "",
        ["-r", "__ns:=/installed", "-p", "engine:=torch", "-p", "input_qos:=reliable"],
        name="installed",
        program=[str(executable)],
        env=env,
    )
    try:
        wait_for(
            lambda: color_pub.get_subscription_count() >= 1
            and depth_pub.get_subscription_count() >= 1
            and info_pub.get_subscription_count() >= 1
            and node.count_publishers("/installed/depth_enhanced/image") >= 1,
            STARTUP_S,
            "the installed node's topics",
            executor,
            process,
        )
        assert str(workspace) in process.log(), "the node did not load the workspace's weights"
        out = None
        for attempt in range(5):  # the first pair may race camera_info: retry
            stamp = node.get_clock().now().nanoseconds
            info_pub.publish(camera_info_msg(rendered.intrinsics, stamp, FRAME))
            color_pub.publish(image_msg(rendered.color, "rgb8", stamp, FRAME))
            depth_pub.publish(image_msg(depth_mm, "16UC1", stamp, FRAME))
            try:
                out = wait_for(
                    lambda s=stamp: [m for m in images if stamp_ns(m.header.stamp) == s],
                    10.0 if attempt < 4 else 30.0,
                    "the enhanced image",
                    executor,
                    process,
                )[0]
                break
            except AssertionError:
                if not process.alive() or attempt == 4:
                    raise
        assert (out.width, out.height, out.encoding) == (WIDTH, HEIGHT, "16UC1")
        assert out.header.frame_id == FRAME
        assert (image_to_array(out) > 0).mean() > 0.5  # depth, not an empty image
    finally:
        code = process.stop()
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
    log = process.log()
    assert code == 0, log
    assert "Traceback" not in log, log
