"""Lift the one object the instruction names, among several: by colour (LiftNamedCube) or by shape (LiftNamedShape).

The scene alone does not say which object to lift, so a policy that ignores the instruction succeeds at
chance (1 / 3). Success is the named object 6 cm above where it rested; lifting another one is the wrong
target.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder
from sim_envs.tasks.base import COLORS, CUBE_HALF
from sim_envs.tasks.lift import LIFT_HEIGHT, LiftCube
from sim_envs.tasks.referring import ReferringTask

N_CUBES = 3
#: Shape word -> (MuJoCo geom type name, geom size, grasp symmetry period in rad; 0 = round, any yaw). The ball
#: is grasped at its equator (centre 3 cm up, the lowest grasp height 3.5 cm): a smaller one is pinched above
#: it and pops out.
SHAPES: dict[str, tuple[str, tuple[float, ...], float]] = {
    "cube": ("box", (CUBE_HALF,) * 3, np.pi / 2),
    "cylinder": ("cylinder", (0.02, 0.03), 0.0),
    "ball": ("sphere", (0.03,), 0.0),
}

#: Friction of the round shapes (sliding, torsional m, rolling m). A round object touches each finger pad at one
#: point: sliding 2 holds an off-centre pinch, torsional 0.02 (the pads': 0.005) stops it swinging about the
#: line between the two points when the hand jerks, rolling 0.02 stops a nudged ball within millimetres (with
#: 0.002 it rolled off the table).
ROUND_FRICTION = [2.0, 0.02, 0.02]
BALL_GRASP_XY_TOL = 0.01  # m: an off-centre pinch squeezes a ball out sideways


def _half_height(shape: str) -> float:
    kind, size, _ = SHAPES[shape]
    return size[2] if kind == "box" else size[1] if kind == "cylinder" else size[0]


class LiftNamedCube(ReferringTask):
    name = "LiftNamedCube"
    description = "three cubes of different colours; lift the one the instruction names (6 cm above the table)"
    templates = LiftCube.templates
    heldout_templates = LiftCube.heldout_templates
    max_episode_steps = 50
    bodies = tuple(f"cube{i}" for i in range(N_CUBES))

    def build(self, scene: SceneBuilder) -> None:
        for i, body in enumerate(self.bodies):
            scene.add_box(body, (0.45, 0.1 * (i - 1), CUBE_HALF), (CUBE_HALF,) * 3, COLORS["red"], mass=0.05)
        self.named_geoms = list(self.bodies)

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        colors = self.pick_colors(rng, N_CUBES)
        xys = self.spread_positions(rng, N_CUBES, 0.1)
        yaws = rng.uniform(-np.pi / 4, np.pi / 4, N_CUBES)
        for body, color, xy, yaw in zip(self.bodies, colors, xys, yaws):
            self.set_rgba(physics, body, color)
            self.place(physics, body, xy, CUBE_HALF, float(yaw))
        self.candidates = [{"color": c} for c in colors]
        return {"colors": colors, "xy": [xy.tolist() for xy in xys], "yaws": yaws.tolist()}

    def candidate_bodies(self, index: int) -> tuple[str, ...]:
        return (self.bodies[index],)

    def candidate_success(self, physics: Physics, index: int) -> bool:
        return bool(physics.body_pos(self.bodies[index])[2] > CUBE_HALF + LIFT_HEIGHT)

    def candidate_state(self, physics: Physics, index: int) -> dict[str, Any]:
        body = self.bodies[index]
        return {"object_pos": physics.body_pos(body), "object_yaw": physics.body_yaw(body),
                "lift_z": CUBE_HALF + LIFT_HEIGHT}


class LiftNamedShape(ReferringTask):
    name = "LiftNamedShape"
    description = "a cube, a cylinder and a ball (colours drawn independently); lift the shape the instruction names"
    templates = (
        "lift the {shape}",
        "pick up the {shape}",
        "raise the {shape} off the table",
        "grab the {shape} and lift it",
    )
    heldout_templates = (
        "take hold of the {shape} and hold it up",
        "get the {shape} up in the air",
    )
    max_episode_steps = 50
    shapes = tuple(SHAPES)
    bodies = tuple(f"shape_{s}" for s in SHAPES)

    def build(self, scene: SceneBuilder) -> None:
        import mujoco

        types = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
                 "sphere": mujoco.mjtGeom.mjGEOM_SPHERE}
        for i, (shape, body) in enumerate(zip(self.shapes, self.bodies)):
            kind, size, _ = SHAPES[shape]
            b = scene.spec.worldbody.add_body(name=body, pos=[0.45, 0.1 * (i - 1), _half_height(shape)])
            b.add_freejoint(name=f"{body}_joint")
            # round shapes: condim 6, so their rolling friction (ROUND_FRICTION) applies
            b.add_geom(name=body, type=types[kind], size=[*size, *[0.0] * (3 - len(size))], rgba=list(COLORS["red"]),
                       friction=[1.0, 0.005, 0.0001] if kind == "box" else ROUND_FRICTION,
                       condim=4 if kind == "box" else 6, mass=0.05)
        self.named_geoms = []  # the instruction names shapes, not colours: colour jitter is free to vary

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        names = list(COLORS)
        colors = [names[i] for i in rng.integers(len(names), size=len(self.shapes))]
        xys = self.spread_positions(rng, len(self.shapes), 0.1)
        yaws = rng.uniform(-np.pi / 4, np.pi / 4, len(self.shapes))
        for shape, body, color, xy, yaw in zip(self.shapes, self.bodies, colors, xys, yaws):
            self.set_rgba(physics, body, color)
            self.place(physics, body, xy, _half_height(shape), float(yaw))
        self.candidates = [{"shape": s} for s in self.shapes]
        return {"colors": colors, "xy": [xy.tolist() for xy in xys], "yaws": yaws.tolist()}

    def candidate_bodies(self, index: int) -> tuple[str, ...]:
        return (self.bodies[index],)

    def candidate_success(self, physics: Physics, index: int) -> bool:
        return bool(physics.body_pos(self.bodies[index])[2] > _half_height(self.shapes[index]) + LIFT_HEIGHT)

    def candidate_state(self, physics: Physics, index: int) -> dict[str, Any]:
        shape, body = self.shapes[index], self.bodies[index]
        state = {"object_pos": physics.body_pos(body), "object_yaw": physics.body_yaw(body),
                 "grasp_period": SHAPES[shape][2], "lift_z": _half_height(shape) + LIFT_HEIGHT}
        if shape == "ball":
            state["grasp_xy_tol"] = BALL_GRASP_XY_TOL
        return state
