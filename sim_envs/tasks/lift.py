"""LiftCube: pick up the one cube on the table and hold it 6 cm above the table."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder
from sim_envs.tasks.base import COLORS, CUBE_HALF, Task

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
    max_episode_steps = 50

    def build(self, scene: SceneBuilder) -> None:
        scene.add_box("cube", (0.5, 0.0, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["red"], mass=0.05)
        self.named_geoms = ["cube"]

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        (color,) = self.pick_colors(rng, 1)
        (xy,) = self.sample_positions(rng, 1, 0.0)
        yaw = float(rng.uniform(-np.pi / 4, np.pi / 4))
        self.set_rgba(physics, "cube", color)
        physics.set_free_body("cube", (xy[0], xy[1], CUBE_HALF), yaw)
        template = self.set_instruction(rng, color=color)
        return {"color": color, "cube_xy": xy.tolist(), "cube_yaw": yaw, "template": template}

    def success(self, physics: Physics) -> bool:
        return bool(physics.body_pos("cube")[2] > CUBE_HALF + LIFT_HEIGHT)

    def privileged_state(self, physics: Physics) -> dict[str, Any]:
        return {"object_pos": physics.body_pos("cube"), "object_yaw": physics.body_yaw("cube"),
                "lift_z": CUBE_HALF + LIFT_HEIGHT}
