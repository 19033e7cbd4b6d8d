"""Launch files are for real ROS 2 installs (`ros2 launch` is not installable here):
check that each compiles, refers only to files this package installs, and describes
its arguments. The parameter files themselves are started with the real node in
test_node.py."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def test_there_are_launch_files():
    names = {path.name for path in LAUNCH_FILES}
    assert {"depth_enhancer.launch.py", "openni2.launch.py", "point_cloud.launch.py"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_launch_file_compiles_and_defines_generate_launch_description(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    compile(tree, str(path), "exec")
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_launch_file_refers_to_installed_files(path):
    text = path.read_text()
    for config in re.findall(r'"config",\s*"([^"]+)"', text):
        assert (REPO / "config" / config).is_file(), f"{path.name} refers to config/{config}"
    for launch in re.findall(r'"launch",\s*"([^"]+)"', text):
        assert (REPO / "launch" / launch).is_file(), f"{path.name} refers to launch/{launch}"
    # Each starts the node, directly or through the generic launch file.
    assert 'executable="depth_enhancer"' in text or '"depth_enhancer.launch.py"' in text
    setup = (REPO / "setup.py").read_text()
    assert '"depth_enhancer = dkn_ros.ros.node:main"' in setup


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_every_launch_argument_has_a_description(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            keywords = {keyword.arg for keyword in node.keywords}
            assert "description" in keywords, f"{path.name}:{node.lineno} has no description"
