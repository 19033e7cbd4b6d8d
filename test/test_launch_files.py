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


# ------------------------------------------------ what the launch files decide, run for real
#
# The launch files take their decisions from dkn_ros.ros.launch_support (launch_ros is
# not installable here): the node's parameters (use_sim_time only when given) and the
# packages they need. The tests below check that the launch files use those helpers,
# then start the real node with exactly the arguments launch_ros makes of the helper's
# result and read its use_sim_time over ROS (parameter service, real DDS).

DEPTH_ENHANCER_LAUNCH = REPO / "launch" / "depth_enhancer.launch.py"
POINT_CLOUD_LAUNCH = REPO / "launch" / "point_cloud.launch.py"


def launch_argument_default(path: Path, name: str):
    """The default of launch argument ``name`` (a literal) in ``path``: from the
    ``ARGUMENTS`` table (name, default, description) or a ``defaults`` dict."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and len(node.elts) == 3:
            first, default = node.elts[0], node.elts[1]
            if isinstance(first, ast.Constant) and first.value == name:
                return ast.literal_eval(default)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == name:
                    return ast.literal_eval(value)
    raise AssertionError(f"no launch argument {name!r} in {path.name}")


def test_use_sim_time_argument_is_not_given_by_default():
    """Default '' = not given: config/bag_replay.yaml's use_sim_time: true used to be
    overridden by the launch argument's default "false"."""
    assert launch_argument_default(DEPTH_ENHANCER_LAUNCH, "use_sim_time") == ""
    assert launch_argument_default(POINT_CLOUD_LAUNCH, "use_sim_time") == ""
    text = DEPTH_ENHANCER_LAUNCH.read_text()
    assert "from dkn_ros.ros.launch_support import node_parameters" in text
    call = re.search(r"node_parameters\(\s*(.*?)\)\n", text, re.S)
    assert call, "depth_enhancer.launch.py does not call node_parameters"
    assert 'LaunchConfiguration("config_file")' in call.group(1)
    assert 'LaunchConfiguration("use_sim_time")' in call.group(1)
    assert "parameters=parameters," in text  # the helper's result, nothing else


def test_node_parameters_cases():
    from dkn_ros.ros.launch_support import node_parameters

    assert node_parameters("a.yaml", "") == ["a.yaml"]
    assert node_parameters("a.yaml", "true") == ["a.yaml", {"use_sim_time": True}]
    assert node_parameters("a.yaml", "False") == ["a.yaml", {"use_sim_time": False}]
    with pytest.raises(ValueError, match="use_sim_time must be true, false or ''"):
        node_parameters("a.yaml", "maybe")


def launch_ros_arguments(parameters: list, namespace: str, folder: Path) -> list[str]:
    """The ``--ros-args`` launch_ros (jazzy) gives a Node with ``name="depth_enhancer"``,
    this ``namespace`` and these ``parameters``, in order: a path becomes ``--params-file
    PATH``; a dict a file of its own keyed by the fully qualified node name (so its values
    beat a ``/**`` file's, whatever the order: rcl's rule; that is how the old
    ``{"use_sim_time": "false"}`` beat bag_replay.yaml)."""
    import yaml

    node_name = f"{namespace.rstrip('/')}/depth_enhancer"
    args = ["-r", "__node:=depth_enhancer", "-r", f"__ns:={namespace}"]
    for index, entry in enumerate(parameters):
        if isinstance(entry, dict):
            path = folder / f"launch_params_{namespace.strip('/')}_{index}.yaml"
            path.write_text(yaml.dump({node_name: {"ros__parameters": entry}}))
            entry = str(path)
        args += ["--params-file", str(entry)]
    return args + ["--log-level", "info"]


SIM_TIME_CASES = [  # (config file, use_sim_time launch argument, expected use_sim_time)
    ("bag_replay.yaml", None, True),  # None: the launch file's default
    ("bag_replay.yaml", "false", False),
    ("depth_enhancer.yaml", None, False),
    ("depth_enhancer.yaml", "true", True),
]


def test_node_started_as_launched_takes_use_sim_time_from_file_unless_given(tmp_path):
    """Real nodes (one per case, in parallel) started with the launch file's
    arguments; their use_sim_time read back through the parameter service."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter_client import AsyncParameterClient
    from ros_helpers import NodeProcess, isolate_ros, wait_for

    from dkn_ros.ros.launch_support import node_parameters

    default = launch_argument_default(DEPTH_ENHANCER_LAUNCH, "use_sim_time")
    isolate_ros(offset=59)
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    driver = rclpy.create_node("launch_args_driver", context=context)
    executor.add_node(driver)
    processes = []
    try:
        for index, (config, given, _) in enumerate(SIM_TIME_CASES):
            parameters = node_parameters(
                str(REPO / "config" / config), default if given is None else given
            )
            args = launch_ros_arguments(parameters, f"/launch{index}", tmp_path)
            args += ["-p", "engine:=torch"]  # no ONNX export on a fresh machine
            processes.append(NodeProcess("dkn_ros.ros.node", args, name=f"launch{index}"))
        for index, ((config, given, expected), process) in enumerate(
            zip(SIM_TIME_CASES, processes, strict=True)
        ):
            client = AsyncParameterClient(driver, f"/launch{index}/depth_enhancer")
            wait_for(
                client.services_are_ready, 120.0, f"node {index}'s parameter service",
                executor, process,
            )  # fmt: skip
            future = client.get_parameters(["use_sim_time"])
            wait_for(future.done, 30.0, "use_sim_time", executor, process)
            value = future.result().values[0].bool_value
            assert value is expected, (
                f"{config} with use_sim_time:={given!r}: node has use_sim_time {value}; "
                f"{process!r}"
            )
    finally:
        codes = [process.stop() for process in processes]
        executor.shutdown()
        driver.destroy_node()
        context.try_shutdown()
    assert codes == [0] * len(processes), [p.log_tail() for p in processes]


def test_launch_files_check_their_packages_first():
    """point_cloud.launch.py (depth_image_proc) and openni2.launch.py (openni2_camera)
    check the ament index before anything is started: the enhancer used to start first
    and outlive the launch when the other package was missing."""
    for path, package in [
        (POINT_CLOUD_LAUNCH, "depth_image_proc"),
        (REPO / "launch" / "openni2.launch.py", "openni2_camera"),
    ]:
        tree = ast.parse(path.read_text())
        function = next(
            node for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name == "generate_launch_description"
        )  # fmt: skip
        first = function.body[0]
        assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Call), path.name
        assert getattr(first.value.func, "id", "") == "require_packages", path.name
        needed = next(
            node.value for node in tree.body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NEEDED"
        )  # fmt: skip
        assert package in ast.literal_eval(needed), path.name
        assert "on_exit=Shutdown(" in path.read_text(), path.name


def make_ament_prefix(folder: Path, packages: list[str]) -> Path:
    """An install prefix with ament index markers for ``packages`` (as colcon makes)."""
    index = folder / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    for package in packages:
        (index / package).write_text("")
    return folder


def test_require_packages_one_line_when_missing(tmp_path, monkeypatch):
    from dkn_ros.ros.launch_support import missing_packages, require_packages

    first = make_ament_prefix(tmp_path / "ros", ["rclcpp_components"])
    second = make_ament_prefix(tmp_path / "ws", ["depth_image_proc"])
    needed = {"depth_image_proc": "ros-jazzy-depth-image-proc", "rclcpp_components": "x"}
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(first))
    assert missing_packages(list(needed)) == ["depth_image_proc"]
    with pytest.raises(RuntimeError) as error:
        require_packages("point_cloud.launch.py", needed)
    text = str(error.value)
    assert "\n" not in text
    assert "point_cloud.launch.py" in text and "depth_image_proc" in text
    assert "ros-jazzy-depth-image-proc" in text and "rclcpp_components" not in text
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{first}:{second}")
    require_packages("point_cloud.launch.py", needed)  # both found: no error
    monkeypatch.delenv("AMENT_PREFIX_PATH")
    assert missing_packages(["depth_image_proc"]) == ["depth_image_proc"]
