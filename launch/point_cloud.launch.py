"""The generic depth_enhancer plus depth_image_proc/point_cloud_xyzrgb on its output:
a coloured point cloud from the enhanced depth.

    ros2 launch dkn_ros point_cloud.launch.py \
        color_image:=/camera/rgb/image_raw color_info:=/camera/rgb/camera_info \
        depth_image:=/camera/depth_registered/image_raw   # needs ros-jazzy-depth-image-proc

The enhanced depth has the colour image's size, header and camera_info, so
point_cloud_xyzrgb takes the pair unchanged; the cloud is published on ``points``.

Without depth_image_proc (or rclcpp_components) the launch stops with one line before
anything starts (the enhancer used to start first and outlive the failed launch); if
the point cloud container exits, the whole launch shuts down with it.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    OpaqueFunction,
    Shutdown,
)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import ComposableNodeContainer
from launch_ros.descriptions import ComposableNode
from launch_ros.substitutions import FindPackageShare

from dkn_ros.ros.launch_support import require_packages, sim_time_parameters

NEEDED = {
    "depth_image_proc": "ros-jazzy-depth-image-proc",
    "rclcpp_components": "ros-jazzy-rclcpp-components",
}

PASSED_ON = ("namespace", "config_file", "use_sim_time", "color_image", "color_info",
             "depth_image")  # fmt: skip


def point_cloud_container(context: LaunchContext) -> list[ComposableNodeContainer]:
    """depth_image_proc's point_cloud_xyzrgb in a container; use_sim_time only when
    given (as for the enhancer)."""
    sim_time = sim_time_parameters(LaunchConfiguration("use_sim_time").perform(context))
    container = ComposableNodeContainer(
        name="point_cloud_container",
        namespace=LaunchConfiguration("namespace"),
        package="rclcpp_components",
        executable="component_container",
        composable_node_descriptions=[
            ComposableNode(
                package="depth_image_proc",
                plugin="depth_image_proc::PointCloudXyzrgbNode",
                name="point_cloud_xyzrgb",
                namespace=LaunchConfiguration("namespace"),
                parameters=[sim_time] if sim_time else [],
                remappings=[
                    ("rgb/image_rect_color", LaunchConfiguration("color_image")),
                    ("rgb/camera_info", "depth_enhanced/camera_info"),
                    ("depth_registered/image_rect", "depth_enhanced/image"),
                    ("points", "points"),
                ],
            )
        ],
        output="screen",
        on_exit=Shutdown(reason="the point cloud container exited"),
    )
    return [container]


def generate_launch_description() -> LaunchDescription:
    require_packages("point_cloud.launch.py", NEEDED)  # before anything can start
    generic = PathJoinSubstitution(
        [FindPackageShare("dkn_ros"), "launch", "depth_enhancer.launch.py"]
    )
    enhancer = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(generic),
        launch_arguments={name: LaunchConfiguration(name) for name in PASSED_ON}.items(),
    )
    defaults = {
        "namespace": "",
        "config_file": PathJoinSubstitution(
            [FindPackageShare("dkn_ros"), "config", "depth_enhancer.yaml"]
        ),
        "use_sim_time": "",
        "color_image": "color/image",
        "color_info": "color/camera_info",
        "depth_image": "depth/image",
    }
    declared = [
        DeclareLaunchArgument(name, default_value=defaults[name], description=f"see {name} "
                              "in depth_enhancer.launch.py")
        for name in PASSED_ON
    ]  # fmt: skip
    cloud = OpaqueFunction(function=point_cloud_container)
    return LaunchDescription([*declared, cloud, enhancer])
