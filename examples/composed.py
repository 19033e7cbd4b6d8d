"""Compose the depth_enhancer with your own node in one process and one executor.

    python examples/composed.py        # then publish to /camera/rgb/image_raw etc.

Python nodes are composed by sharing an executor. The enhancer does its inference on a
worker thread of its own, so a SingleThreadedExecutor keeps serving the other node's
callbacks while a frame is being enhanced.
"""

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image

from dkn_ros.ros.node import DepthEnhancerNode


class DepthConsumer(Node):
    """Stands for your perception node: it uses the enhanced depth."""

    def __init__(self):
        super().__init__("depth_consumer")
        self.create_subscription(Image, "/camera/depth_enhanced/image", self.on_depth, 5)

    def on_depth(self, msg: Image) -> None:
        self.get_logger().info(f"enhanced depth {msg.width}x{msg.height} ({msg.encoding})")


def main() -> None:
    rclpy.init()
    enhancer = DepthEnhancerNode(
        namespace="camera",
        cli_args=[
            "--ros-args",
            "-r", "color/image:=rgb/image_raw",
            "-r", "color/camera_info:=rgb/camera_info",
            "-r", "depth/image:=depth_registered/image_raw",
        ],
    )  # fmt: skip
    consumer = DepthConsumer()
    executor = SingleThreadedExecutor()
    executor.add_node(enhancer)
    executor.add_node(consumer)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        enhancer.destroy_node()
        consumer.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
