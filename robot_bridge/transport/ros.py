"""rclpy transport: the same topics, types and QoS through a ROS 2 node.

UNTESTED HERE: rclpy is not on PyPI and these machines have no ROS 2 (docs/bridge.md says so). It is kept
thin on purpose: messages cross as CDR bytes, which are byte-identical between `robot_bridge.msgs` and
ROS 2 (tests/test_bridge_msgs.py), using rclpy's public `serialize_message` / `deserialize_message` and
`rosidl_runtime_py.utilities.get_message`. Everything else (rate loop, safety) is the shared node logic.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from robot_bridge import msgs
from robot_bridge.transport.base import QoS, Transport

logger = logging.getLogger(__name__)


class RclpyTransport(Transport):
    def __init__(self, node_name: str = "vla_bridge", domain_id: int = 0):
        try:
            import rclpy
            from rclpy.executors import MultiThreadedExecutor
        except ImportError as e:
            raise ImportError(
                "transport=rclpy needs a ROS 2 installation (source /opt/ros/<distro>/setup.bash); "
                "without ROS 2 use transport=dds, which speaks the same wire protocol"
            ) from e
        self._rclpy = rclpy
        if not rclpy.ok():
            rclpy.init(domain_id=domain_id)
        self.node = rclpy.create_node(node_name)
        self._executor = MultiThreadedExecutor()
        self._executor.add_node(self.node)
        self._spin = threading.Thread(target=self._executor.spin, daemon=True)
        self._spin.start()

    def _qos(self, q: QoS):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=q.depth,
            reliability=ReliabilityPolicy.RELIABLE if q.reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if q.transient_local else DurabilityPolicy.VOLATILE,
        )

    @staticmethod
    def _ros_class(msg_type: type):
        from rosidl_runtime_py.utilities import get_message

        return get_message(msgs.ROS_NAME[msg_type])

    def publisher(self, topic: str, msg_type: type, qos: QoS) -> Callable[[Any], None]:
        from rclpy.serialization import deserialize_message

        ros_cls = self._ros_class(msg_type)
        pub = self.node.create_publisher(ros_cls, topic, self._qos(qos))

        def publish(msg) -> None:
            pub.publish(deserialize_message(msgs.serialize(msg), ros_cls))

        return publish

    def subscribe(self, topic: str, msg_type: type, qos: QoS, callback: Callable[[Any], None]) -> None:
        from rclpy.serialization import serialize_message

        ros_cls = self._ros_class(msg_type)

        def on_msg(ros_msg) -> None:
            try:
                callback(msgs.deserialize(msg_type, serialize_message(ros_msg)))
            except Exception:
                logger.exception("callback for %s failed", topic)

        self.node.create_subscription(ros_cls, topic, on_msg, self._qos(qos))

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        if self._rclpy.ok():
            self._rclpy.shutdown()
