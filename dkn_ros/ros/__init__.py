"""ROS 2 adapters for dkn_ros: the node, the frame step they share (``frame_step``: one
(colour, depth, camera_info) triple to output messages or a drop reason), the offline
rosbag2 path (``bag``), time pairing of colour and depth (``sync``), the
sensor_msgs/Image <-> numpy codec (``image_codec``) and the live demo.

``sync``, ``frame_step`` and ``image_codec.image_to_numpy`` import nothing from ROS, so
they also serve rosbags-deserialised messages and run where rclpy is not installed;
only ``image_codec.numpy_to_image`` imports ``sensor_msgs`` (lazily).
"""
