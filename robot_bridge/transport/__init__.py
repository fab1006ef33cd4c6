"""Transports carry the bridge's topics: direct DDS (`dds.py`, cyclonedds) or ROS 2 (`ros.py`, rclpy).

`base` is the interface and QoS profiles, `factory.make_transport` picks an implementation by name.
"""

from robot_bridge.transport.base import LATCHED, RELIABLE, SENSOR, QoS, Transport
from robot_bridge.transport.factory import TRANSPORTS, make_transport

__all__ = ["LATCHED", "RELIABLE", "SENSOR", "QoS", "TRANSPORTS", "Transport", "make_transport"]
