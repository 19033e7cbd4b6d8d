"""ROS 2 adapters for dkn_ros: the node, time pairing of colour and depth (``sync``) and
the sensor_msgs/Image <-> numpy codec (``image_codec``).

``sync`` and ``image_codec.image_to_numpy`` import nothing from ROS, so they also serve
rosbags-deserialised messages and run where rclpy is not installed; only
``image_codec.numpy_to_image`` imports ``sensor_msgs`` (lazily).
"""
