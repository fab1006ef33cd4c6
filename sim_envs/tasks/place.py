"""PlaceCubeOnPlate: pick the named cube (a distractor cube of another colour is present) and put it on the plate.

One referent (the instruction always names the cube called "cube"); acting on the distractor is the
wrong target.
"""

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
    heldout_templates = (
        "set the {color} block down on the {plate} plate",
        "the {color} cube goes on the {plate} dish",
    )
    max_episode_steps = 80

    def __init__(self) -> None:
        super().__init__()
        self._distractor_start: tuple[float, float, float] = (0.45, -0.1, CUBE_HALF)

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
        self.candidates = [{"color": color, "plate": plate}]
        self._distractor_start = (*distractor_xy, CUBE_HALF)
        return {"color": color, "distractor_color": other, "plate_color": plate, "cube_xy": cube_xy.tolist(),
                "distractor_xy": distractor_xy.tolist(), "plate_xy": plate_xy.tolist(),
                "yaws": yaws.tolist()}

    def success(self, physics: Physics) -> bool:
        return on_plate(physics, "cube", "plate") and not self.fingers_touch(physics, "cube")

    def wrong_target(self, physics: Physics) -> bool:
        """The distractor was moved (lifted, pushed, carried) or is on the plate."""
        return self.moved(physics, "distractor", self._distractor_start) or on_plate(physics, "distractor", "plate")

    def privileged_state(self, physics: Physics) -> dict[str, Any]:
        plate = physics.body_pos("plate")
        return {"object_pos": physics.body_pos("cube"), "object_yaw": physics.body_yaw("cube"),
                "place_pos": np.array([plate[0], plate[1], 2 * PLATE_HALF_HEIGHT + CUBE_HALF])}


def on_plate(physics: Physics, cube: str, plate: str, radius: float = PLATE_RADIUS) -> bool:
    """Whether `cube` rests on `plate`: centre within `radius` - 1 cm of the plate's axis, bottom on its top."""
    c, p = physics.body_pos(cube), physics.body_pos(plate)
    centred = np.linalg.norm(c[:2] - p[:2]) < radius - 0.01
    resting = c[2] < 2 * PLATE_HALF_HEIGHT + CUBE_HALF + 0.008
    return bool(centred and resting)
