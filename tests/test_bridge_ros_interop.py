"""Genuine ROS 2 nodes (rclpy on Fast DDS, a separate process from .venv-ros) and our direct-DDS transport
(Cyclone DDS, this process, no ROS libraries loaded) exchange every message type the bridge uses, both
directions at once, on loopback, with ROS default QoS (RELIABLE, VOLATILE, KEEP_LAST 10).

Startup without lost first samples: with VOLATILE durability a sample written before the writer has matched
the reader is gone, and Fast DDS reports a match before Cyclone has one (shared/facts/ros2_pypi.md). So
neither side writes until both sides see every match (`Transport.wait_matched` here, `get_subscription_count`
/ `get_publisher_count` in the peer); then every sample must arrive, in order, with equal values. The peer
loads robot_bridge/params/fastdds_interop.xml, as any Fast DDS process talking to Cyclone must (the file says
why; without its heartbeat setting the first 150 kB image never arrived).
"""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("cyclonedds")

import ros2_env  # noqa: E402
from robot_bridge.ros_interop import INTEROP_TYPES, PeerProcess, digest, exchange, sample  # noqa: E402

COUNT = 20  # samples per type and direction (half of the images 150 kB, fragmented on the wire)
HZ = 50.0


def _first_difference(got: list, want: list) -> str:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"sample {i}: got {str(g)[:400]}\n want {str(w)[:400]}"
    return f"{len(got)} samples, {len(want)} expected"


def test_genuine_rclpy_and_direct_dds_exchange_every_bridge_message_type(ros_python):
    from robot_bridge.transport.dds import DdsTransport
    from robot_bridge.transport.loopback import use_loopback

    use_loopback()
    domain = 210 + os.getpid() % 20  # and topics of its own: another run may share the domain
    peer = PeerProcess(ros_python, domain, ros2_env.ros_env(domain), count=COUNT, hz=HZ,
                       prefix=f"/interop_{os.getpid()}", cwd=str(ros2_env.REPO_ROOT))
    t = DdsTransport(domain)
    try:
        result = exchange(t, peer, count=COUNT, hz=HZ)
    finally:
        t.close()  # first, while the peer still acknowledges: a writer with unacknowledged data lingers
        peer.close()
    want = {ty: [digest(sample(ty, i)) for i in range(COUNT)] for ty in INTEROP_TYPES}
    json_want = json.loads(json.dumps(want))  # as the peer's JSON line carries them
    got, received = result["got"], result["peer"]
    for ty in INTEROP_TYPES:
        assert got[ty] == want[ty], f"rclpy -> direct DDS, {ty}: {_first_difference(got[ty], want[ty])}"
        assert received["messages"][ty] == json_want[ty], \
            f"direct DDS -> rclpy, {ty}: {_first_difference(received['messages'][ty], json_want[ty])}"
    assert received["acked"], "the peer's reliable writers were not acknowledged by our readers"
