"""Start the depth_enhancer node (generic: any registered RGB-D camera or a bag).

    ros2 launch dkn_ros depth_enhancer.launch.py \
        color_image:=/camera/color/image_raw \
        color_info:=/camera/color/camera_info \
        depth_image:=/camera/aligned_depth_to_color/image_raw

The depth image must be registered to the colour camera (same field of view; it may
have a lower resolution): see the README for each camera.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from dkn_ros.ros.launch_support import node_parameters

ARGUMENTS = [
    ("namespace", "", "namespace of the node and of its relative topics"),
    (
        "config_file",
        PathJoinSubstitution([FindPackageShare("dkn_ros"), "config", "depth_enhancer.yaml"]),
        "parameter file (--params-file) for the node",
    ),
    (
        "use_sim_time",
        "",
        "true/false: use the /clock topic (bag replay with --clock); '' (default) = as "
        "config_file says (true in bag_replay.yaml), else false",
    ),
    ("color_image", "color/image", "colour image topic (sensor_msgs/Image)"),
    ("color_info", "color/camera_info", "colour camera_info topic"),
    ("depth_image", "depth/image", "depth image topic registered to colour (16UC1 or 32FC1)"),
    ("output_image", "depth_enhanced/image", "enhanced depth topic"),
    ("output_info", "depth_enhanced/camera_info", "camera_info published with the output"),
    ("log_level", "info", "logging level of the node"),
]


def enhancer_node(context: LaunchContext) -> list[Node]:
    """The node, its parameters decided by dkn_ros.ros.launch_support.node_parameters
    (use_sim_time only when given, so that the file's value holds otherwise)."""
    parameters = node_parameters(
        LaunchConfiguration("config_file").perform(context),
        LaunchConfiguration("use_sim_time").perform(context),
    )
    node = Node(
        package="dkn_ros",
        executable="depth_enhancer",
        name="depth_enhancer",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=parameters,
        remappings=[
            ("color/image", LaunchConfiguration("color_image")),
            ("color/camera_info", LaunchConfiguration("color_info")),
            ("depth/image", LaunchConfiguration("depth_image")),
            ("depth_enhanced/image", LaunchConfiguration("output_image")),
            ("depth_enhanced/camera_info", LaunchConfiguration("output_info")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    return [node]


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, default, description in ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=enhancer_node)])
