"""PushCube: push a cube across the table onto a flat target marker (no grasping)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder
from sim_envs.tasks.base import COLORS, CUBE_HALF, Task

TARGET_RADIUS = 0.03
SUCCESS_DIST = 0.03  # m between cube centre and target centre (xy)
PUSH_DIST = (0.10, 0.15)  # m from the cube's start to the target
TARGET_LOW, TARGET_HIGH = np.array([0.36, -0.2]), np.array([0.64, 0.2])


class PushCube(Task):
    name = "PushCube"
    description = "push a cube 10-15 cm onto a flat target disc of another colour; success within 3 cm"
    templates = (
        "push the {color} cube to the {target} target",
        "slide the {color} block onto the {target} circle",
        "push the {color} cube onto the {target} marker",
        "move the {color} cube to the {target} dot without picking it up",
    )
    heldout_templates = (
        "nudge the {color} block over to the {target} target",
        "shove the {color} cube until it sits on the {target} disc",
    )
    max_episode_steps = 60

    def build(self, scene: SceneBuilder) -> None:
        scene.add_box("cube", (0.45, 0.0, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["red"], mass=0.05)
        scene.add_cylinder("target", (0.55, 0.0, 0.0006), TARGET_RADIUS, 0.0005, COLORS["green"], contact=False)
        self.named_geoms = ["cube", "target"]

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        color, target_color = self.pick_colors(rng, 2)
        for _ in range(1000):
            start = rng.uniform([0.42, -0.12], [0.56, 0.12])
            angle = rng.uniform(-np.pi, np.pi)
            goal = start + rng.uniform(*PUSH_DIST) * np.array([np.cos(angle), np.sin(angle)])
            if np.all(goal >= TARGET_LOW) and np.all(goal <= TARGET_HIGH):
                break
        yaw = float(rng.uniform(-np.pi / 4, np.pi / 4))
        self.set_rgba(physics, "cube", color)
        self.set_rgba(physics, "target", target_color)
        physics.set_free_body("cube", (start[0], start[1], CUBE_HALF), yaw)
        physics.model.body("target").pos[:2] = goal
        self.candidates = [{"color": color, "target": target_color}]
        return {"color": color, "target_color": target_color, "cube_xy": start.tolist(), "cube_yaw": yaw,
                "target_xy": goal.tolist()}

    def success(self, physics: Physics) -> bool:
        d = physics.body_pos("cube")[:2] - physics.body_pos("target")[:2]
        return bool(np.linalg.norm(d) < SUCCESS_DIST)

    def privileged_state(self, physics: Physics) -> dict[str, Any]:
        return {"object_pos": physics.body_pos("cube"), "object_yaw": physics.body_yaw("cube"),
                "target_pos": physics.body_pos("target")}
