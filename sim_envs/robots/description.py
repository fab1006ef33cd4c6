"""`RobotDescription`: everything sim_envs knows about one arm + gripper, in one frozen dataclass.

Tasks, the controller, domain randomization, the experts, collection and evaluation read the robot only
through this object (via `sim_envs.robot.Physics`), so an arm that provides one runs all of them unchanged.
A description names parts of its MJCF model (joints, bodies, sites); `check_spec` verifies every name
against the model before anything is added to it and says which field is wrong and how to fix it.

Conventions every robot follows (what the tasks and experts assume):
- the robot's base frame is the world frame (x forward, y left, z up, table top at z = 0), its root body is
  `robot_base`;
- the arm is driven by position servos (one actuator per arm joint, in `arm_joints` order) with gravity
  compensation, and the gripper by position servos on `finger_joints`;
- the grip site sits between the finger pads; at `R_DOWN` (gripper pointing down) its x axis points forward
  and the fingers close along its y axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class CameraMount:
    """A camera on a body: at `pos` (body frame, m) looking at `lookat` with image-up towards `up`."""

    body: str
    pos: tuple[float, float, float]
    lookat: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fovy: float = 50.0


@dataclass(frozen=True)
class RobotDescription:
    """One robot (arm + gripper) as sim_envs uses it.

    Attributes:
        name: registry name (`sim.robot=<name>`).
        arm_joints: hinge joints the end-effector controller drives, base to wrist (6 or more).
        finger_joints: gripper joints, one position servo each.
        finger_closed / finger_open: each finger joint's position (its servo target) closed and fully open.
            Proprio reports each finger's travel from closed (m, >= 0), the gripper command 0..1 maps linearly.
        finger_bodies: bodies whose geoms touch grasped objects (their contacts get condim 4 and friction
            1; `Task.fingers_touch` looks for them).
        finger_half_depth: half the thickness (m) of the closed fingers along the grip site's x axis: how far
            behind a face it pushes the grip site stays (the push experts' contact geometry).
        hand_body: the body the grip site is added to.
        grip_site_pos / grip_site_quat: the grip site (between the pads) in the hand body frame.
        q_home: arm configuration at reset (grip site about 0.25 m above the table, pointing down); the
            controller's null-space posture.
        velocity_limits: joint velocity limits (rad/s), manufacturer's figures.
        workspace_low / workspace_high: default box (base frame, m) the grip-site target is clamped to.
        primary_camera: the fixed scene camera `primary` (body "world").
        wrist_camera: the `wrist` camera on the hand.
        gravcomp_prefix: bodies whose name starts with this get gravity compensation (the arm and gripper).
        hidden_sites: sites of the shipped model to move to group 4 (drawn as balls/cylinders otherwise).
        load_spec: visual_mesh_cell (m, 0 = original meshes) -> `mujoco.MjSpec` of the tabletop
            (`sim_envs/xmls/tabletop.xml`) with the robot under `robot_base` and its actuators.
        visual_meshes: visual_mesh_cell -> {mesh name: (vertices, faces)} of simplified visual meshes.
        source: where the model comes from and its licence (docs and `describe()`).
    """

    name: str
    arm_joints: tuple[str, ...]
    finger_joints: tuple[str, ...]
    finger_closed: tuple[float, ...]
    finger_open: tuple[float, ...]
    finger_bodies: tuple[str, ...]
    finger_half_depth: float
    hand_body: str
    grip_site_pos: tuple[float, float, float]
    grip_site_quat: tuple[float, float, float, float]
    q_home: tuple[float, ...]
    velocity_limits: tuple[float, ...]
    workspace_low: tuple[float, float, float]
    workspace_high: tuple[float, float, float]
    primary_camera: CameraMount
    wrist_camera: CameraMount
    gravcomp_prefix: str
    load_spec: Callable[[float], object] = field(repr=False, compare=False)
    visual_meshes: Callable[[float], dict] | None = field(default=None, repr=False, compare=False)
    hidden_sites: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.arm_joints)
        if n < 6:
            raise ValueError(f"robot {self.name!r}: arm_joints lists {n} joints; the end-effector controller needs "
                             "at least 6 (position and orientation)")
        for fname, expected in (("q_home", n), ("velocity_limits", n), ("finger_closed", len(self.finger_joints)),
                                ("finger_open", len(self.finger_joints))):
            got = len(getattr(self, fname))
            if got != expected:
                raise ValueError(f"robot {self.name!r}: {fname} has {got} values but {expected} are needed (one per "
                                 f"{'arm' if fname in ('q_home', 'velocity_limits') else 'finger'} joint); fix "
                                 f"RobotDescription.{fname}")
        if not self.finger_joints:
            raise ValueError(f"robot {self.name!r}: finger_joints is empty; name the gripper's joints")
        if any(o == c for o, c in zip(self.finger_open, self.finger_closed)):
            raise ValueError(f"robot {self.name!r}: finger_open {self.finger_open} must differ from finger_closed "
                             f"{self.finger_closed} for every finger joint")
        if any(lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high)):
            raise ValueError(f"robot {self.name!r}: workspace_low {self.workspace_low} must be below workspace_high "
                             f"{self.workspace_high}")

    @property
    def finger_sign(self) -> np.ndarray:
        """+1 where a finger opens towards larger joint values, -1 where it opens towards smaller ones."""
        return np.sign(np.subtract(self.finger_open, self.finger_closed))

    @property
    def finger_travel(self) -> float:
        """Sum over fingers of the travel closed -> open (m): `gripper_opening` divides by it."""
        return float(np.sum(np.abs(np.subtract(self.finger_open, self.finger_closed))))

    def finger_targets(self, gripper: float) -> np.ndarray:
        """Finger servo targets for a gripper command in [0, 1] (0 = closed, 1 = open)."""
        closed, opened = np.asarray(self.finger_closed), np.asarray(self.finger_open)
        return closed + gripper * (opened - closed)


def check_spec(robot: RobotDescription, spec) -> None:
    """Raise ValueError naming the description field whose joint, body or site the robot's model lacks.

    `spec` is the `mujoco.MjSpec` from `robot.load_spec` (checked before anything is added to it)."""
    checks = [
        ("arm_joints", "joint", robot.arm_joints), ("finger_joints", "joint", robot.finger_joints),
        ("finger_bodies", "body", robot.finger_bodies), ("hand_body", "body", (robot.hand_body,)),
        ("wrist_camera.body", "body", (robot.wrist_camera.body,)), ("hidden_sites", "site", robot.hidden_sites),
    ]
    for fname, kind, names in checks:
        missing = [n for n in names if getattr(spec, kind)(n) is None]
        if missing:
            plural = {"joint": "joints", "body": "bodies", "site": "sites"}[kind]
            known = sorted(e.name for e in getattr(spec, plural) if e.name)
            raise ValueError(f"robot {robot.name!r}: {fname} names {kind}(s) {missing} that its model does not have; "
                             f"fix RobotDescription.{fname} in the robot's module (the model's {kind}s: {known[:40]})")
    if spec.body("robot_base") is None:
        raise ValueError(f"robot {robot.name!r}: its load_spec must put the robot under a body named 'robot_base'")


def joint_actuators(robot: RobotDescription, model, joints: tuple[str, ...], field_name: str) -> np.ndarray:
    """Actuator ids driving `joints` (one position servo each, in order); ValueError if one has none."""
    import mujoco

    out = []
    for j in joints:
        jid = model.joint(j).id
        ids = [a for a in range(model.nu)
               if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT and model.actuator_trnid[a, 0] == jid]
        if len(ids) != 1:
            raise ValueError(f"robot {robot.name!r}: {field_name} entry {j!r} is driven by {len(ids)} actuators; the "
                             "robot's load_spec must add exactly one position servo per arm and finger joint")
        out.append(ids[0])
    return np.array(out)
