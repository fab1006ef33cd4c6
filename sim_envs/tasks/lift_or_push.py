"""LiftOrPushCube: one scene, two verbs. "lift the red cube" and "push the red cube" differ in the verb only.

Two cubes of different colours stand side by side (at least 10 cm apart across the table, so pushing one
forward never meets the other). Candidates are verb x cube: lifting is the cube 6 cm above the table,
pushing is the cube slid at least 8 cm from its start and still resting on the table (the expert pushes it
away from the robot, +x). Doing the other verb to the named cube satisfies another candidate: wrong target.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder
from sim_envs.tasks.base import COLORS, CUBE_HALF
from sim_envs.tasks.lift import LIFT_HEIGHT
from sim_envs.tasks.referring import ReferringTask

VERBS = ("lift", "push")
PUSH_SUCCESS = 0.08  # m of sliding that counts as pushed
PUSH_GOAL = np.array([0.11, 0.0])  # where the expert pushes to, relative to the start (m): away from the robot
RESTING_Z = CUBE_HALF + 0.01


class LiftOrPushCube(ReferringTask):
    name = "LiftOrPushCube"
    description = ("two cubes side by side; lift (6 cm up) or push (slid 8 cm, resting on the table) the named one: "
                   "the verb and the colour decide")
    templates = (
        "{verb} the {color} cube",
        "{verb} the {color} block",
        "please {verb} the {color} cube",
        "{verb} the cube that is {color}",
    )
    heldout_templates = (
        "now {verb} the {color} block",
        "go and {verb} the {color} cube",
    )
    max_episode_steps = 60
    cubes = ("cube0", "cube1")

    def build(self, scene: SceneBuilder) -> None:
        for i, cube in enumerate(self.cubes):
            scene.add_box(cube, (0.45, 0.2 * i - 0.1, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["red"], mass=0.05)
        self.named_geoms = list(self.cubes)

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        colors = self.pick_colors(rng, 2)
        x = rng.uniform(0.40, 0.50, 2)
        y0 = rng.uniform(-0.14, 0.04)
        ys = np.array([y0, rng.uniform(y0 + 0.10, 0.14)])
        yaws = rng.uniform(-np.pi / 4, np.pi / 4, 2)
        for cube, color, xy, yaw in zip(self.cubes, colors, zip(x, ys), yaws):
            self.set_rgba(physics, cube, color)
            self.place(physics, cube, xy, CUBE_HALF, float(yaw))
        self.candidates = [{"verb": v, "color": c} for v in VERBS for c in colors]
        return {"colors": colors, "xy": np.stack([x, ys], 1).tolist(), "yaws": yaws.tolist()}

    def _cube(self, index: int) -> str:
        return self.cubes[index % len(self.cubes)]

    def candidate_bodies(self, index: int) -> tuple[str, ...]:
        return (self._cube(index),)

    def candidate_success(self, physics: Physics, index: int) -> bool:
        cube = self._cube(index)
        pos = physics.body_pos(cube)
        if self.candidates[index]["verb"] == "lift":
            return bool(pos[2] > CUBE_HALF + LIFT_HEIGHT)
        slid = np.linalg.norm(pos[:2] - self.starts[cube][:2])
        return bool(slid > PUSH_SUCCESS and pos[2] < RESTING_Z)

    def candidate_state(self, physics: Physics, index: int) -> dict[str, Any]:
        cube = self._cube(index)
        start = self.starts[cube]
        return {"verb": self.candidates[index]["verb"], "object_pos": physics.body_pos(cube),
                "object_yaw": physics.body_yaw(cube), "lift_z": CUBE_HALF + LIFT_HEIGHT,
                "target_pos": np.array([*(start[:2] + PUSH_GOAL), 0.0])}
