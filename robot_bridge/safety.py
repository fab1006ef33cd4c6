"""The safety filter every policy action passes before it can reach the arm.

One 7-D contract action (dxyz m, drpy rad, gripper absolute in [0, 1]) per control period goes in; out comes
either a command that is inside every limit, or a rejection with the reason (the node then sends a stop).

Order of checks (each one is cheap; the last re-checks everything so a bug in an earlier clip cannot leak):
1. contract: shape (7,), finite, gripper in [0, 1]          -> reject
2. out of range: a step far beyond any limit (a policy bug)  -> reject, never "clip and go"
3. per-step translation / rotation (vector norm), which also enforces the velocity limits (step = v * dt)
4. acceleration: the change of the commanded velocity per period (stops and workspace walls decelerate at
   once: being inside the box and stopping outweigh the acceleration limit)
5. workspace box: the end-effector target p + dxyz is clipped into the box (needs the current EE position)
6. gripper: per-step change of the absolute gripper command
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from vla.core.types import ContractError, validate_action

logger = logging.getLogger(__name__)

_EPS = 1e-9


@dataclass
class SafetyConfig:
    """Limits, in SI units. Per-step limits apply to one control period; velocities are derived with dt.

    Attributes:
        workspace_min / workspace_max: end-effector box in the robot base frame (m).
        max_step_translation / max_step_rotation: norm of dxyz (m) / drpy (rad) per step.
        max_linear_velocity / max_angular_velocity: m/s, rad/s (step limit = velocity * dt).
        max_linear_acceleration / max_angular_acceleration: m/s^2, rad/s^2 between consecutive commands.
        max_gripper_step: change of the absolute gripper command per step (1.0 = no limit).
        reject_translation / reject_rotation: a step this large is a policy fault: rejected, not clipped.
        require_ee_pose: without a current end-effector position the workspace cannot be checked, so the
            action is rejected. Set False only for arms that enforce their own workspace.
    """

    workspace_min: list[float] = field(default_factory=lambda: [-0.9, -0.9, 0.0])
    workspace_max: list[float] = field(default_factory=lambda: [0.9, 0.9, 1.2])
    max_step_translation: float = 0.03
    max_step_rotation: float = 0.15
    max_linear_velocity: float = 0.25
    max_angular_velocity: float = 1.5
    max_linear_acceleration: float = 2.5
    max_angular_acceleration: float = 15.0
    max_gripper_step: float = 1.0
    reject_translation: float = 0.25
    reject_rotation: float = 1.6
    require_ee_pose: bool = True

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"safety.workspace_min {self.workspace_min} must be 3 values below workspace_max {self.workspace_max}")
        for name in ("max_step_translation", "max_step_rotation", "max_linear_velocity", "max_angular_velocity",
                     "max_linear_acceleration", "max_angular_acceleration", "max_gripper_step",
                     "reject_translation", "reject_rotation"):
            if not getattr(self, name) > 0:
                raise ValueError(f"safety.{name} must be > 0, got {getattr(self, name)}")


@dataclass
class SafetyResult:
    """`command` is the safe (7,) action, or None when rejected; `notes` lists the limits that clipped."""

    command: np.ndarray | None
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.command is not None


def _clip_norm(v: np.ndarray, limit: float) -> tuple[np.ndarray, bool]:
    n = float(np.linalg.norm(v))
    if n <= limit:
        return v, False
    return v * (limit / n), True


class SafetyFilter:
    """Stateful (it remembers the last command for acceleration and gripper-rate limits).

    Example:
        f = SafetyFilter(SafetyConfig(), dt=0.1)
        r = f.filter(action, ee_position=np.array([0.4, 0.0, 0.3]))
        if r.ok: publish(r.command) else: stop(r.reason)
    """

    def __init__(self, config: SafetyConfig, dt: float):
        if not dt > 0:
            raise ValueError(f"control period must be > 0, got {dt}")
        self.cfg = config
        self.dt = float(dt)
        self.step_translation = min(config.max_step_translation, config.max_linear_velocity * dt)
        self.step_rotation = min(config.max_step_rotation, config.max_angular_velocity * dt)
        self.accel_translation = config.max_linear_acceleration * dt * dt  # max change of dxyz per step
        self.accel_rotation = config.max_angular_acceleration * dt * dt
        self.lo = np.asarray(config.workspace_min, np.float64)
        self.hi = np.asarray(config.workspace_max, np.float64)
        self._last = np.zeros(6)
        self._last_gripper: float | None = None

    def reconfigured(self, config: SafetyConfig) -> "SafetyFilter":
        """A filter with new limits that remembers this one's last command, so the acceleration and gripper
        limits hold across the change (a speed above new lower limits is then rejected: the node stops)."""
        new = SafetyFilter(config, self.dt)
        new._last, new._last_gripper = self._last.copy(), self._last_gripper
        return new

    def stopped(self) -> None:
        """The arm was commanded to zero velocity: the next command ramps up from rest."""
        self._last = np.zeros(6)

    def reset(self) -> None:
        self.stopped()
        self._last_gripper = None

    def filter(self, action, ee_position: np.ndarray | None = None) -> SafetyResult:
        try:
            a = validate_action(action, allow_chunk=False, name="policy action").astype(np.float64)
        except ContractError as e:
            return SafetyResult(None, f"rejected: {e}")
        dpos, drot, grip = a[0:3], a[3:6], float(a[6])
        tn, rn = float(np.linalg.norm(dpos)), float(np.linalg.norm(drot))
        if tn > self.cfg.reject_translation or rn > self.cfg.reject_rotation:
            return SafetyResult(None, f"rejected: out of range step |dxyz|={tn:.3g} m (max {self.cfg.reject_translation}), "
                                      f"|drpy|={rn:.3g} rad (max {self.cfg.reject_rotation})")
        notes: list[str] = []
        dpos, c = _clip_norm(dpos, self.step_translation)
        if c:
            notes.append(f"translation {tn:.3g}->{self.step_translation:.3g} m")
        drot, c = _clip_norm(drot, self.step_rotation)
        if c:
            notes.append(f"rotation {rn:.3g}->{self.step_rotation:.3g} rad")
        dv, c = _clip_norm(dpos - self._last[:3], self.accel_translation)
        if c:
            dpos = self._last[:3] + dv
            notes.append("linear acceleration")
        dw, c = _clip_norm(drot - self._last[3:], self.accel_rotation)
        if c:
            drot = self._last[3:] + dw
            notes.append("angular acceleration")
        if ee_position is not None:
            p = np.asarray(ee_position, np.float64).reshape(3)
            if not np.all(np.isfinite(p)):
                return SafetyResult(None, "rejected: end-effector position is not finite")
            # The box is stretched to include p, so an arm that starts outside may move back in but never
            # further out, and clipping only shrinks components (the step stays within its limit).
            target = np.clip(p + dpos, np.minimum(self.lo, p), np.maximum(self.hi, p))
            if np.any(np.abs(target - (p + dpos)) > _EPS):
                notes.append("workspace")
            dpos = target - p
        elif self.cfg.require_ee_pose:
            return SafetyResult(None, "rejected: no end-effector pose received, workspace cannot be checked")
        if self._last_gripper is not None:
            g = float(np.clip(grip, self._last_gripper - self.cfg.max_gripper_step, self._last_gripper + self.cfg.max_gripper_step))
            if abs(g - grip) > _EPS:
                notes.append("gripper rate")
            grip = g
        cmd = np.concatenate([dpos, drot, [grip]])
        # A workspace wall stops motion at once, like any stop: the acceleration limit yields to it.
        previous = None if "workspace" in notes else self._last
        violation = self.violation(cmd, previous=previous, ee_position=ee_position)
        if violation:  # cannot happen unless a clip above is wrong; never let it through
            logger.error("safety filter produced an out-of-limit command (%s); rejecting", violation)
            return SafetyResult(None, f"rejected: internal limit check failed ({violation})")
        self._last = cmd[:6].copy()
        self._last_gripper = grip
        return SafetyResult(cmd.astype(np.float32), "clipped: " + ", ".join(notes) if notes else "", notes)

    def violation(self, cmd: np.ndarray, previous: np.ndarray | None = None, ee_position=None, tol: float = 1e-6) -> str:
        """Return '' when `cmd` is within every limit, else which limit it breaks (also used by fuzz tests)."""
        cmd = np.asarray(cmd, np.float64)
        if cmd.shape != (7,) or not np.all(np.isfinite(cmd)):
            return "shape/finite"
        if np.linalg.norm(cmd[:3]) > self.step_translation + tol:
            return "translation"
        if np.linalg.norm(cmd[3:6]) > self.step_rotation + tol:
            return "rotation"
        if not -tol <= cmd[6] <= 1 + tol:
            return "gripper range"
        if previous is not None:
            if np.linalg.norm(cmd[:3] - previous[:3]) > self.accel_translation + tol:
                return "linear acceleration"
            if np.linalg.norm(cmd[3:6] - previous[3:6]) > self.accel_rotation + tol:
                return "angular acceleration"
        if ee_position is not None:
            p = np.asarray(ee_position, np.float64)
            t = p + cmd[:3]
            inside = np.all(t >= self.lo - tol) and np.all(t <= self.hi + tol)
            if not inside and np.any(np.abs(t - np.clip(t, self.lo, self.hi)) > np.abs(p - np.clip(p, self.lo, self.hi)) + tol):
                return "workspace"
        return ""
