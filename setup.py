"""dkn_ros: builds with colcon (ament_python) in a ROS 2 workspace and installs with pip."""

import os
from glob import glob

from setuptools import find_packages, setup

package_name = "dkn_ros"

# colcon --symlink-install runs this file through a symlink in its build folder, from
# that folder, where only setup.py, setup.cfg, package.xml, the packages and the
# data_files are linked: files are found from the real folder of this file (the
# source), never from the current directory.
HERE = os.path.dirname(os.path.realpath(__file__))


def here(*parts: str) -> str:
    return os.path.join(HERE, *parts)


def relative_glob(pattern: str) -> list[str]:
    """``glob`` in the source folder, as paths relative to it: data_files wants them
    relative (colcon links each one into its build folder under the same name)."""
    return sorted(os.path.relpath(path, HERE) for path in glob(here(pattern)))


ROS_FROM_PYPI = [
    "ros-jazzy-rclpy[fastrtps]",
    "ros-jazzy-sensor-msgs",
    "ros-jazzy-std-msgs",
    "ros-jazzy-diagnostic-msgs",
    "rosbags>=0.11",  # bag.py subclasses its mcap writer (0.11.9 tested)
    # decodes sensor_msgs/CompressedImage (node and bag); the same distribution as the
    # train and test extras, so that one cv2 is installed
    "opencv-contrib-python-headless>=4.8",
]

setup(
    name=package_name,
    version="0.1.0",
    description="Real-time depth enhancement for RGB-D cameras with Deformable Kernel Networks",
    long_description=open(here("README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    package_data={
        package_name: [
            "weights/*.safetensors",
            "weights/*.json",
            "models/*.c",  # compiled on first use (dkn_ros/native.py)
            "processing/*.c",
            "ros/fastdds_large_images.xml",
            # the demo's real RGB-D frames (Open3D test data, MIT: its licence file travels)
            "data/rgbd_sequence/*.md",
            "data/rgbd_sequence/*.txt",
            "data/rgbd_sequence/rgbd.match",
            "data/rgbd_sequence/color/*.jpg",
            "data/rgbd_sequence/depth/*.png",
        ]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", relative_glob("launch/*.py")),
        (
            f"share/{package_name}/config",
            relative_glob("config/*.yaml") + ["dkn_ros/ros/fastdds_large_images.xml"],
        ),
    ],
    install_requires=[
        "numpy>=1.24",
        "torch>=2.4",
        "pillow>=9.0",
        "scipy>=1.10",
        "safetensors>=0.4",
        "tqdm>=4.60",
    ],
    extras_require={
        "onnx": ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1"],
        "train": ["opencv-contrib-python-headless>=4.8", "h5py>=3.8", "pyyaml>=6"],
        # ROS 2 Jazzy from PyPI, for a plain virtual environment; in a ROS 2 workspace
        # these come from the ROS distribution (package.xml) instead.
        "ros": ROS_FROM_PYPI,
        "test": ROS_FROM_PYPI
        + [
            "pytest>=7",
            "ruff>=0.5",
            "onnx>=1.16",
            "onnxruntime>=1.18",
            "onnxscript>=0.1",
            "opencv-contrib-python-headless>=4.8",
            "h5py>=3.8",
            "pyyaml>=6",
            # the real ROS 2 build tool: test_colcon_build.py builds the package with it
            "colcon-common-extensions>=0.3",
        ],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "dkn-ros = dkn_ros.cli:main",
            "depth_enhancer = dkn_ros.ros.node:main",
        ],
    },
)
