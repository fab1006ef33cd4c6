"""Universal Robots UR5e with the Rethink Robotics electric parallel gripper, from robosuite's model files.

Source and licence: robosuite (github.com/ARISE-Initiative/robosuite, MIT licence, (c) 2022 Stanford Vision
and Learning Lab and UT Robot Perception and Learning Lab), PyPI wheel `robosuite==1.5.2`, files
`robosuite/models/assets/robots/ur5e/robot.xml` (+ meshes: robosuite's UR5e model, converted from Universal
Robots' published UR5e description; joint torque limits from universal-robots.com "max joint torques") and
`robosuite/models/assets/grippers/rethink_gripper.xml` (+ meshes: Rethink Robotics' electric gripper of the
Sawyer). The wheel is installed with `--no-deps` (its own dependencies want mujoco < 4): sim_envs only reads
these files, locates them with `importlib.util.find_spec` and never imports robosuite. Nothing is copied or
downloaded; the original files stay untouched.

What changes at load time, with MjSpec:
- the arm's torque motors (`torq_j1..6`) become position servos like the Panda's (kp 1000 on the three large
  joints, 200 on the wrist, force limited to the shipped torque limits 150 / 28 N m), with joint damping
  100 / 10 N m s/rad and a small armature (a geared motor's reflected inertia), and gravity compensation on
  every link: the same drive `sim_envs.controller` gives the Panda;
- the gripper is attached to the arm's `right_hand` mount (as robosuite does), its two finger servos are kept
  (kp 1000, 20 N) and its contact geoms get friction (robosuite sets them at run time; shipped as 0);
- its force sensors and robosuite's cameras go; marker sites and collision geoms are hidden from the cameras;
- the visual meshes (~200k triangles) are simplified by vertex clustering (`visual_mesh_cell`).
All names get the prefix `ur5e_` (the gripper's `ur5e_gripper_`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from sim_envs.robots.assets import cluster_decimate, package_dir, read_obj, read_stl, require_files, tabletop_spec
from sim_envs.robots.description import CameraMount, RobotDescription

ROBOSUITE_VERSION = "1.5.2"
PREFIX = "ur5e_"
GRIPPER_PREFIX = "gripper_"
ARM_JOINTS = tuple(PREFIX + j for j in ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
                                        "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"))
FINGER_JOINTS = (PREFIX + GRIPPER_PREFIX + "l_finger_joint", PREFIX + GRIPPER_PREFIX + "r_finger_joint")
HAND_BODY = PREFIX + GRIPPER_PREFIX + "gripper_base"
#: Position servo gain (N m/rad), force limit (N m, the shipped motors' ctrlrange), joint damping, armature.
ARM_KP = (1000.0, 1000.0, 1000.0, 200.0, 200.0, 200.0)
ARM_FORCE = (150.0, 150.0, 150.0, 28.0, 28.0, 28.0)
ARM_DAMPING = (100.0, 100.0, 100.0, 10.0, 10.0, 10.0)
ARM_ARMATURE = (0.1, 0.1, 0.1, 0.05, 0.05, 0.05)
#: Universal Robots' published UR5e joint speed limit: 180 deg/s on every joint.
UR5E_VELOCITY_LIMITS = (np.pi,) * 6


def robosuite_assets_dir() -> Path:
    """robosuite's `models/assets` folder (found without importing robosuite, whose deps we do not install)."""
    root = package_dir("robosuite", f"install its model files with `pip install --no-deps robosuite=={ROBOSUITE_VERSION}` "
                                    "(make install does)")
    assets = root / "models" / "assets"
    return require_files(assets, ("robots/ur5e/robot.xml", "grippers/rethink_gripper.xml"),
                         f"this robosuite version does not ship the UR5e / Rethink gripper files sim_envs uses "
                         f"(tested with {ROBOSUITE_VERSION})")


@functools.lru_cache(maxsize=None)
def _simplified(path: str, cell: float) -> tuple[np.ndarray, np.ndarray]:
    corners = read_obj(Path(path)) if path.endswith(".obj") else read_stl(Path(path))
    return cluster_decimate(corners, cell)


def _load_part(path: Path, visual_mesh_cell: float):
    """MjSpec of one robosuite file: mesh paths made absolute (attach resolves them against the scene's meshdir),
    visual meshes simplified, collision geoms moved to group 3 (robosuite leaves them in group 0, which
    cameras draw: every link twice), actuators, sensors and cameras removed."""
    import mujoco

    spec = mujoco.MjSpec.from_file(str(path))
    visual = set()
    for geom in spec.geoms:
        if geom.contype or geom.conaffinity:
            geom.group = 3
        elif geom.type == mujoco.mjtGeom.mjGEOM_MESH:
            visual.add(geom.meshname)
    for mesh in spec.meshes:
        if not mesh.file:
            continue
        file = (path.parent / mesh.file).resolve()
        if visual_mesh_cell > 0 and mesh.name in visual:
            verts, faces = _simplified(str(file), float(visual_mesh_cell))
            mesh.file = ""
            mesh.uservert = verts.ravel().tolist()
            mesh.userface = faces.ravel().tolist()
        else:
            mesh.file = str(file)
    for element in list(spec.actuators) + list(spec.sensors) + list(spec.cameras):
        spec.delete(element)
    return spec


def load_spec(visual_mesh_cell: float):
    """The tabletop with the UR5e + gripper attached under `robot_base`, driven by position servos."""
    import mujoco

    assets = robosuite_assets_dir()
    arm = _load_part(assets / "robots" / "ur5e" / "robot.xml", visual_mesh_cell)
    gripper = _load_part(assets / "grippers" / "rethink_gripper.xml", visual_mesh_cell)
    for geom in gripper.geoms:
        if geom.contype or geom.conaffinity:
            geom.friction = [1.0, 0.005, 0.0001]
    arm.body("right_hand").add_frame().attach_body(gripper.body("gripper_base"), GRIPPER_PREFIX, "")
    spec = tabletop_spec()
    spec.body("robot_base").add_frame().attach_body(arm.body("base"), PREFIX, "")
    for name, kp, force, damping, armature in zip(ARM_JOINTS, ARM_KP, ARM_FORCE, ARM_DAMPING, ARM_ARMATURE):
        joint = spec.joint(name)
        joint.damping = [damping, 0.0, 0.0]  # mujoco 4: damping polynomial (linear term first)
        joint.armature, joint.frictionloss = armature, 0.0
        spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                          gainprm=[kp] + [0.0] * 9, biasprm=[0.0, -kp, 0.0] + [0.0] * 7,
                          gaintype=mujoco.mjtGain.mjGAIN_FIXED, biastype=mujoco.mjtBias.mjBIAS_AFFINE,
                          forcelimited=True, forcerange=[-force, force], ctrllimited=True, ctrlrange=list(joint.range))
    for name in FINGER_JOINTS:  # the shipped finger servos: kp 1000, +-20 N
        joint = spec.joint(name)
        spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                          gainprm=[1000.0] + [0.0] * 9, biasprm=[0.0, -1000.0, 0.0] + [0.0] * 7,
                          gaintype=mujoco.mjtGain.mjGAIN_FIXED, biastype=mujoco.mjtBias.mjBIAS_AFFINE,
                          forcelimited=True, forcerange=[-20.0, 20.0], ctrllimited=True, ctrlrange=list(joint.range))
    return spec


UR5E = RobotDescription(
    name="ur5e",
    arm_joints=ARM_JOINTS,
    finger_joints=FINGER_JOINTS,
    # The left finger opens towards +y of the gripper, the right one towards -y (shipped joint ranges).
    finger_closed=(-0.0115, 0.0115),
    finger_open=(0.020833, -0.020833),
    finger_bodies=tuple(PREFIX + GRIPPER_PREFIX + b for b in ("l_finger", "l_finger_tip", "r_finger", "r_finger_tip")),
    finger_half_depth=0.010,  # the finger boxes' half size along the gripper's x
    hand_body=HAND_BODY,
    # Between the finger pads (pad centres at z = 0.1024 of the gripper base); fingers close along its y.
    grip_site_pos=(0.0, 0.0, 0.1024),
    grip_site_quat=(1.0, 0.0, 0.0, 0.0),
    # Grip site 0.25 m above the table at x = 0.45, pointing down, elbow up (solved by IK).
    q_home=(-0.302, -1.661, 2.015, -1.925, -1.571, -1.873),
    velocity_limits=UR5E_VELOCITY_LIMITS,
    workspace_low=(0.25, -0.35, 0.035),
    workspace_high=(0.75, 0.35, 0.45),
    # Across the table like the Panda's (so "left" in its image is still world -y), from the other side, higher.
    primary_camera=CameraMount("world", (0.95, -0.32, 0.62), (0.42, 0.02, 0.08), fovy=50.0),
    wrist_camera=CameraMount(HAND_BODY, (0.065, 0.0, 0.04), (0.0, 0.0, 0.28), (-1.0, 0.0, 0.0), fovy=80.0),
    gravcomp_prefix=PREFIX,
    hidden_sites=tuple(PREFIX + s for s in ("right_center",)) + tuple(
        PREFIX + GRIPPER_PREFIX + s for s in ("ft_frame", "grip_site", "ee_x", "ee_y", "ee_z", "grip_site_cylinder")),
    load_spec=load_spec,
    source=f"robosuite {ROBOSUITE_VERSION} (MIT): robots/ur5e + grippers/rethink_gripper",
)
