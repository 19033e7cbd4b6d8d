"""Asus Xtion / PrimeSense (and Kinect v1 through OpenNI2) with depth registered to
colour by the driver, and the depth_enhancer behind it.

    ros2 launch dkn_ros openni2.launch.py            # needs ros-jazzy-openni2-camera

Topics (namespace ``camera`` by default): the driver publishes ``rgb/image_raw``,
``rgb/camera_info`` and, with ``depth_registration``, ``depth_registered/image_raw``;
the enhancer publishes ``depth_enhanced/image`` and ``depth_enhanced/camera_info``.

Without openni2_camera (or rclcpp_components) the launch stops with one line before
anything starts; if the driver's container exits, the whole launch shuts down with it.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import ComposableNodeContainer, Node
from launch_ros.descriptions import ComposableNode
from launch_ros.substitutions import FindPackageShare

from dkn_ros.ros.launch_support import require_packages

NEEDED = {
    "openni2_camera": "ros-jazzy-openni2-camera",
    "rclcpp_components": "ros-jazzy-rclcpp-components",
}


def generate_launch_description() -> LaunchDescription:
    require_packages("openni2.launch.py", NEEDED)  # before anything can start
    namespace = LaunchConfiguration("namespace")
    config = PathJoinSubstitution([FindPackageShare("dkn_ros"), "config", "openni2.yaml"])
    driver = ComposableNodeContainer(
        name="camera_container",
        namespace=namespace,
        package="rclcpp_components",
        executable="component_container",
        composable_node_descriptions=[
            ComposableNode(
                package="openni2_camera",
                plugin="openni2_wrapper::OpenNI2Driver",
                name="driver",
                namespace=namespace,
                parameters=[
                    {"depth_registration": True},
                    {"use_device_time": True},
                    {"rgb_frame_id": [namespace, "_rgb_optical_frame"]},
                    {"depth_frame_id": [namespace, "_depth_optical_frame"]},
                ],
                remappings=[("depth/image", "depth_registered/image_raw")],
            )
        ],
        output="screen",
        on_exit=Shutdown(reason="the camera driver's container exited"),
    )
    enhancer = Node(
        package="dkn_ros",
        executable="depth_enhancer",
        name="depth_enhancer",
        namespace=namespace,
        output="screen",
        parameters=[LaunchConfiguration("config_file")],
        remappings=[
            ("color/image", "rgb/image_raw"),
            ("color/camera_info", "rgb/camera_info"),
            ("depth/image", "depth_registered/image_raw"),
        ],
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "namespace", default_value="camera", description="namespace of the camera"
            ),
            DeclareLaunchArgument(
                "config_file", default_value=config, description="enhancer parameter file"
            ),
            driver,
            enhancer,
        ]
    )
