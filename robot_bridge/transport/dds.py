"""Direct DDS transport (Cyclone DDS): speaks the ROS 2 wire protocol without a ROS 2 install.

ROS 2 topic `/a/b` is DDS topic `rt/a/b`; types are `pkg::msg::dds_::Name_`, XCDR1 (rmw_cyclonedds rules,
shared/facts/ros2.md). A ROS 2 system running `rmw_cyclonedds_cpp` on the same domain sees these topics
(`ros2 topic list/echo`), though not a node (`ros2 node list`).

Network scope comes from `CYCLONEDDS_URI`, exactly as for ROS 2 itself; `transport.loopback.use_loopback`
keeps all traffic on 127.0.0.1 (tests, benchmarks, sim in the loop). A message that fails to decode is
counted and logged, never raised into the node.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from cyclonedds.core import Listener, Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from robot_bridge.transport.base import QoS, Transport

logger = logging.getLogger(__name__)


def dds_topic_name(ros_topic: str) -> str:
    """`/camera/image` -> `rt/camera/image` (rmw_cyclonedds' prefix for ROS 2 topics)."""
    if not ros_topic.startswith("/"):
        raise ValueError(f"ROS topic names here must be absolute (start with '/'), got {ros_topic!r}")
    return "rt" + ros_topic


def dds_qos(q: QoS) -> Qos:
    policies = [
        Policy.Reliability.Reliable(duration(seconds=1)) if q.reliable else Policy.Reliability.BestEffort,
        Policy.Durability.TransientLocal if q.transient_local else Policy.Durability.Volatile,
        Policy.History.KeepLast(q.depth),
        Policy.DataRepresentation(use_cdrv0_representation=True),  # XCDR1, as rmw_cyclonedds
    ]
    return Qos(*policies)


class DdsTransport(Transport):
    def __init__(self, domain_id: int = 0):
        self.participant = DomainParticipant(domain_id)
        self._topics: dict[str, Topic] = {}
        self._entities: list[Any] = []
        self._by_topic: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._closing = False
        self.decode_errors = 0

    def _topic(self, name: str, msg_type: type) -> Topic:
        with self._lock:
            t = self._topics.get(name)
            if t is None:
                t = Topic(self.participant, dds_topic_name(name), msg_type)
                self._topics[name] = t
            elif t.data_type is not msg_type:
                raise ValueError(f"topic {name} already carries {t.data_type.__name__}, not {msg_type.__name__}")
            return t

    def publisher(self, topic: str, msg_type: type, qos: QoS) -> Callable[[Any], None]:
        writer = DataWriter(self.participant, self._topic(topic, msg_type), qos=dds_qos(qos))
        self._entities.append(writer)
        self._by_topic.setdefault(topic, []).append(writer)
        return writer.write

    def subscribe(self, topic: str, msg_type: type, qos: QoS, callback: Callable[[Any], None]) -> None:
        def on_data_available(reader: DataReader) -> None:
            for _ in range(10_000):  # bounded: a peer flooding undecodable data cannot pin this thread
                if self._closing:
                    return
                try:
                    samples = reader.take(N=64)
                except Exception as e:  # undecodable bytes from a peer: count, log (rate-limited), keep going
                    if self._closing:
                        return
                    self.decode_errors += 1
                    if self.decode_errors in (1, 10, 100, 1000) or self.decode_errors % 10_000 == 0:
                        logger.warning("dropped an undecodable message on %s (%d so far): %s", topic, self.decode_errors, e)
                    continue
                if not samples:
                    return
                for s in samples:
                    if not isinstance(s, msg_type):  # invalid-data samples (e.g. disposes) carry no payload
                        continue
                    try:
                        callback(s)
                    except Exception:  # a callback bug must not kill the DDS listener thread
                        logger.exception("callback for %s failed", topic)

        reader = DataReader(self.participant, self._topic(topic, msg_type), qos=dds_qos(qos),
                            listener=Listener(on_data_available=on_data_available))
        self._entities.append(reader)
        self._by_topic.setdefault(topic, []).append(reader)
        # Historical (TRANSIENT_LOCAL) samples from a writer in this process are in the reader before its
        # listener can fire, and no later sample may come to trigger it: take them now.
        on_data_available(reader)

    def matched(self, topic: str) -> int:
        return sum(len(e.get_matched_publications() if isinstance(e, DataReader) else e.get_matched_subscriptions())
                   for e in self._by_topic.get(topic, []))

    def wait_acked(self, topic: str, timeout: float = 5.0) -> bool:
        writers = [e for e in self._by_topic.get(topic, []) if isinstance(e, DataWriter)]
        return all(w.wait_for_acks(duration(seconds=timeout)) for w in writers)

    def close(self) -> None:
        """Delete readers first, then writers, topics and the participant, explicitly and in that order.

        Left to the garbage collector, a reader's listener can be freed before the reader itself (they form
        a reference cycle with the callbacks); a local write in that window calls into freed memory.
        """
        self._closing = True
        readers = [e for e in self._entities if isinstance(e, DataReader)]
        writers = [e for e in self._entities if not isinstance(e, DataReader)]
        for e in readers + writers + list(self._topics.values()) + ([self.participant] if self.participant else []):
            e.__del__()  # cyclonedds' own delete; idempotent (a later GC finalizer returns early)
        self._entities.clear()
        self._by_topic.clear()
        self._topics.clear()
        self.participant = None
