"""Baselines that need nothing but the contract: random actions and standing still."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vla.core.types import ACTION_DIM, GRIPPER_INDEX, Observation, Policy


class RandomPolicy(Policy):
    """Uniform random end-effector deltas in [low, high] (6,), the gripper open or closed with p = 0.5.

    The chance level of a task. Reseeded at every `reset`, so an episode's actions depend only on the seed
    (runners with parallel envs build one instance per env, with its own seed).
    """

    cameras: tuple[str, ...] = ()

    def __init__(self, low: Sequence[float], high: Sequence[float], seed: int = 0) -> None:
        self.low = np.asarray(low, np.float32).reshape(-1)[:GRIPPER_INDEX]
        self.high = np.asarray(high, np.float32).reshape(-1)[:GRIPPER_INDEX]
        if self.low.shape != (GRIPPER_INDEX,) or self.high.shape != (GRIPPER_INDEX,) or np.any(self.high < self.low):
            raise ValueError(f"RandomPolicy needs (6,) bounds with low <= high, got low={self.low}, high={self.high}")
        self._seed = int(seed)
        self._rng = np.random.default_rng(self._seed)

    @classmethod
    def symmetric(cls, scale: float, rot_scale: float = 0.0, seed: int = 0) -> "RandomPolicy":
        """Translation in [-scale, scale] m, rotation in [-rot_scale, rot_scale] rad."""
        high = np.array([scale] * 3 + [rot_scale] * 3, np.float32)
        return cls(-high, high, seed=seed)

    def reset(self, instruction: str) -> None:
        self._rng = np.random.default_rng(self._seed)

    def act(self, observation: Observation) -> np.ndarray:
        a = np.empty(ACTION_DIM, np.float32)
        a[:GRIPPER_INDEX] = self._rng.uniform(self.low, self.high)
        a[GRIPPER_INDEX] = float(self._rng.integers(0, 2))
        return a


class NoOpPolicy(Policy):
    """Zero motion, gripper open: the floor of any task that needs the arm to move."""

    cameras: tuple[str, ...] = ()

    def act(self, observation: Observation) -> np.ndarray:
        a = np.zeros(ACTION_DIM, np.float32)
        a[GRIPPER_INDEX] = 1.0
        return a
