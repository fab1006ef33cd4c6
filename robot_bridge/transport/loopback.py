"""Keep a process's ROS 2 / DDS traffic on 127.0.0.1, for both transports (tests, benchmarks, sim in the loop).

Direct DDS reads `CYCLONEDDS_URI` (loopback interface, no multicast, unicast discovery to the well-known
localhost ports: what ROS 2 itself uses for `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`). rclpy reads
`ROS_AUTOMATIC_DISCOVERY_RANGE`; Kilted silently ignores `ROS_LOCALHOST_ONLY=1` on its own (its SPDP multicast
then left through a non-loopback interface, shared/facts/ros2_pypi.md), so both are set (Humble knows only the
latter). Children inherit the environment, so call this before starting them.
"""

from __future__ import annotations

import os

#: loopback only, no multicast; `ParticipantIndex=auto` puts Cyclone on the well-known unicast ports that
#: Fast DDS (rclpy) probes with the LOCALHOST range: without it the two never discover each other.
LOOPBACK_URI = (
    '<CycloneDDS><Domain Id="any"><General><Interfaces><NetworkInterface name="lo" multicast="false"/>'
    "</Interfaces><AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto"
    "</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex><Peers><Peer address=\"127.0.0.1\"/>"
    "</Peers></Discovery></Domain></CycloneDDS>"
)

LOOPBACK_ENV = {
    "CYCLONEDDS_URI": LOOPBACK_URI,
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    "ROS_LOCALHOST_ONLY": "1",
}


def use_loopback() -> None:
    """Keep this process's (and its children's) DDS traffic on loopback; call before the first participant."""
    os.environ.update(LOOPBACK_ENV)
