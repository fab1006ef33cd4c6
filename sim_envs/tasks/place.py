"""PlaceCubeOnPlate: pick the named cube (a distractor cube of another colour is present) and put it on the plate."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder
from sim_envs.tasks.base import COLORS, CUBE_HALF, Task

PLATE_RADIUS = 0.06
PLATE_HALF_HEIGHT = 0.005


class PlaceCubeOnPlate(Task):
    name = "PlaceCubeOnPlate"
    description = "two cubes and a plate; put the named cube on the plate and let go"
    templates = (
        "put the {color} cube on the {plate} plate",
        "place the {color} block onto the {plate} plate",
        "pick up the {color} cube and put it on the {plate} plate",
        "move the {color} cube onto the {plate} dish",
    )
    max_episode_steps = 80

    def build(self, scene: SceneBuilder) -> None:
        scene.add_box("cube", (0.45, 0.1, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["red"], mass=0.05)
        scene.add_box("distractor", (0.45, -0.1, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["blue"], mass=0.05)
        scene.add_cylinder("plate", (0.55, 0.0, PLATE_HALF_HEIGHT), PLATE_RADIUS, PLATE_HALF_HEIGHT, COLORS["green"])
        self.named_geoms = ["cube", "distractor", "plate"]

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        color, other, plate = self.pick_colors(rng, 3)
        cube_xy, distractor_xy, plate_xy = self.sample_positions(rng, 3, 0.11)
        yaws = rng.uniform(-np.pi / 4, np.pi / 4, 2)
        self.set_rgba(physics, "cube", color)
        self.set_rgba(physics, "distractor", other)
        self.set_rgba(physics, "plate", plate)
        physics.set_free_body("cube", (*cube_xy, CUBE_HALF), float(yaws[0]))
        physics.set_free_body("distractor", (*distractor_xy, CUBE_HALF), float(yaws[1]))
        physics.model.body("plate").pos[:2] = plate_xy
        template = self.set_instruction(rng, color=color, plate=plate)
        return {"color": color, "distractor_color": other, "plate_color": plate, "cube_xy": cube_xy.tolist(),
                "distractor_xy": distractor_xy.tolist(), "plate_xy": plate_xy.tolist(),
                "yaws": yaws.tolist(), "template": template}

    def success(self, physics: Physics) -> bool:
        cube, plate = physics.body_pos("cube"), physics.body_pos("plate")
        on_plate = np.linalg.norm(cube[:2] - plate[:2]) < PLATE_RADIUS - 0.01
        resting = cube[2] < 2 * PLATE_HALF_HEIGHT + CUBE_HALF + 0.008
        return bool(on_plate and resting and not self.fingers_touch(physics, "cube"))

    def privileged_state(self, physics: Physics) -> dict[str, Any]:
        plate = physics.body_pos("plate")
        return {"object_pos": physics.body_pos("cube"), "object_yaw": physics.body_yaw("cube"),
                "place_pos": np.array([plate[0], plate[1], 2 * PLATE_HALF_HEIGHT + CUBE_HALF])}
