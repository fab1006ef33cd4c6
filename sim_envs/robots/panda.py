"""The Franka Emika Panda with its hand, as gymnasium-robotics ships it (the default robot).

The model (`franka_assets/`: `assets.xml`, `chain.xml`, `actuator.xml` and the meshes) is the one that
gymnasium-robotics ships under Apache-2.0 (modified by Farama from github.com/vikashplus/franka, limits from
Franka's published constants). It is referenced from the installed package at run time; nothing is copied or
downloaded. Its actuators are already position servos; `sim_envs.scene.SceneBuilder.tabletop` adds gravity
compensation, finger contacts, the grip site and the wrist camera with MjSpec (original files untouched).
The visual meshes (136k triangles, 20-35 ms per 64 px frame on llvmpipe) are simplified to ~16k at load time.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from sim_envs.robots.assets import cluster_decimate, package_dir, read_stl, replace_meshes, require_files, tabletop_spec
from sim_envs.robots.description import CameraMount, RobotDescription

#: Franka's published joint velocity limits (rad/s), frankaemika.github.io/docs/control_parameters.html.
PANDA_VELOCITY_LIMITS = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
HAND_BODY = "panda0_link7"


def franka_assets_dir() -> Path:
    """The `franka_assets` folder inside the installed gymnasium-robotics (found without importing it)."""
    root = package_dir("gymnasium_robotics", "install it with `pip install gymnasium-robotics==1.4.2` (or "
                                             "`pip install -e .[sim]`)")
    return require_files(root / "envs" / "assets" / "kitchen_franka" / "franka_assets",
                         ("assets.xml", "chain.xml", "actuator.xml"),
                         "this gymnasium-robotics version does not ship the kitchen Franka assets sim_envs was "
                         "built for (tested with 1.4.2)")


@functools.lru_cache(maxsize=None)
def _simplified_visual_meshes(cell: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for path in sorted((franka_assets_dir() / "meshes" / "visual").glob("*.stl")):
        if path.stem == "finger":  # the finger visual uses a scaled collision mesh in assets.xml
            continue
        out[f"{path.stem}_viz"] = cluster_decimate(read_stl(path), cell)
    return out


def load_spec(visual_mesh_cell: float):
    """The tabletop with the Panda's MJCF included under `robot_base`."""
    d = franka_assets_dir()
    spec = tabletop_spec(assets=f'<include file="{d}/assets.xml"/>', meshdir=f'meshdir="{d}/meshes" ',
                         chain=f'<include file="{d}/chain.xml"/>', actuators=f'<include file="{d}/actuator.xml"/>')
    if visual_mesh_cell > 0:
        replace_meshes(spec, _simplified_visual_meshes(float(visual_mesh_cell)))
    return spec


# Wrist camera: on the hand, behind the fingers, looking along the gripper (+z of link7). The hand is rotated
# -45 deg about z in link7, so the offset (x = -y) is perpendicular to the finger motion; image "up" points
# away from the offset.
_WRIST_OFFSET = 0.075 * np.array([0.7071, -0.7071, 0.0])

PANDA = RobotDescription(
    name="panda",
    arm_joints=tuple(f"robot:panda0_joint{i}" for i in range(1, 8)),
    finger_joints=("robot:panda0_finger_joint1", "robot:panda0_finger_joint2"),
    finger_closed=(0.0, 0.0),
    finger_open=(0.04, 0.04),
    finger_bodies=("panda0_leftfinger", "panda0_rightfinger"),
    finger_half_depth=0.022,  # finger collision geoms' extent along the site's x (measured: pushes 4.2 cm behind a cube's centre)
    hand_body=HAND_BODY,
    # Between the finger pads, in the hand's frame (-45 deg about z of link7): the fingers close along its y.
    grip_site_pos=(0.0, 0.0, 0.2254),
    grip_site_quat=(0.9238795, 0.0, 0.0, -0.3826834),
    # Gripper 0.25 m above the table at x = 0.45, pointing down (solved by IK).
    q_home=(0.073, -0.185, -0.073, -2.497, -0.018, 0.743, 0.014),
    velocity_limits=PANDA_VELOCITY_LIMITS,
    workspace_low=(0.2, -0.4, 0.035),
    workspace_high=(0.8, 0.4, 0.5),
    primary_camera=CameraMount("world", (0.95, 0.32, 0.48), (0.45, -0.04, 0.05), fovy=50.0),
    wrist_camera=CameraMount(HAND_BODY, tuple(_WRIST_OFFSET + np.array([0.0, 0.0, 0.12])), (0.0, 0.0, 0.35),
                             tuple(-_WRIST_OFFSET), fovy=75.0),
    gravcomp_prefix="panda0",
    hidden_sites=("end_effector",),  # the shipped site is drawn as a grey ball in the wrist view
    load_spec=load_spec,
    source="gymnasium-robotics 1.4.2 kitchen_franka assets (Apache-2.0; from github.com/vikashplus/franka)",
)
