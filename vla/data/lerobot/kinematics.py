"""Joint-position actions -> our 7-D end-effector deltas, through the arm's forward kinematics (MuJoCo MJCF).

A LeRobot SO-100/101, Koch or ALOHA recording stores the next joint targets (`action`, e.g. shoulder_pan.pos ...
gripper.pos) and the measured joints (`observation.state`). The delta our models predict is the motion from the
measured pose to the commanded one, in the base frame:

    dxyz = p(q_action) - p(q_state);  drpy = euler_xyz(R(q_action) R(q_state)^T);  gripper = open fraction in [0, 1]

Use it as the transform hook of a dataset entry (docs/data.md, "LeRobot datasets"):

    lerobot:
      action_transform: vla.data.lerobot.kinematics:joint_positions_to_eef_delta
      action_transform_args: {mjcf: so101.xml, site: gripperframe, units: deg, gripper_range: [0, 100]}

The robot description is the user's (e.g. the SO-101 MJCF of its maker); none ships with the wheels we install.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def joint_positions_to_eef_delta(mjcf: str, site: str, *, joints: Sequence[str] | None = None,
                                 state_key: str = "observation.state", units: str = "rad",
                                 gripper_index: int = -1, gripper_range: Sequence[float] = (0.0, 1.0),
                                 gripper_open_high: bool = True) -> Callable[[dict], dict]:
    """A steps -> steps transform (see the module docstring).

    Args:
        mjcf: the arm's MJCF file; site: the end-effector site in it.
        joints: MJCF joint names in the order of the action's arm dims (default: the model's first D-1 joints).
        state_key: the measured joints (same order as the action).
        units: "rad" or "deg" for the recorded joint values.
        gripper_index / gripper_range / gripper_open_high: which action dim is the gripper, its closed..open range
            (or open..closed when gripper_open_high is False); mapped to [0, 1] with 1 = open.
    """
    import mujoco
    from scipy.spatial.transform import Rotation

    if units not in ("rad", "deg"):
        raise ValueError(f"units={units!r}; choose rad or deg")
    model = mujoco.MjModel.from_xml_path(str(mjcf))
    data = mujoco.MjData(model)
    site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
    if site_id < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, i) for i in range(model.nsite)]
        raise ValueError(f"{mjcf} has no site {site!r} (sites: {names}); set action_transform_args.site")
    lo, hi = (float(v) for v in gripper_range)
    if hi == lo:
        raise ValueError(f"gripper_range {list(gripper_range)} is empty")

    def qpos_addresses(dim: int) -> np.ndarray:
        if joints is None:
            return np.asarray([model.jnt_qposadr[j] for j in range(min(dim, model.njnt))])
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in joints]
        bad = [n for n, i in zip(joints, ids) if i < 0]
        if bad:
            raise ValueError(f"{mjcf} has no joints {bad}; set action_transform_args.joints to its joint names")
        return np.asarray([model.jnt_qposadr[i] for i in ids])

    def pose(q: np.ndarray, adr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        data.qpos[:] = model.qpos0
        data.qpos[adr] = q
        mujoco.mj_kinematics(model, data)
        return data.site_xpos[site_id].copy(), data.site_xmat[site_id].reshape(3, 3).copy()

    def transform(steps: dict) -> dict:
        action = np.asarray(steps["action"], np.float64)
        state = np.asarray(steps["observation"][state_key], np.float64)
        if state.shape != action.shape:
            raise ValueError(f"{state_key} {state.shape} and action {action.shape} differ: joint targets and measured "
                             "joints must have the same layout for the kinematic delta")
        arm = [i for i in range(action.shape[1]) if i != gripper_index % action.shape[1]]
        adr = qpos_addresses(len(arm))
        if len(adr) != len(arm):
            raise ValueError(f"the action has {len(arm)} arm joints, {mjcf} maps {len(adr)}; set action_transform_args.joints")
        scale = np.pi / 180.0 if units == "deg" else 1.0
        out = np.zeros((len(action), 7), np.float32)
        for t in range(len(action)):
            p0, r0 = pose(state[t, arm] * scale, adr)
            p1, r1 = pose(action[t, arm] * scale, adr)
            out[t, :3] = p1 - p0
            out[t, 3:6] = Rotation.from_matrix(r1 @ r0.T).as_euler("xyz")
        g = np.clip((action[:, gripper_index] - lo) / (hi - lo), 0.0, 1.0)
        out[:, 6] = g if gripper_open_high else 1.0 - g
        steps["action"] = out
        return steps

    return transform
