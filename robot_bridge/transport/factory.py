"""Choose a transport by name: the one module that knows every implementation (each imports only `base`)."""

from __future__ import annotations

from robot_bridge.transport.base import Transport

TRANSPORTS = ("dds", "rclpy")


def make_transport(kind: str, *, domain_id: int = 0, node_name: str = "vla_bridge", lifecycle: bool = False) -> Transport:
    """`dds` (cyclonedds, works anywhere) or `rclpy` (needs a ROS 2 install); each is imported only when chosen.
    `lifecycle`: on rclpy, the node is a ROS 2 lifecycle node (the bridge's; other processes need not be)."""
    if kind == "dds":
        from robot_bridge.transport.dds import DdsTransport

        return DdsTransport(domain_id=domain_id)
    if kind == "rclpy":
        from robot_bridge.transport.ros import RclpyTransport

        return RclpyTransport(node_name=node_name, domain_id=domain_id, lifecycle=lifecycle)
    raise ValueError(f"unknown transport {kind!r}; choose 'dds' (cyclonedds) or 'rclpy' (ROS 2 installed)")
