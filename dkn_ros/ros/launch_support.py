"""The decisions of the launch files (``launch/*.launch.py``), without launch/launch_ros.

``launch`` and ``launch_ros`` are not installable from PyPI, so the tests cannot run the
launch files; what the launch files decide is computed here instead, imported by them
at launch time and tested with the real node (test/test_launch_files.py).
"""

from __future__ import annotations

__all__ = ["USE_SIM_TIME_UNSET", "missing_packages", "node_parameters", "require_packages"]

USE_SIM_TIME_UNSET = ""  # the launch argument's default: "not given"


def node_parameters(config_file: str, use_sim_time: str) -> list[object]:
    """The ``parameters`` of the depth_enhancer ``Node`` action: the parameter file, then
    ``use_sim_time`` only when the launch argument was given.

    ``use_sim_time``: the launch argument's text, ``""`` (not given: the parameter file's
    value holds, e.g. ``true`` in config/bag_replay.yaml, else ROS's default false),
    ``true`` or ``false`` (case-insensitive; it overrides the file).

    Raises:
        ValueError: any other ``use_sim_time`` (one line).
    """
    parameters: list[object] = [config_file]
    sim_time = sim_time_parameters(use_sim_time)
    if sim_time:
        parameters.append(sim_time)
    return parameters


def sim_time_parameters(use_sim_time: str) -> dict[str, bool]:
    """``{"use_sim_time": bool}`` for ``true``/``false``, ``{}`` for ``""`` (not given)."""
    text = use_sim_time.strip().lower()
    if text == USE_SIM_TIME_UNSET:
        return {}
    if text not in ("true", "false"):
        raise ValueError(
            f"use_sim_time must be true, false or '' (not given), got {use_sim_time!r}"
        )
    return {"use_sim_time": text == "true"}


def missing_packages(names: list[str]) -> list[str]:
    """The ROS packages among ``names`` that the ament index does not list (its search
    path is ``AMENT_PREFIX_PATH``, set by sourcing a ROS install or a workspace)."""
    from ament_index_python.packages import get_packages_with_prefixes

    try:
        found = get_packages_with_prefixes()
    except OSError:  # AMENT_PREFIX_PATH is not set: nothing is sourced
        found = {}
    return [name for name in names if name not in found]


def require_packages(launch_file: str, names: dict[str, str]) -> None:
    """Fail before anything starts when a package the launch file needs is missing.

    ``names``: package -> what to install (e.g. ``ros-jazzy-depth-image-proc``).

    Raises:
        RuntimeError: one line naming the launch file, the missing packages and what
            to install; ``ros2 launch`` prints it and starts nothing.
    """
    missing = missing_packages(list(names))
    if missing:
        install = " ".join(names[name] for name in missing)
        raise RuntimeError(
            f"{launch_file} needs the ROS package(s) {', '.join(missing)}, not found in "
            f"AMENT_PREFIX_PATH: install them (apt install {install}) and source the "
            "install; nothing was started"
        )
