"""StackCube: put one cube on top of another (both named by colour) and let go."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder
from sim_envs.tasks.base import COLORS, CUBE_HALF, Task


class StackCube(Task):
    name = "StackCube"
    description = "two cubes; stack the first named cube on the second and let go"
    templates = (
        "stack the {top} cube on the {base} cube",
        "put the {top} block on top of the {base} block",
        "place the {top} cube onto the {base} cube",
        "pick up the {top} cube and stack it on the {base} one",
    )
    heldout_templates = (
        "set the {top} block down on top of the {base} block",
        "build a tower with the {top} cube above the {base} cube",
    )
    max_episode_steps = 80

    def build(self, scene: SceneBuilder) -> None:
        scene.add_box("cube", (0.45, 0.1, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["red"], mass=0.05)
        scene.add_box("base_cube", (0.45, -0.1, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["blue"], mass=0.1)
        self.named_geoms = ["cube", "base_cube"]

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        top, base = self.pick_colors(rng, 2)
        top_xy, base_xy = self.sample_positions(rng, 2, 0.1)
        yaws = rng.uniform(-np.pi / 4, np.pi / 4, 2)
        self.set_rgba(physics, "cube", top)
        self.set_rgba(physics, "base_cube", base)
        physics.set_free_body("cube", (*top_xy, CUBE_HALF), float(yaws[0]))
        physics.set_free_body("base_cube", (*base_xy, CUBE_HALF), float(yaws[1]))
        self.candidates = [{"top": top, "base": base}]
        return {"top_color": top, "base_color": base, "top_xy": top_xy.tolist(), "base_xy": base_xy.tolist(),
                "yaws": yaws.tolist()}

    def success(self, physics: Physics) -> bool:
        top, base = physics.body_pos("cube"), physics.body_pos("base_cube")
        aligned = np.linalg.norm(top[:2] - base[:2]) < CUBE_HALF
        on_top = abs(top[2] - base[2] - 2 * CUBE_HALF) < 0.008
        return bool(aligned and on_top and not self.fingers_touch(physics, "cube"))

    def privileged_state(self, physics: Physics) -> dict[str, Any]:
        base = physics.body_pos("base_cube")
        return {"object_pos": physics.body_pos("cube"), "object_yaw": physics.body_yaw("cube"),
                "place_pos": base + np.array([0.0, 0.0, 2 * CUBE_HALF]), "place_yaw": physics.body_yaw("base_cube")}
