"""The node's inputs: the newest sample of each sensor stream, how old it is, and the observation made of them.

Sensor callbacks run on transport threads; every method takes the node's lock (`lock`, re-entrant, shared with
the node), so a tick reads one consistent set of samples. A malformed message is counted and logged
(rate-limited), never raised: the stream then goes stale and the node stops saying so.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from robot_bridge import msgs
from robot_bridge.config import BridgeConfig
from robot_bridge.images import array_from_any
from vla.core.types import ContractError, Observation

logger = logging.getLogger(__name__)


@dataclass
class Sample:
    value: object
    rx: float  # receive time on the node's `clock`
    stamp: float  # header stamp (sensor time)


class Sensors:
    """Newest camera images, joint states (merged by name) and end-effector pose, with receive times on `clock`.

    `cfg` is read for structural settings only (topics, required streams, proprio, joint names), which do not
    change while the node runs; the stale window is passed in by the caller (a live setting)."""

    def __init__(self, cfg: BridgeConfig, clock: Callable[[], float], lock: threading.RLock):
        self.cfg, self.clock, self.lock = cfg, clock, lock
        self.images: dict[str, Sample] = {}
        self.joints: Sample | None = None
        self.ee: Sample | None = None
        self._joint_map: dict[str, float] = {}
        self._joint_order: list[str] = []
        self.new_sample = threading.Event()  # set by every sensor callback (wakes the lockstep wait)
        self.malformed: dict[str, int] = {}

    def bad(self, what: str, err: str) -> None:
        """Count a malformed message of stream `what`; log the 1st, 10th, 100th, ... of them."""
        self.malformed[what] = self.malformed.get(what, 0) + 1
        if self.malformed[what] in (1, 10, 100, 1000) or self.malformed[what] % 10000 == 0:
            logger.warning("malformed %s message (%d so far): %s", what, self.malformed[what], err)

    # ---- callbacks (transport threads) -------------------------------------------------------------------
    def on_image(self, cam: str, m: msgs.Image | msgs.CompressedImage) -> None:
        try:
            img = array_from_any(m)  # raw or JPEG/PNG, decoded as the converter does
            stamp = msgs.from_time(m.header.stamp)
        except (ValueError, TypeError) as e:
            return self.bad(f"image {cam}", str(e))
        with self.lock:
            self.images[cam] = Sample(img, self.clock(), stamp)
        self.new_sample.set()

    def on_joints(self, m: msgs.JointState) -> None:
        """Merge joint states by name: drivers often publish the arm and the gripper in separate messages."""
        pos = np.asarray(m.position, np.float64)
        if pos.size == 0 or not np.all(np.isfinite(pos)) or (m.name and len(m.name) != pos.size):
            return self.bad("joint_states", f"{len(m.name)} names, positions {pos.tolist()[:8]}")
        names = self.cfg.output.joint_names
        with self.lock:
            if not m.name:  # unnamed: positional, taken as a whole
                self.joints = Sample(pos, self.clock(), msgs.from_time(m.header.stamp))
                self.new_sample.set()
                return
            if names and not any(n in names for n in m.name):
                return  # another group's joints (e.g. only the gripper): they do not refresh the arm
            for n, p in zip(m.name, pos):
                if n not in self._joint_map:
                    self._joint_order.append(n)
                self._joint_map[n] = float(p)
            order = names or self._joint_order
            if not all(n in self._joint_map for n in order):
                return  # not every configured joint has been seen yet
            self.joints = Sample(np.array([self._joint_map[n] for n in order]), self.clock(), msgs.from_time(m.header.stamp))
        self.new_sample.set()

    def on_ee(self, m: msgs.PoseStamped) -> None:
        p, q = m.pose.position, m.pose.orientation
        v = np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], np.float64)
        if not np.all(np.isfinite(v)) or abs(np.linalg.norm(v[3:]) - 1.0) > 1e-3:
            return self.bad("ee_pose", f"pose {v.tolist()}")
        with self.lock:
            self.ee = Sample(v, self.clock(), msgs.from_time(m.header.stamp))
        self.new_sample.set()

    # ---- ages --------------------------------------------------------------------------------------------
    def clock_jumped(self) -> None:
        """Ages are meaningless across a backwards clock jump: every stream must deliver again."""
        with self.lock:
            for s in list(self.images.values()) + [self.joints, self.ee]:
                if s is not None:
                    s.rx = -np.inf

    @staticmethod
    def fresh(s: Sample | None, now: float, stale_after: float) -> bool:
        return s is not None and now - s.rx <= stale_after

    def why_stale(self, now: float, stale_after: float) -> str:
        """"" when every required stream is fresh, else why not (the first stale one)."""
        req = self.cfg.node.required
        checks: list[tuple[str, Sample | None]] = []
        if "cameras" in req:
            checks += [(f"camera {c!r}", self.images.get(c)) for c in self.cfg.topics.cameras]
        if "joint_states" in req:
            checks.append(("joint_states", self.joints))
        if "ee_pose" in req:
            checks.append(("ee_pose", self.ee))
        for name, s in checks:
            if s is None:
                return f"stale {name}: no message received yet"
            if s.rx == -np.inf:
                return f"stale {name}: no message since the clock jumped backwards"
            if now - s.rx > stale_after:
                return f"stale {name}: no message for {now - s.rx:.3f} s (limit {stale_after:.3f} s)"
        return ""

    def ee_position(self, now: float, stale_after: float) -> np.ndarray | None:
        """The end-effector position (xyz) while the pose is fresh, for the workspace check."""
        return self.ee.value[:3] if self.fresh(self.ee, now, stale_after) else None

    def joint_positions(self) -> np.ndarray | None:
        return self.joints.value if self.joints is not None else None

    # ---- frames (one observation's streams) --------------------------------------------------------------
    def streams(self) -> dict[str, Sample | None]:
        """The sensor streams one observation is made of: every camera, the joint states and the end-effector
        pose when they are required, feed the proprio, or (pose: for the workspace check) arrive at all."""
        node, topics = self.cfg.node, self.cfg.topics
        streams: dict[str, Sample | None] = {f"camera {c!r}": self.images.get(c) for c in topics.cameras}
        if topics.joint_states and ("joint_states" in node.required or "joint_positions" in node.proprio):
            streams["joint_states"] = self.joints
        if topics.ee_pose and ("ee_pose" in node.required or "ee_pose" in node.proprio or self.ee is not None):
            streams["ee_pose"] = self.ee
        return streams

    def frame_stamp(self) -> float | None:
        """Oldest capture stamp over the observation's streams (None while one has not delivered yet)."""
        stamps = [s.stamp for s in self.streams().values() if s is not None]
        return min(stamps) if stamps else None

    def complete_frame_stamp(self) -> float | None:
        """The newest complete frame's stamp: the oldest over the streams, once every one has delivered."""
        streams = self.streams()
        if streams and all(s is not None for s in streams.values()):
            return min(s.stamp for s in streams.values())
        return None

    def waiting_for(self, acted_stamp: float | None) -> list[str]:
        """Streams without a sample captured after the observation last acted on (lockstep)."""
        if acted_stamp is None:
            return []
        return [name for name, s in self.streams().items() if s is None or not s.stamp > acted_stamp]

    def observation(self, instruction: str) -> Observation:
        """The policy's input from the newest samples (ContractError while a proprio source has no data)."""
        parts = []
        for src in self.cfg.node.proprio:
            s = self.joints if src == "joint_positions" else self.ee
            if s is None:
                raise ContractError(f"proprio source {src} has no data yet")
            parts.append(np.asarray(s.value, np.float32))
        stamps = [s.stamp for s in self.images.values()]
        return Observation(images={c: s.value for c, s in self.images.items()},
                           proprio=np.concatenate(parts) if parts else np.zeros(0, np.float32),
                           instruction=instruction, timestamp=max(stamps) if stamps else 0.0)
