"""End-effector delta controller: the 7-D contract action -> joint position targets of any arm (6+ joints).

Per control step: the target pose is the held target position moved by (dx, dy, dz) and the held target
orientation rotated by (droll, dpitch, dyaw) in the base frame. Holding the target (instead of re-reading the
measured pose) keeps servo lag from accumulating, so N steps of d move the hand by N*d; when the hand is
blocked (contact) and falls more than `max_tracking_error` behind, the held position snaps back to the
measured one, so nothing winds up; it is clamped to the workspace box. Damped-least-squares
differential IK on MuJoCo's site Jacobian (`mj_jacSite`), with a null-space pull towards the home posture,
solves for the joint target on a kinematics-only scratch copy of the state. The joint target is clipped to
the joint limits and to what the joint velocity limits allow in one control period, then fed to the arm's
position servos as a ramp over the first part of the period. The gripper command is absolute (1 = open).
Joint count, home posture, velocity limits and default workspace come from the robot's description: a 6-joint
arm has no null space left, and the posture term then only regularizes.

References: damped least squares (Wampler 1986; Buss 2004, "Introduction to inverse kinematics with Jacobian
transpose, pseudoinverse and damped least squares methods"); mju_subQuat for the orientation error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from sim_envs.robot import Physics, rpy_to_mat


@dataclass
class ControllerConfig:
    """How actions become joint commands.

    Attributes:
        control_hz: control (action) rate; physics runs at 1 / timestep (500 Hz) in between.
        max_delta_pos: per-step translation limit (m); larger action components are clipped.
        max_delta_rot: per-step rotation limit (rad) per axis.
        workspace_low / workspace_high: box (base frame, m) the grip-site target is clamped to (None: the
            robot description's).
        ik_damping: DLS damping lambda.
        ik_iterations: Newton iterations of the IK per control step.
        nullspace_gain: pull towards the home posture in the Jacobian's null space.
        ramp_fraction: fraction of the control period over which the joint target is ramped in.
        joint_damping_scale: scales the arm's joint damping (the Panda's shipped 100 / 10 N m s/rad is tuned
            for slow kitchen motions; 0.3 tracks 3 cm steps at 10 Hz within a few mm).
        velocity_limit_scale: fraction of the arm's joint velocity limits the controller may use.
        max_tracking_error: held target position further than this (m) from the measured one is reset to it.
        velocity_limits: joint velocity limits (rad/s); None: the robot description's.
    """

    control_hz: float = 10.0
    max_delta_pos: float = 0.05
    max_delta_rot: float = 0.3
    workspace_low: Optional[tuple[float, float, float]] = None
    workspace_high: Optional[tuple[float, float, float]] = None
    ik_damping: float = 0.05
    ik_iterations: int = 3
    nullspace_gain: float = 0.05
    ramp_fraction: float = 0.5
    joint_damping_scale: float = 0.3
    velocity_limit_scale: float = 0.8
    max_tracking_error: float = 0.02
    velocity_limits: Optional[tuple[float, ...]] = None

    def __post_init__(self) -> None:
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")
        if not 0 < self.ramp_fraction <= 1:
            raise ValueError(f"ramp_fraction must be in (0, 1], got {self.ramp_fraction}")
        if (self.workspace_low is None) != (self.workspace_high is None):
            raise ValueError("set both workspace_low and workspace_high, or neither (the robot's default box)")
        if self.workspace_low is not None and any(lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high)):
            raise ValueError(f"workspace_low {self.workspace_low} must be below workspace_high {self.workspace_high}")


class EEDeltaController:
    """Maps validated 7-D actions to joint position commands and steps the physics for one control period."""

    def __init__(self, physics: Physics, config: ControllerConfig):
        import mujoco

        self.physics = physics
        self.config = config
        model = physics.model
        self.n_substeps = max(1, int(round(1.0 / (config.control_hz * model.opt.timestep))))
        self._scratch = mujoco.MjData(model)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        robot = physics.robot
        self._ws_low = np.asarray(robot.workspace_low if config.workspace_low is None else config.workspace_low)
        self._ws_high = np.asarray(robot.workspace_high if config.workspace_high is None else config.workspace_high)
        limits = robot.velocity_limits if config.velocity_limits is None else config.velocity_limits
        if len(limits) != len(physics.arm_qpos):
            raise ValueError(f"controller.velocity_limits has {len(limits)} values; robot {robot.name!r} has "
                             f"{len(physics.arm_qpos)} arm joints (leave it unset for the robot's own limits)")
        self._vmax = np.asarray(limits) * config.velocity_limit_scale
        margin = 0.02
        self._q_low = physics.arm_range[:, 0] + margin
        self._q_high = physics.arm_range[:, 1] - margin
        # The target pose is held between steps (see the module docstring).
        self._ref_pos: np.ndarray | None = None
        self._ref_mat: np.ndarray | None = None

    @property
    def workspace(self) -> tuple[np.ndarray, np.ndarray]:
        """The box (low, high) the grip-site target is clamped to (the config's, else the robot's)."""
        return self._ws_low.copy(), self._ws_high.copy()

    @property
    def velocity_limits(self) -> np.ndarray:
        """Joint velocity limits (rad/s) the controller may use: the limits times `velocity_limit_scale`."""
        return self._vmax.copy()

    @property
    def control_dt(self) -> float:
        return self.n_substeps * self.physics.model.opt.timestep

    def target_pose(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grip-site target (position, rotation matrix) for `action` from the current pose."""
        cfg = self.config
        dpos = np.clip(action[:3], -cfg.max_delta_pos, cfg.max_delta_pos)
        drot = np.clip(action[3:6], -cfg.max_delta_rot, cfg.max_delta_rot)
        measured = self.physics.ee_pos()
        if self._ref_pos is None or np.linalg.norm(self._ref_pos - measured) > cfg.max_tracking_error:
            self._ref_pos = measured
        pos = np.clip(self._ref_pos + dpos, self._ws_low, self._ws_high)
        if self._ref_mat is None:
            self._ref_mat = self.physics.ee_mat()
        mat = rpy_to_mat(drot) @ self._ref_mat
        return pos, mat

    def reset(self) -> None:
        """Forget the held target pose (call after the state was reset)."""
        self._ref_pos = None
        self._ref_mat = None

    def solve_ik(self, pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
        """Joint target (n_arm_joints,) that moves the grip site to (pos, mat), from the current configuration."""
        import mujoco

        model, phys, d = self.physics.model, self.physics, self._scratch
        d.qpos[:] = phys.data.qpos
        target_quat = np.zeros(4)
        mujoco.mju_mat2Quat(target_quat, mat.ravel())
        cur_quat = np.zeros(4)
        err = np.zeros(6)
        idx = phys.arm_qpos
        lam2 = self.config.ik_damping ** 2
        for _ in range(self.config.ik_iterations):
            mujoco.mj_kinematics(model, d)
            mujoco.mj_comPos(model, d)
            mujoco.mj_jacSite(model, d, self._jacp, self._jacr, phys.grip_site)
            jac = np.vstack([self._jacp[:, phys.arm_dof], self._jacr[:, phys.arm_dof]])  # (6, n)
            site_mat = d.site_xmat[phys.grip_site].reshape(3, 3)
            err[:3] = pos - d.site_xpos[phys.grip_site]
            mujoco.mju_mat2Quat(cur_quat, site_mat.ravel())
            mujoco.mju_subQuat(err[3:], target_quat, cur_quat)  # in the current site frame
            err[3:] = site_mat @ err[3:]
            jjt = jac @ jac.T + lam2 * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, err)
            # Null-space posture term keeps the elbow and wrist near home (away from limits).
            null = np.eye(len(idx)) - jac.T @ np.linalg.solve(jjt, jac)
            dq += null @ (self.config.nullspace_gain * (phys.q_home - d.qpos[idx]))
            d.qpos[idx] = np.clip(d.qpos[idx] + dq, self._q_low, self._q_high)
        return d.qpos[idx].copy()

    def step(self, action: np.ndarray) -> None:
        """Run one control period for a validated (7,) action."""
        import mujoco

        phys = self.physics
        q_now = phys.arm_q()
        pos, mat = self.target_pose(action)
        q_target = self.solve_ik(pos, mat)
        self._ref_pos, self._ref_mat = pos, mat
        max_step = self._vmax * self.control_dt
        q_target = q_now + np.clip(q_target - q_now, -max_step, max_step)
        phys.set_gripper(float(np.clip(action[6], 0.0, 1.0)))
        ramp = max(1, int(round(self.config.ramp_fraction * self.n_substeps)))
        model, data = phys.model, phys.data
        for i in range(self.n_substeps):
            a = min(1.0, (i + 1) / ramp)
            data.ctrl[phys.arm_actuators] = q_now + a * (q_target - q_now)
            mujoco.mj_step(model, data)
