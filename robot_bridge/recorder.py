"""Record bridge topics to a rosbag2 (mcap by default) with `rosbags`, readable by `ros2 bag` and `vla-convert`.

Messages are stored as the CDR bytes ROS 2 itself would store (our encoding is byte-identical, see
tests/test_bridge_msgs.py), stamped with the receive time, with the QoS each topic was offered with in the
bag metadata (a QoS mismatch there is a known reason for readers to return 0 messages).

    with Recorder("outputs/bags/session1", transport, BridgeConfig().topics) as rec:
        ...  # run the bridge / the robot
    rec.counts  # messages written per topic
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from robot_bridge import msgs
from robot_bridge.config import TopicsConfig
from robot_bridge.transport.base import LATCHED, RELIABLE, SENSOR, QoS, Transport

logger = logging.getLogger(__name__)


def session_topics(topics: TopicsConfig) -> list[tuple[str, type, QoS]]:
    """The topics a session recording needs for `vla-convert` (inputs, commands, the safe action, status)."""
    out: list[tuple[str, type, QoS]] = [(t, msgs.camera_message(topics, c), SENSOR) for c, t in topics.cameras.items()]
    for topic, typ, qos in [
        (topics.joint_states, msgs.JointState, SENSOR), (topics.ee_pose, msgs.PoseStamped, SENSOR),
        (topics.instruction, msgs.String, LATCHED), (topics.estop, msgs.Bool, LATCHED),
        (topics.lifecycle, msgs.String, RELIABLE),
        (topics.twist, msgs.TwistStamped, RELIABLE), (topics.gripper, msgs.Float64MultiArray, RELIABLE),
        (topics.action, msgs.JointState, RELIABLE), (topics.status, msgs.DiagnosticArray, RELIABLE),
    ]:
        if topic:
            out.append((topic, typ, qos))
    return out


def _bag_qos(q: QoS):
    """Our QoS as rosbag2 metadata (what `ros2 bag play` re-offers)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(0x7FFFFFFF, 0xFFFFFFFF)  # rclcpp's "infinite" duration in bag metadata
    return Qos(QosHistory.KEEP_LAST, q.depth, QosReliability.RELIABLE if q.reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if q.transient_local else QosDurability.VOLATILE, never, never,
               QosLiveliness.AUTOMATIC, never, False)


class Recorder:
    """Subscribe to `topics` on `transport` and write every message to a rosbag2 at `path` (must not exist)."""

    def __init__(self, path: str | Path, transport: Transport, topics: TopicsConfig | list[tuple[str, type, QoS]],
                 storage: str = "mcap"):
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"recording target {self.path} exists; choose a new directory")
        plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
        if plugin is None:
            raise ValueError(f"storage={storage!r}; choose mcap or sqlite3")
        self.typestore = get_typestore(Stores.ROS2_HUMBLE)
        self._writer = Writer(self.path, version=8, storage_plugin=plugin)
        self._writer.open()
        self._lock = threading.Lock()
        self._closed = False
        self.counts: dict[str, int] = {}
        self._conns = {}
        spec = session_topics(topics) if isinstance(topics, TopicsConfig) else topics
        for topic, typ, qos in spec:
            self._conns[topic] = self._writer.add_connection(topic, msgs.ROS_NAME[typ], typestore=self.typestore,
                                                             offered_qos_profiles=[_bag_qos(qos)])
            self.counts[topic] = 0
            transport.subscribe(topic, typ, qos, lambda m, topic=topic: self._write(topic, m))
        logger.info("recording %d topics to %s (%s)", len(spec), self.path, storage)

    def _write(self, topic: str, m) -> None:
        data = msgs.serialize(m)
        with self._lock:
            if self._closed:
                return
            self._writer.write(self._conns[topic], time.time_ns(), data)
            self.counts[topic] += 1

    def close(self) -> Path:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.close()
        logger.info("recorded %d messages to %s", sum(self.counts.values()), self.path)
        return self.path

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
