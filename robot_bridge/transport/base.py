"""What the node needs from a transport: publishers and subscriptions with ROS 2 QoS, and nothing else.

Both transports use the message classes in `robot_bridge.msgs`; the rclpy transport converts them to and
from the ROS 2 Python classes at the edge, so the node logic is the same on both.
The implementations import this module, and this module imports none of them: choosing one by name is
`robot_bridge.transport.factory`'s job.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class QoS:
    """The three ROS 2 QoS profiles the bridge uses (shared/facts/ros2.md, QoS section)."""

    reliable: bool = True
    transient_local: bool = False
    depth: int = 10


#: cameras: BEST_EFFORT matches both best-effort and reliable camera drivers.
SENSOR = QoS(reliable=False, transient_local=False, depth=5)
#: joint states, commands, status: MoveIt Servo and ros2_control subscribe RELIABLE.
RELIABLE = QoS(reliable=True, transient_local=False, depth=10)
#: instruction and e-stop: latched, a late joiner still gets the last value.
LATCHED = QoS(reliable=True, transient_local=True, depth=1)


class Transport(abc.ABC):
    """Create publishers/subscriptions; callbacks may run on transport threads."""

    @abc.abstractmethod
    def publisher(self, topic: str, msg_type: type, qos: QoS) -> Callable[[Any], None]:
        """Return a function that publishes one message of `msg_type` on `topic`."""

    @abc.abstractmethod
    def subscribe(self, topic: str, msg_type: type, qos: QoS, callback: Callable[[Any], None]) -> None:
        """Call `callback(msg)` for each message received on `topic`."""

    def matched(self, topic: str) -> int:
        """Remote endpoints matched with this transport's endpoints on `topic` (readers of its publisher plus
        writers of its subscription). The DDS match, not the graph: a VOLATILE sample written before it is lost."""
        raise NotImplementedError(f"{type(self).__name__} does not report matches")

    def wait_matched(self, topic: str, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until `matched(topic) >= count` (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while self.matched(topic) < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_acked(self, topic: str, timeout: float = 5.0) -> bool:
        """Wait until every matched reader has acknowledged what this transport published on `topic` (True), or
        `timeout` seconds pass (False). A process that publishes once and exits (an e-stop button) calls it
        first: a writer that is gone cannot serve its latched value to a reader that has not matched it yet
        (Cyclone lingers on unacknowledged data, Fast DDS does not)."""
        raise NotImplementedError(f"{type(self).__name__} does not report acknowledgements")

    def serve_lifecycle(self, transitions: dict[str, Callable[[], bool]]) -> Callable[[str], bool] | None:
        """Offer the node's lifecycle through the middleware's own interface where it has one (on a ROS 2
        lifecycle node: the lifecycle_msgs services `~/change_state`, `~/get_state`, ... and
        `~/transition_event`). `transitions` maps configure, activate, deactivate, cleanup and shutdown to
        functions that carry them out (True = done). Returns a function that requests a transition by name
        through that interface, so every way of changing state goes through one state machine; None where
        there is none (direct DDS: the lifecycle topic is the only way)."""
        return None

    def serve_parameters(self, values: dict[str, tuple[Any, str]], live: Callable[[str], bool],
                         validate: Callable[[dict[str, Any]], str], apply: Callable[[dict[str, Any]], None]) -> bool:
        """Offer settings as the middleware's parameters where it has them (ROS 2 parameter services):
        `values` is {name: (value, kind)} (kind: bool, int, float, str, list[float], list[str]); names for which
        `live` is false are read-only; a change is accepted only when `validate(changes)` returns "" (else
        its text is the reason given to the caller), then `apply(changes)` runs. False where not offered."""
        return False

    def close(self) -> None:
        """Release the participant / node."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
