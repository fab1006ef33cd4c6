"""Task base class: objects, initial-state distribution, instruction templates and success check.

A task never steps physics or renders; it reads and writes state only through `sim_envs.robot.Physics`.
`initialize_episode` draws everything random about the episode from the task's random generator, so a seed
fixes the layout, the colours and the instruction.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder

#: Colour names used in instructions -> RGBA. Visual domain randomization only jitters these slightly.
COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.12, 0.65, 0.20, 1.0),
    "blue": (0.12, 0.28, 0.85, 1.0),
    "yellow": (0.92, 0.80, 0.10, 1.0),
    "purple": (0.55, 0.20, 0.70, 1.0),
    "orange": (0.95, 0.50, 0.10, 1.0),
}
CUBE_HALF = 0.02
#: Where objects may start (base frame, m): in front of the robot, inside both cameras' views.
SPAWN_LOW = np.array([0.38, -0.16])
SPAWN_HIGH = np.array([0.60, 0.16])


class Task(abc.ABC):
    """One manipulation task. Subclasses set the class attributes and implement the hooks."""

    #: Name used in the gymnasium id `vla_sim/<name>-v0`.
    name: ClassVar[str]
    #: Instruction templates; `{color}` etc. are filled by `initialize_episode`.
    templates: ClassVar[tuple[str, ...]]
    #: Episode length (control steps) registered with gymnasium's TimeLimit.
    max_episode_steps: ClassVar[int] = 60
    #: One-line description for docs and `sim_envs.describe_tasks()`.
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        self.instruction = ""
        #: Geoms whose colour the instruction names (visual DR keeps them recognizable).
        self.named_geoms: list[str] = []

    @abc.abstractmethod
    def build(self, scene: SceneBuilder) -> None:
        """Add the task's bodies to the scene spec (before compiling)."""

    @abc.abstractmethod
    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        """Place objects, pick colours and the instruction; return the JSON-able layout."""

    @abc.abstractmethod
    def success(self, physics: Physics) -> bool:
        """True when the simulator state satisfies the instruction."""

    @abc.abstractmethod
    def privileged_state(self, physics: Physics) -> dict[str, Any]:
        """Ground-truth quantities the scripted expert plans with (positions in the base frame, m)."""

    # -- helpers for subclasses ------------------------------------------------------------------------------
    def set_instruction(self, rng: np.random.Generator, **names: str) -> int:
        idx = int(rng.integers(len(self.templates)))
        self.instruction = self.templates[idx].format(**names)
        return idx

    @staticmethod
    def pick_colors(rng: np.random.Generator, n: int) -> list[str]:
        names = list(COLORS)
        return [names[i] for i in rng.choice(len(names), size=n, replace=False)]

    @staticmethod
    def set_rgba(physics: Physics, geom: str, color: str) -> None:
        physics.model.geom(geom).rgba[:] = COLORS[color]

    @staticmethod
    def sample_positions(rng: np.random.Generator, n: int, min_dist: float, low=SPAWN_LOW, high=SPAWN_HIGH,
                         max_tries: int = 1000) -> list[np.ndarray]:
        """`n` xy positions in the box [low, high], pairwise at least `min_dist` apart (rejection sampling)."""
        out: list[np.ndarray] = []
        for _ in range(max_tries):
            p = rng.uniform(low, high)
            if all(np.linalg.norm(p - q) >= min_dist for q in out):
                out.append(p)
                if len(out) == n:
                    return out
        raise RuntimeError(f"could not place {n} objects {min_dist} m apart in {low}..{high}")

    @staticmethod
    def fingers_touch(physics: Physics, geom: str) -> bool:
        """Whether either finger touches `geom` (any of the finger collision geoms)."""
        model, data = physics.model, physics.data
        target = model.geom(geom).id
        fingers = {model.body("panda0_leftfinger").id, model.body("panda0_rightfinger").id}
        for g1, g2 in zip(data.contact.geom1, data.contact.geom2):
            if g1 == target and model.geom_bodyid[g2] in fingers:
                return True
            if g2 == target and model.geom_bodyid[g1] in fingers:
                return True
        return False
