"""OpenDrawer: pull a drawer out of a cabinet by its vertical handle.

The cabinet stands to the robot's right with the drawer facing the table centre (+y), so both cameras see
the drawer front and the pull is sideways.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder
from sim_envs.tasks.base import COLORS, Task

CABINET_XY = (0.52, -0.28)  # nominal cabinet centre (m); its front face is 0.1 m towards +y
#: Cabinet frame -> world: its local -x (the drawer front) points along world +y.
CABINET_QUAT = (0.70710678, 0.0, 0.0, -0.70710678)
HANDLE_STANDOFF = 0.04  # handle bar axis in front of the drawer face (m)
HANDLE_Z = 0.06  # middle of the handle bar (m)
OPEN_SUCCESS = 0.12  # m of travel counted as open (range 0-0.2)
WOOD = (0.55, 0.42, 0.30, 1.0)


class OpenDrawer(Task):
    name = "OpenDrawer"
    description = "a cabinet with one drawer (random colour and place); success when pulled 12 cm open"
    templates = (
        "open the drawer",
        "open the {color} drawer",
        "pull the {color} drawer open",
        "pull out the drawer of the cabinet",
    )
    heldout_templates = (
        "slide the {color} drawer out",
        "get the drawer of the cabinet open",
    )
    max_episode_steps = 60

    def build(self, scene: SceneBuilder) -> None:
        import mujoco

        box = mujoco.mjtGeom.mjGEOM_BOX
        cab = scene.spec.worldbody.add_body(name="cabinet", pos=[*CABINET_XY, 0.0], quat=list(CABINET_QUAT))
        for name, pos, size in (
            ("cabinet_top", (0.0, 0.0, 0.105), (0.1, 0.12, 0.005)),
            ("cabinet_back", (0.095, 0.0, 0.05), (0.005, 0.12, 0.05)),
            ("cabinet_left", (0.0, 0.115, 0.05), (0.1, 0.005, 0.05)),
            ("cabinet_right", (0.0, -0.115, 0.05), (0.1, 0.005, 0.05)),
        ):
            cab.add_geom(name=name, type=box, pos=list(pos), size=list(size), rgba=list(WOOD))
        drawer = scene.spec.worldbody.add_body(name="drawer", pos=[*CABINET_XY, 0.0], quat=list(CABINET_QUAT))
        drawer.add_joint(name="drawer_slide", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[-1, 0, 0], range=[0, 0.2],
                         damping=3.0, frictionloss=0.2)
        drawer.add_geom(name="drawer_front", type=box, pos=[-0.095, 0, 0.05], size=[0.005, 0.105, 0.045],
                        rgba=list(COLORS["red"]), mass=0.3)
        drawer.add_geom(name="drawer_bottom", type=box, pos=[0.0, 0, 0.009], size=[0.09, 0.105, 0.004], rgba=list(WOOD))
        for y in (0.103, -0.103):
            drawer.add_geom(type=box, pos=[0.0, y, 0.04], size=[0.09, 0.003, 0.03], rgba=list(WOOD))
        handle_x = -0.1 - HANDLE_STANDOFF
        drawer.add_geom(name="handle", type=mujoco.mjtGeom.mjGEOM_CAPSULE, rgba=[0.8, 0.8, 0.82, 1],
                        fromto=[handle_x, 0, HANDLE_Z - 0.03, handle_x, 0, HANDLE_Z + 0.03], size=[0.008, 0, 0])
        for z in (HANDLE_Z - 0.03, HANDLE_Z + 0.03):  # posts thinner than the bar, so fingers close on the bar only
            drawer.add_geom(type=mujoco.mjtGeom.mjGEOM_CAPSULE, rgba=[0.8, 0.8, 0.82, 1], size=[0.005, 0, 0],
                            fromto=[handle_x, 0, z, -0.1, 0, z])
        scene.spec.add_exclude(bodyname1="cabinet", bodyname2="drawer")
        self.named_geoms = ["drawer_front"]

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        (color,) = self.pick_colors(rng, 1)
        x = CABINET_XY[0] + float(rng.uniform(-0.08, 0.08))
        y = CABINET_XY[1] + float(rng.uniform(-0.03, 0.03))
        for body in ("cabinet", "drawer"):
            physics.model.body(body).pos[:2] = (x, y)
        self.set_rgba(physics, "drawer_front", color)
        physics.set_joint_qpos("drawer_slide", 0.0)
        self.candidates = [{"color": color}]
        return {"color": color, "cabinet_xy": [x, y]}

    def success(self, physics: Physics) -> bool:
        return physics.joint_qpos("drawer_slide") > OPEN_SUCCESS

    def privileged_state(self, physics: Physics) -> dict[str, Any]:
        handle = physics.data.geom("handle").xpos.copy()
        pull = physics.data.joint("drawer_slide").xaxis.copy()
        return {"handle_pos": handle, "pull_dir": pull, "drawer_opening": physics.joint_qpos("drawer_slide"),
                "open_target": OPEN_SUCCESS + 0.04}
