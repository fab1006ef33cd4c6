"""Transports carry the bridge's topics: direct DDS (`dds.py`, cyclonedds) or ROS 2 (`ros.py`, rclpy)."""

from robot_bridge.transport.base import QoS, Transport, make_transport

__all__ = ["QoS", "Transport", "make_transport"]
