"""Base for scenes with several candidates where only the instruction says which one to act on.

A subclass places its objects with `place` (which remembers where each started), lists `candidates` and,
per candidate, the movable bodies it acts on (`candidate_bodies`), its success check (`candidate_success`)
and the state its expert plans with (`candidate_state`). Success is judged on the named candidate only.
`wrong_target` fires when the outcome of another candidate holds (the other cube lifted, the named cube on
the other plate, the named cube pushed where it should have been lifted) or when a movable object that the
named candidate does not involve left its start: checks on simulator state, with no memory of the past (the
env latches them over the episode).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from sim_envs.robot import Physics
from sim_envs.tasks.base import SPAWN_HIGH, SPAWN_LOW, Task


class ReferringTask(Task):
    """A task whose instruction names one of several candidates (see module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        #: Movable body -> where it was placed this episode (xyz, m).
        self.starts: dict[str, np.ndarray] = {}

    @abc.abstractmethod
    def candidate_bodies(self, index: int) -> tuple[str, ...]:
        """The movable bodies candidate `index` acts on (moving any other one is a wrong target)."""

    @abc.abstractmethod
    def candidate_success(self, physics: Physics, index: int) -> bool:
        """Whether the outcome candidate `index` asks for holds."""

    @abc.abstractmethod
    def candidate_state(self, physics: Physics, index: int) -> dict[str, Any]:
        """What the scripted expert needs to carry out candidate `index` (base frame, m)."""

    def success(self, physics: Physics) -> bool:
        return self.candidate_success(physics, self.target)

    def wrong_target(self, physics: Physics) -> bool:
        if any(self.candidate_success(physics, j) for j in range(len(self.candidates)) if j != self.target):
            return True
        named = set(self.candidate_bodies(self.target))
        return any(self.moved(physics, body, start) for body, start in self.starts.items() if body not in named)

    def privileged_state(self, physics: Physics, target: int | None = None) -> dict[str, Any]:
        return self.candidate_state(physics, self.target if target is None else target)

    # -- helpers ------------------------------------------------------------------------------------------------
    def place(self, physics: Physics, body: str, xy, z: float, yaw: float = 0.0) -> None:
        """Put a free body at rest at (xy, z) with `yaw`, and remember that start."""
        physics.set_free_body(body, (float(xy[0]), float(xy[1]), z), yaw)
        self.starts[body] = np.array([float(xy[0]), float(xy[1]), z])

    @classmethod
    def spread_positions(cls, rng: np.random.Generator, n: int, min_dist: float, low=SPAWN_LOW, high=SPAWN_HIGH,
                         restarts: int = 100) -> list[np.ndarray]:
        """`sample_positions` started over when an early draw leaves no room (crowded scenes of 3-4 objects)."""
        for _ in range(restarts):
            try:
                return cls.sample_positions(rng, n, min_dist, low=low, high=high, max_tries=200)
            except RuntimeError:
                continue
        raise RuntimeError(f"could not place {n} objects {min_dist} m apart in {low}..{high}")
