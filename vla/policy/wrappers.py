"""Policies that change another policy's input or output: degraded variants for ablations and rankings.

`noise=` and `blank_images=1` of the spec grammar (`vla.policy.registry`) build these around any kind.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vla.core.types import Observation, Policy, validate_action


class PolicyWrapper(Policy):
    """Forwards everything to `base`; subclasses change `act` / `act_batch`."""

    def __init__(self, base: Policy) -> None:
        self.base = base
        self.chunk_size, self.cameras = base.chunk_size, base.cameras

    @property
    def statistics(self):
        return self.base.statistics

    def reset(self, instruction: str) -> None:
        self.base.reset(instruction)

    def act(self, observation: Observation) -> np.ndarray:
        return self.act_batch([observation])[0]

    def act_batch(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        return self.base.act_batch(list(observations))

    def close(self) -> None:
        self.base.close()


class NoisyPolicy(PolicyWrapper):
    """Adds Gaussian noise (std `noise`, metres) to dx, dy, dz of every action; reseeded at each reset."""

    def __init__(self, base: Policy, noise: float, seed: int = 0) -> None:
        super().__init__(base)
        self.noise, self._seed = float(noise), int(seed)
        self._rng = np.random.default_rng(self._seed)

    def reset(self, instruction: str) -> None:
        self._rng = np.random.default_rng(self._seed)
        self.base.reset(instruction)

    def act_batch(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        out = []
        for a in self.base.act_batch(list(observations)):
            a = validate_action(a).copy()
            a[..., :3] += self._rng.normal(0, self.noise, a[..., :3].shape)
            out.append(a)
        return out


class BlankImagesPolicy(PolicyWrapper):
    """Shows the wrapped policy black images of the same size: the no-vision ablation of a visual policy.

    Not to be confused with `sim_envs`' `MeanTrajectoryPolicy` (`no_vision`), which needs no visual policy:
    it replays the instructed task's mean demonstration.
    """

    def act_batch(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        blank = [Observation({k: np.zeros_like(v) for k, v in o.images.items()}, o.proprio, o.instruction, o.timestamp)
                 for o in observations]
        return self.base.act_batch(blank)


class FixedInstructionPolicy(PolicyWrapper):
    """Shows the wrapped policy one fixed instruction, whatever the episode asks: the blind-language baseline.

    Its success on instruction-swap episodes (judged against the instruction the env named) is the chance
    level a language-following policy must beat: a policy that ignores language does the same thing for
    every instruction.
    """

    def __init__(self, base: Policy, instruction: str) -> None:
        super().__init__(base)
        self.instruction = str(instruction)

    def reset(self, instruction: str) -> None:
        self.base.reset(self.instruction)

    def act_batch(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        fixed = [Observation(o.images, o.proprio, self.instruction, o.timestamp) for o in observations]
        return self.base.act_batch(fixed)
