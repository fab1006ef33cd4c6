"""Genuine ROS 2 nodes (rclpy on Fast DDS, a separate process from .venv-ros) and our direct-DDS transport
(Cyclone DDS, this process, no ROS libraries loaded) exchange every message type the bridge uses, both
directions at once, on loopback, with ROS default QoS (RELIABLE, VOLATILE, KEEP_LAST 10).

Startup without lost first samples: with VOLATILE durability a sample written before the writer has matched
the reader is gone, and Fast DDS reports a match before Cyclone has one (shared/facts/ros2_pypi.md). So
neither side writes until both sides see every match (`Transport.wait_matched` here, `get_subscription_count`
/ `get_publisher_count` in the peer); then every sample must arrive, in order, with equal values.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time

import pytest

pytest.importorskip("cyclonedds")

import ros2_env  # noqa: E402
from robot_bridge.ros_interop import INTEROP_TYPES, digest, dds_from_plain, dds_to_plain, sample, topic  # noqa: E402
from robot_bridge.transport.base import RELIABLE  # noqa: E402

COUNT = 20  # samples per type and direction (two of them 150 kB images, fragmented on the wire)
HZ = 50.0


class Peer:
    """The genuine rclpy process (`python -m robot_bridge.ros_interop`) and its JSON-line events."""

    def __init__(self, python: str, domain: int):
        self.proc = subprocess.Popen([python, "-m", "robot_bridge.ros_interop", "--domain", str(domain),
                                      "--count", str(COUNT), "--hz", str(HZ)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=ros2_env.ros_env(domain), cwd=ros2_env.REPO_ROOT)
        self.events: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))
        self.events.put({"event": "exited"})

    def expect(self, name: str, timeout: float = 60.0) -> dict:
        try:
            ev = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the rclpy peer sent no {name!r} within {timeout} s") from None
        if ev["event"] != name:
            err = self.proc.stderr.read() if ev["event"] == "exited" else ""
            raise AssertionError(f"the rclpy peer sent {ev} instead of {name!r}\n{err[-3000:]}")
        return ev

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            self.send("exit")
            self.proc.wait(20)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def _first_difference(got: list, want: list) -> str:
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"sample {i}: got {str(g)[:400]}\n want {str(w)[:400]}"
    return f"{len(got)} samples, {len(want)} expected"


def test_genuine_rclpy_and_direct_dds_exchange_every_bridge_message_type(ros_python):
    from robot_bridge import msgs
    from robot_bridge.transport.dds import DdsTransport
    from robot_bridge.transport.loopback import use_loopback

    use_loopback()
    domain = 210 + os.getpid() % 20  # private (210-229), apart from the other bridge tests' domains
    peer = Peer(ros_python, domain)
    t = DdsTransport(domain)
    try:
        got: dict[str, list] = {ty: [] for ty in INTEROP_TYPES}
        pubs = {}
        for ty in INTEROP_TYPES:
            cls = msgs.ROS_TYPES[ty]
            t.subscribe(topic(ty, "from_ros"), cls, RELIABLE, lambda m, ty=ty: got[ty].append(digest(dds_to_plain(m))))
            pubs[ty] = t.publisher(topic(ty, "to_ros"), cls, RELIABLE)
        peer.expect("matched")  # the peer sees all 16 matches
        for ty in INTEROP_TYPES:  # and so do we
            for direction in ("from_ros", "to_ros"):
                assert t.wait_matched(topic(ty, direction), 1, timeout=20), f"no match on {topic(ty, direction)}"
        peer.send("go")
        next_t = time.monotonic()
        for i in range(COUNT):
            for ty in INTEROP_TYPES:
                pubs[ty](dds_from_plain(ty, sample(ty, i)))
            next_t += 1.0 / HZ
            time.sleep(max(0.0, next_t - time.monotonic()))
        received = peer.expect("received")  # the peer waits for all of ours (or its timeout)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(len(v) < COUNT for v in got.values()):
            time.sleep(0.01)
        want = {ty: [digest(sample(ty, i)) for i in range(COUNT)] for ty in INTEROP_TYPES}
        json_want = json.loads(json.dumps(want))  # as the peer's JSON line carries them
        for ty in INTEROP_TYPES:
            assert got[ty] == want[ty], f"rclpy -> direct DDS, {ty}: {_first_difference(got[ty], want[ty])}"
            assert received["messages"][ty] == json_want[ty], \
                f"direct DDS -> rclpy, {ty}: {_first_difference(received['messages'][ty], json_want[ty])}"
        assert received["acked"], "the peer's reliable writers were not acknowledged by our readers"
    finally:
        t.close()  # first, while the peer still acknowledges: a writer with unacknowledged data lingers
        peer.close()
