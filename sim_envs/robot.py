"""Physics queries on the compiled scene (the dm_control `Physics` idea): named reads, no task logic.

Tasks, the controller and the experts ask this object for the end-effector pose, finger widths and object
poses; they never index `qpos` themselves, so a change of model layout stays in one place. What is specific to
the arm (joint and actuator names, home pose, finger mapping) comes from its `RobotDescription`.
"""

from __future__ import annotations

import numpy as np

from sim_envs.robots import RobotDescription, get_robot
from sim_envs.robots.description import joint_actuators
from sim_envs.scene import GRIP_SITE

#: Nominal "gripper pointing down" orientation of the grip site in the base frame (every robot): fingers
#: close along y.
R_DOWN = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


def mat_to_rpy(mat: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (extrinsic x-y-z, i.e. R = Rz(yaw) Ry(pitch) Rx(roll)) of a 3x3 rotation."""
    pitch = np.arcsin(np.clip(-mat[2, 0], -1.0, 1.0))
    roll = np.arctan2(mat[2, 1], mat[2, 2])
    yaw = np.arctan2(mat[1, 0], mat[0, 0])
    return np.array([roll, pitch, yaw])


def rpy_to_mat(rpy) -> np.ndarray:
    """Inverse of `mat_to_rpy`: R = Rz(yaw) Ry(pitch) Rx(roll)."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


class Physics:
    """A compiled model and its data, with the named queries the rest of sim_envs uses.

    `robot`: the description the scene was built with (a registered name or a `RobotDescription`)."""

    def __init__(self, model, data=None, *, robot: str | RobotDescription = "panda"):
        import mujoco

        self.robot = get_robot(robot)
        self.model = model
        self.data = data if data is not None else mujoco.MjData(model)
        arm, fingers = self.robot.arm_joints, self.robot.finger_joints
        self.arm_qpos = np.array([model.joint(j).qposadr[0] for j in arm])
        self.arm_dof = np.array([model.joint(j).dofadr[0] for j in arm])
        self.finger_qpos = np.array([model.joint(j).qposadr[0] for j in fingers])
        self.arm_actuators = joint_actuators(self.robot, model, arm, "arm_joints")
        self.finger_actuators = joint_actuators(self.robot, model, fingers, "finger_joints")
        self.grip_site = model.site(GRIP_SITE).id
        self.arm_range = model.jnt_range[[model.joint(j).id for j in arm]].copy()
        self.q_home = np.array(self.robot.q_home)
        self._finger_closed = np.array(self.robot.finger_closed)
        self._finger_sign = self.robot.finger_sign
        self._finger_travel = self.robot.finger_travel
        self.finger_body_ids = frozenset(model.body(b).id for b in self.robot.finger_bodies)

    # -- robot ---------------------------------------------------------------------------------------------
    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.grip_site].copy()

    def ee_mat(self) -> np.ndarray:
        return self.data.site_xmat[self.grip_site].reshape(3, 3).copy()

    def ee_rpy(self) -> np.ndarray:
        """End-effector orientation relative to the nominal pointing-down pose (zeros at home)."""
        return mat_to_rpy(self.ee_mat() @ R_DOWN.T)

    def finger_widths(self) -> np.ndarray:
        """Each finger's travel from closed (m): 0 = closed."""
        return (self.data.qpos[self.finger_qpos] - self._finger_closed) * self._finger_sign

    def gripper_opening(self) -> float:
        """0 = closed, 1 = fully open."""
        return float(np.sum(self.finger_widths()) / self._finger_travel)

    def arm_q(self) -> np.ndarray:
        return self.data.qpos[self.arm_qpos].copy()

    def proprio(self) -> np.ndarray:
        """float32 (8,): grip-site xyz (m, base frame), rpy relative to pointing down (rad), two finger widths (m).

        A gripper with another number of finger joints reports them all (the proprio grows accordingly)."""
        return np.concatenate([self.ee_pos(), self.ee_rpy(), self.finger_widths()]).astype(np.float32)

    def reset_robot(self, q_arm=None, gripper: float = 1.0) -> None:
        """Arm at `q_arm` (the robot's home pose by default), gripper at `gripper` (1 = open), servos holding."""
        q_arm = self.q_home if q_arm is None else q_arm
        fingers = self.robot.finger_targets(gripper)
        self.data.qpos[self.arm_qpos] = q_arm
        self.data.qvel[self.arm_dof] = 0.0
        self.data.qpos[self.finger_qpos] = fingers
        self.data.ctrl[self.arm_actuators] = q_arm
        self.data.ctrl[self.finger_actuators] = fingers

    def set_gripper(self, gripper: float) -> None:
        """Finger servo targets for a gripper command (0 = closed, 1 = open)."""
        self.data.ctrl[self.finger_actuators] = self.robot.finger_targets(gripper)

    # -- objects -------------------------------------------------------------------------------------------
    def body_pos(self, name: str) -> np.ndarray:
        return self.data.body(name).xpos.copy()

    def body_yaw(self, name: str) -> float:
        mat = self.data.body(name).xmat.reshape(3, 3)
        return float(np.arctan2(mat[1, 0], mat[0, 0]))

    def set_free_body(self, name: str, pos, yaw: float = 0.0) -> None:
        """Place a free-jointed body at `pos` with rotation `yaw` about z, at rest."""
        joint = self.model.joint(f"{name}_joint")
        adr, dof = joint.qposadr[0], joint.dofadr[0]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        self.data.qvel[dof:dof + 6] = 0.0

    def joint_qpos(self, name: str) -> float:
        return float(self.data.qpos[self.model.joint(name).qposadr[0]])

    def set_joint_qpos(self, name: str, value: float) -> None:
        j = self.model.joint(name)
        self.data.qpos[j.qposadr[0]] = value
        self.data.qvel[j.dofadr[0]] = 0.0

    def forward(self) -> None:
        import mujoco

        mujoco.mj_forward(self.model, self.data)
