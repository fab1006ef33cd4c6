"""The transport contract, for each transport: direct DDS (Cyclone) and rclpy (a real ROS 2 Kilted on Fast DDS).

Two transports of one kind in this process (two participants on a private domain, loopback only) exchange
every message type the bridge uses with values intact; a latched topic reaches a subscriber that joins late;
`matched` counts the remote endpoints. The rclpy cases carry the `ros` marker: `make test` runs them under
.venv-ros (tests/ros2_env.py).
"""

from __future__ import annotations

import os
import time

import pytest

from robot_bridge import msgs
from robot_bridge.ros_interop import INTEROP_TYPES, dds_from_plain, dds_to_plain, digest, sample
from robot_bridge.transport import LATCHED, RELIABLE, make_transport
from robot_bridge.transport.loopback import use_loopback

use_loopback()  # before any participant exists in this process

KINDS = ["dds", pytest.param("rclpy", marks=pytest.mark.ros)]
PREFIX = f"/contract_{os.getpid()}"  # topics of its own: another run may share the domain
TYPES = INTEROP_TYPES + ("std_msgs/msg/Bool", "diagnostic_msgs/msg/DiagnosticArray")
EXTRA = {  # the bridge's e-stop and status types, beyond the interop set
    "std_msgs/msg/Bool": lambda i: {"data": i % 2 == 1},
    "diagnostic_msgs/msg/DiagnosticArray": lambda i: {
        "header": {"stamp": {"sec": i, "nanosec": 5}, "frame_id": ""},
        "status": [{"level": 2, "name": "vla_bridge", "message": f"tick {i}", "hardware_id": "arm",
                    "values": [{"key": "state", "value": "active"}]}]},
}


def _sample(ros_type: str, i: int) -> dict:
    return EXTRA[ros_type](i) if ros_type in EXTRA else sample(ros_type, i)


@pytest.fixture
def pair(request):
    kind = request.param
    domain = 60 + os.getpid() % 60 + (0 if kind == "dds" else 1)
    a = make_transport(kind, domain_id=domain, node_name="contract_a")
    b = make_transport(kind, domain_id=domain, node_name="contract_b")
    yield a, b
    b.close()
    a.close()


@pytest.mark.parametrize("pair", KINDS, indirect=True)
def test_every_bridge_message_type_arrives_with_equal_values(pair):
    a, b = pair
    got: dict[str, list] = {t: [] for t in TYPES}
    pubs = {}
    for ty in TYPES:
        topic = PREFIX + "/" + ty.rsplit("/", 1)[1].lower()
        b.subscribe(topic, msgs.ROS_TYPES[ty], RELIABLE, lambda m, ty=ty: got[ty].append(digest(dds_to_plain(m))))
        pubs[ty] = a.publisher(topic, msgs.ROS_TYPES[ty], RELIABLE)
    for ty in TYPES:
        topic = PREFIX + "/" + ty.rsplit("/", 1)[1].lower()
        assert a.wait_matched(topic, 1) and b.wait_matched(topic, 1), f"no match on {topic}"
    for i in range(3):
        for ty in TYPES:
            pubs[ty](dds_from_plain(ty, _sample(ty, i)))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(len(v) < 3 for v in got.values()):
        time.sleep(0.01)
    for ty in TYPES:
        assert got[ty] == [digest(_sample(ty, i)) for i in range(3)], ty


@pytest.mark.parametrize("pair", KINDS, indirect=True)
def test_latched_value_reaches_a_late_subscriber_and_matches_are_counted(pair):
    a, b = pair
    pub = a.publisher(PREFIX + "/estop", msgs.Bool, LATCHED)
    assert a.matched(PREFIX + "/estop") == 0
    pub(msgs.Bool(True))
    got: list = []
    b.subscribe(PREFIX + "/estop", msgs.Bool, LATCHED, got.append)
    assert b.wait_matched(PREFIX + "/estop", 1) and a.wait_matched(PREFIX + "/estop", 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not got:
        time.sleep(0.01)
    assert got == [msgs.Bool(True)]
