"""Turn a safe 7-D command into the message the arm's controller takes, and build the stop/hold messages.

Every stop sends zero velocity (twist / Cartesian or joint velocity array) or a hold of the current joint
positions (joint position array / joint trajectory); the gripper holds its last command. Stamps are fresh wall-clock times, because MoveIt
Servo drops commands whose stamp is >= 0.1 s old.
"""

from __future__ import annotations

import importlib
import logging
from typing import Callable

import numpy as np

from robot_bridge import msgs
from robot_bridge.config import JOINT_COMMANDS, OutputConfig, TopicsConfig
from robot_bridge.transport.base import RELIABLE, Transport

logger = logging.getLogger(__name__)


def load_callable(spec: str) -> Callable:
    """'package.module:function' -> the function (the one way configs reference code)."""
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot load {spec!r} (expected 'package.module:function'): {e}") from e


class CommandPublisher:
    """Publishes commands of the configured kind; all RELIABLE (Servo and ros2_control subscribe RELIABLE)."""

    def __init__(self, out: OutputConfig, topics: TopicsConfig, transport: Transport, dt: float,
                 wall_clock: Callable[[], float]):
        self.out, self.dt, self.wall_clock = out, dt, wall_clock
        self._pub = None
        if out.command == "twist":
            self._pub = transport.publisher(topics.twist, msgs.TwistStamped, RELIABLE)
        elif out.command in ("cartesian_velocity", "joint_position", "joint_velocity"):
            self._pub = transport.publisher(getattr(topics, out.command), msgs.Float64MultiArray, RELIABLE)
        elif out.command == "joint_trajectory":
            self._pub = transport.publisher(topics.joint_trajectory, msgs.JointTrajectory, RELIABLE)
        if out.command in JOINT_COMMANDS:
            self._ik = load_callable(out.ik)
        self._gripper_pub = transport.publisher(topics.gripper, msgs.Float64MultiArray, RELIABLE) if out.gripper and topics.gripper else None
        self._action_pub = transport.publisher(topics.action, msgs.JointState, RELIABLE) if topics.action else None
        self.last_gripper: float | None = None
        self.sent = 0

    def _twist(self, v: np.ndarray) -> msgs.TwistStamped:
        return msgs.TwistStamped(
            header=msgs.header(self.wall_clock(), self.out.frame_id),
            twist=msgs.Twist(linear=msgs.Vector3(*map(float, v[:3])), angular=msgs.Vector3(*map(float, v[3:6]))),
        )

    def _trajectory(self, positions: list[np.ndarray], velocities: list[np.ndarray]) -> msgs.JointTrajectory:
        """Point k at time_from_start (k+1) periods."""
        points = []
        for k, (q, v) in enumerate(zip(positions, velocities)):
            d = msgs.to_time((k + 1) * self.dt)
            points.append(msgs.JointTrajectoryPoint(positions=[float(x) for x in q], velocities=[float(x) for x in v],
                                                    time_from_start=msgs.Duration(sec=d.sec, nanosec=d.nanosec)))
        return msgs.JointTrajectory(header=msgs.header(0.0, self.out.frame_id),  # stamp 0 = start now (ros2_control)
                                    joint_names=list(self.out.joint_names), points=points)

    def _ik_step(self, q: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Joint targets for the end-effector step `delta` from `q`, checked (RuntimeError says why not)."""
        target = np.asarray(self._ik(q, np.asarray(delta[:6], np.float64)), np.float64)
        if target.shape != q.shape or not np.all(np.isfinite(target)):
            raise RuntimeError(f"ik returned {target.shape} / non-finite values for {q.shape} joints")
        jump = float(np.max(np.abs(target - q))) if target.size else 0.0
        if jump > self.out.max_joint_step:
            raise RuntimeError(f"ik asks for a joint step of {jump:.3f} rad > max_joint_step {self.out.max_joint_step}")
        return target

    def _chained(self, q0: np.ndarray, first: np.ndarray, preview) -> msgs.JointTrajectory:
        """The trajectory through `first` and the previewed steps after it (cut at the first IK refusal)."""
        targets = [first]
        for a in preview:
            try:
                targets.append(self._ik_step(targets[-1], a))
            except RuntimeError as e:
                logger.debug("trajectory cut after %d points: %s", len(targets), e)
                break
        if len(targets) == 1:
            return self._trajectory(targets, [(first - q0) / self.dt])
        q = [q0] + targets
        velocities = [(q[k + 2] - q[k]) / (2 * self.dt) for k in range(len(targets) - 1)] + [np.zeros_like(q0)]
        return self._trajectory(targets, velocities)

    def command(self, cmd: np.ndarray, joint_positions: np.ndarray | None, obs_stamp: float,
                preview: list[np.ndarray] | tuple = ()) -> None:
        """Publish one safe command (dxyz, drpy per period, gripper absolute); `preview`: the safe actions
        planned for the next periods (joint_trajectory carries them as further points)."""
        velocity = np.asarray(cmd[:6], np.float64) / self.dt
        self._gripper(float(cmd[6]))  # first, so an arm that moves on the arm command already has it
        if self.out.command == "twist":
            self._pub(self._twist(velocity))
        elif self.out.command == "cartesian_velocity":
            self._pub(msgs.float64_array(velocity, label="ee_velocity"))
        elif self.out.command in JOINT_COMMANDS:
            if joint_positions is None:
                raise RuntimeError(f"{self.out.command} output needs joint states")
            target = self._ik_step(np.asarray(joint_positions, np.float64), cmd)
            joint_velocity = (target - joint_positions) / self.dt
            if self.out.command == "joint_position":
                self._pub(msgs.float64_array(target, label="joint_position"))
            elif self.out.command == "joint_velocity":
                self._pub(msgs.float64_array(joint_velocity, label="joint_velocity"))
            else:
                self._pub(self._chained(np.asarray(joint_positions, np.float64), target, preview))
        if self._action_pub is not None:
            self._action_pub(msgs.JointState(
                header=msgs.header(obs_stamp, self.out.frame_id),
                name=["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"],
                position=[float(x) for x in cmd]))
        self.sent += 1

    def stop(self, joint_positions: np.ndarray | None) -> None:
        """Zero velocity / hold position; the gripper holds its last command."""
        if self.last_gripper is not None:
            self._gripper(self.last_gripper)
        if self.out.command == "twist":
            self._pub(self._twist(np.zeros(6)))
        elif self.out.command == "cartesian_velocity":
            self._pub(msgs.float64_array(np.zeros(6), label="ee_velocity"))
        elif self.out.command == "joint_velocity":
            n = len(joint_positions) if joint_positions is not None else len(self.out.joint_names)
            self._pub(msgs.float64_array(np.zeros(n), label="joint_velocity"))
        elif self.out.command == "joint_position" and joint_positions is not None:
            self._pub(msgs.float64_array(joint_positions, label="joint_position"))  # hold where it is
        elif self.out.command == "joint_trajectory" and joint_positions is not None:
            self._pub(self._trajectory([joint_positions], [np.zeros_like(joint_positions)]))
        self.sent += 1

    def _gripper(self, g: float) -> None:
        self.last_gripper = g
        if self._gripper_pub is not None:
            self._gripper_pub(msgs.float64_array([g], label="gripper"))
