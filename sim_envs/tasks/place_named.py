"""Put a named cube on a plate: a two-object relation (PlaceCubeOnNamedPlate: which cube, which plate) and a
spatial reference (PlaceSideCubeOnPlate: two cubes of one colour, "the cube left of the plate").

Left and right are as seen in the primary camera's image (the view a person watches in videos): the camera
faces the robot from across the table, so its left is the robot's right (world -y).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder
from sim_envs.tasks.base import COLORS, CUBE_HALF
from sim_envs.tasks.place import PLATE_HALF_HEIGHT, PlaceCubeOnPlate, on_plate
from sim_envs.tasks.referring import ReferringTask

NAMED_PLATE_RADIUS = 0.05  # smaller than PlaceCubeOnPlate's 6 cm, so four objects fit in the cameras' view
#: World y direction of "left" in the primary camera's image.
LEFT_Y = -1.0
SIDES = ("left", "right")


class _PlaceTask(ReferringTask):
    """Shared success and expert state: candidate i = (cube body, plate body)."""

    @abc.abstractmethod
    def _pair(self, index: int) -> tuple[str, str]:
        """(cube body, plate body) of candidate `index`."""

    def candidate_bodies(self, index: int) -> tuple[str, ...]:
        return (self._pair(index)[0],)

    def candidate_success(self, physics: Physics, index: int) -> bool:
        cube, plate = self._pair(index)
        return on_plate(physics, cube, plate, self.plate_radius) and not self.fingers_touch(physics, cube)

    def candidate_state(self, physics: Physics, index: int) -> dict[str, Any]:
        cube, plate = self._pair(index)
        p = physics.body_pos(plate)
        return {"object_pos": physics.body_pos(cube), "object_yaw": physics.body_yaw(cube),
                "place_pos": np.array([p[0], p[1], 2 * PLATE_HALF_HEIGHT + CUBE_HALF])}


class PlaceCubeOnNamedPlate(_PlaceTask):
    name = "PlaceCubeOnNamedPlate"
    description = "two cubes and two plates, four colours; put the named cube on the named plate and let go"
    templates = PlaceCubeOnPlate.templates
    heldout_templates = PlaceCubeOnPlate.heldout_templates
    max_episode_steps = 80
    plate_radius = NAMED_PLATE_RADIUS
    cubes = ("cube0", "cube1")
    plates = ("plate0", "plate1")

    def build(self, scene: SceneBuilder) -> None:
        for i, (cube, plate) in enumerate(zip(self.cubes, self.plates)):
            scene.add_box(cube, (0.42, 0.15 * i - 0.07, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["red"], mass=0.05)
            scene.add_cylinder(plate, (0.56, 0.15 * i - 0.07, PLATE_HALF_HEIGHT), self.plate_radius,
                               PLATE_HALF_HEIGHT, COLORS["green"])
        self.named_geoms = [*self.cubes, *self.plates]

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        colors = self.pick_colors(rng, 4)
        xys = self.spread_positions(rng, 4, 0.12)
        yaws = rng.uniform(-np.pi / 4, np.pi / 4, 2)
        for cube, color, xy, yaw in zip(self.cubes, colors[:2], xys[:2], yaws):
            self.set_rgba(physics, cube, color)
            self.place(physics, cube, xy, CUBE_HALF, float(yaw))
        for plate, color, xy in zip(self.plates, colors[2:], xys[2:]):
            self.set_rgba(physics, plate, color)
            physics.model.body(plate).pos[:2] = xy
        self.candidates = [{"color": c, "plate": p} for c in colors[:2] for p in colors[2:]]
        return {"cube_colors": colors[:2], "plate_colors": colors[2:], "cube_xy": [xy.tolist() for xy in xys[:2]],
                "plate_xy": [xy.tolist() for xy in xys[2:]], "yaws": yaws.tolist()}

    def _pair(self, index: int) -> tuple[str, str]:
        return self.cubes[index // 2], self.plates[index % 2]


class PlaceSideCubeOnPlate(_PlaceTask):
    name = "PlaceSideCubeOnPlate"
    description = ("a plate between two cubes of one colour; put the cube on the named side (left/right in the "
                   "primary camera's view) on the plate")
    templates = (
        "put the {side} cube on the plate",
        "place the cube {side} of the plate onto the plate",
        "pick up the {side} cube and put it on the plate",
        "move the cube on the {side} onto the plate",
    )
    heldout_templates = (
        "set the {side} block down on the plate",
        "the cube {side} of the plate goes on it",
    )
    max_episode_steps = 80
    plate_radius = NAMED_PLATE_RADIUS
    cubes = ("cube_left", "cube_right")

    def build(self, scene: SceneBuilder) -> None:
        for cube, side in zip(self.cubes, (1.0, -1.0)):
            scene.add_box(cube, (0.48, 0.12 * side * LEFT_Y, CUBE_HALF), (CUBE_HALF,) * 3, COLORS["red"], mass=0.05)
        scene.add_cylinder("plate", (0.48, 0.0, PLATE_HALF_HEIGHT), self.plate_radius, PLATE_HALF_HEIGHT,
                           COLORS["green"])
        self.named_geoms = [*self.cubes, "plate"]

    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        cube_color, plate_color = self.pick_colors(rng, 2)
        plate_xy = rng.uniform([0.44, -0.02], [0.54, 0.02])
        # (dx, |dy|) per cube: at least 11.5 cm across, so the open fingers (4.5 cm from the grip point) clear the plate
        offsets = np.stack([rng.uniform(-0.05, 0.05, 2), rng.uniform(0.115, 0.14, 2)], axis=1)
        yaws = rng.uniform(-np.pi / 4, np.pi / 4, 2)
        physics.model.body("plate").pos[:2] = plate_xy
        self.set_rgba(physics, "plate", plate_color)
        cube_xy = []
        for cube, side, (dx, dy), yaw in zip(self.cubes, (1.0, -1.0), offsets, yaws):
            xy = plate_xy + np.array([dx, side * LEFT_Y * dy])
            self.set_rgba(physics, cube, cube_color)
            self.place(physics, cube, xy, CUBE_HALF, float(yaw))
            cube_xy.append(xy.tolist())
        self.candidates = [{"side": s} for s in SIDES]
        return {"cube_color": cube_color, "plate_color": plate_color, "plate_xy": plate_xy.tolist(),
                "cube_xy": cube_xy, "yaws": yaws.tolist()}

    def _pair(self, index: int) -> tuple[str, str]:
        return self.cubes[index], "plate"
