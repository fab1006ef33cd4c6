"""Physics queries on the compiled scene (the dm_control `Physics` idea): named reads, no task logic.

Tasks, the controller and the experts ask this object for the end-effector pose, finger widths and object
poses; they never index `qpos` themselves, so a change of model layout stays in one place.
"""

from __future__ import annotations

import numpy as np

from sim_envs.scene import ARM_JOINTS, FINGER_JOINTS, GRIP_SITE

#: Nominal "gripper pointing down" orientation of the grip site in the base frame: fingers close along y.
R_DOWN = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
#: Arm configuration with the gripper 0.25 m above the table at x = 0.45, pointing down (solved by IK).
Q_HOME = np.array([0.073, -0.185, -0.073, -2.497, -0.018, 0.743, 0.014])
#: Finger joint travel (each finger, metres): 0 = closed, 0.04 = open.
FINGER_OPEN = 0.04


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
    """A compiled model and its data, with the named queries the rest of sim_envs uses."""

    def __init__(self, model, data=None):
        import mujoco

        self.model = model
        self.data = data if data is not None else mujoco.MjData(model)
        self.arm_qpos = np.array([model.joint(j).qposadr[0] for j in ARM_JOINTS])
        self.arm_dof = np.array([model.joint(j).dofadr[0] for j in ARM_JOINTS])
        self.finger_qpos = np.array([model.joint(j).qposadr[0] for j in FINGER_JOINTS])
        self.arm_actuators = np.arange(7)
        self.finger_actuators = np.array([7, 8])
        self.grip_site = model.site(GRIP_SITE).id
        self.arm_range = model.jnt_range[[model.joint(j).id for j in ARM_JOINTS]].copy()

    # -- robot ---------------------------------------------------------------------------------------------
    def ee_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.grip_site].copy()

    def ee_mat(self) -> np.ndarray:
        return self.data.site_xmat[self.grip_site].reshape(3, 3).copy()

    def ee_rpy(self) -> np.ndarray:
        """End-effector orientation relative to the nominal pointing-down pose (zeros at home)."""
        return mat_to_rpy(self.ee_mat() @ R_DOWN.T)

    def finger_widths(self) -> np.ndarray:
        return self.data.qpos[self.finger_qpos].copy()

    def gripper_opening(self) -> float:
        """0 = closed, 1 = fully open."""
        return float(np.sum(self.finger_widths()) / (2 * FINGER_OPEN))

    def arm_q(self) -> np.ndarray:
        return self.data.qpos[self.arm_qpos].copy()

    def proprio(self) -> np.ndarray:
        """float32 (8,): grip-site xyz (m, base frame), rpy relative to pointing down (rad), two finger widths (m)."""
        return np.concatenate([self.ee_pos(), self.ee_rpy(), self.finger_widths()]).astype(np.float32)

    def reset_robot(self, q_arm=Q_HOME, gripper: float = 1.0) -> None:
        self.data.qpos[self.arm_qpos] = q_arm
        self.data.qvel[self.arm_dof] = 0.0
        self.data.qpos[self.finger_qpos] = gripper * FINGER_OPEN
        self.data.ctrl[self.arm_actuators] = q_arm
        self.data.ctrl[self.finger_actuators] = gripper * FINGER_OPEN

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
