"""LiftCube: pick up the one cube on the table and hold it 6 cm above the table.

`LiftCubeEasy` is the same task with the cube within +-3 cm of one spot and +-0.2 rad of yaw (LIBERO-sized
initial-state noise): the first task to learn, e.g. a tiny policy trained for minutes on a CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder
from sim_envs.tasks.base import COLORS, CUBE_HALF, SPAWN_HIGH, SPAWN_LOW, Task

LIFT_HEIGHT = 0.06  # m above the resting height


class LiftCube(Task):
    name = "LiftCube"
    description = "one cube (random colour, position, yaw); success when it is 6 cm above the table"
    templates = (
        "lift the {color} cube",
        "pick up the {color} cube",
        "raise the {color} block off the table",
        "grab the {color} cube and lift it",
    )
    heldout_templates = (
        "take hold of the {color} block and hold it up",
        "get the {color} cube up in the air",
    )
    max_episode_steps = 50
    spawn_low, spawn_high = SPAWN_LOW, SPAWN_HIGH
    max_yaw = np.pi / 4

    def build(self, scene: SceneBuilder) -> None:
        scene.add_box("cube", (0.5, 0.0, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["red"], mass=0.05)
        self.named_geoms = ["cube"]

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        (color,) = self.pick_colors(rng, 1)
        (xy,) = self.sample_positions(rng, 1, 0.0, low=self.spawn_low, high=self.spawn_high)
        yaw = float(rng.uniform(-self.max_yaw, self.max_yaw))
        self.set_rgba(physics, "cube", color)
        physics.set_free_body("cube", (xy[0], xy[1], CUBE_HALF), yaw)
        self.candidates = [{"color": color}]
        return {"color": color, "cube_xy": xy.tolist(), "cube_yaw": yaw}

    def success(self, physics: Physics) -> bool:
        return bool(physics.body_pos("cube")[2] > CUBE_HALF + LIFT_HEIGHT)

    def privileged_state(self, physics: Physics) -> dict[str, Any]:
        return {"object_pos": physics.body_pos("cube"), "object_yaw": physics.body_yaw("cube"),
                "lift_z": CUBE_HALF + LIFT_HEIGHT}


class LiftCubeEasy(LiftCube):
    name = "LiftCubeEasy"
    description = "LiftCube with small initial-state noise (cube within +-3 cm, yaw +-0.2 rad): learn this first"
    spawn_low, spawn_high = np.array([0.47, -0.03]), np.array([0.53, 0.03])
    max_yaw = 0.2
