"""Built-in baseline policies for the evaluation runner: random, no-vision, expert.

- `RandomPolicy`: uniform random end-effector deltas in the given bounds, random gripper. Chance level.
- `NoVisionPolicy`: the *blind* baseline. It never looks at images or proprio; it reads the instruction,
  finds the task it names (the training instruction it matches, else the most similar one) and replays
  that task's time-indexed mean expert action trajectory from the training data. For a policy that sees
  no observation, the mean action at each time step is the best open-loop prediction under the squared
  error that behaviour cloning minimizes, so this is the "what can language + timing alone do" baseline
  (the blind-agent baseline of embodied AI; the no-vision ablation of the VLA papers). Its success rate is
  what a learned policy must beat to show it uses vision: the gap measures how much the task depends on
  where things are in the scene.
- `ExpertPolicy`: the task's scripted expert (privileged simulator state). It cannot act from an
  `Observation`, so the evaluation runner computes its actions inside each env worker.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from vla.core.types import ACTION_DIM, GRIPPER_INDEX, Observation, Policy

logger = logging.getLogger(__name__)

#: Names the CLI accepts for the built-in baselines (`policy=random`).
BASELINES = ("random", "no_vision", "expert")


class RandomPolicy(Policy):
    """Uniform random actions: each of dx..dyaw in [low, high], the gripper open or closed with p = 0.5.

    Args:
        low, high: (6,) bounds of the end-effector deltas (m, rad), e.g. the env's action-space bounds.
        seed: seed of the policy's own generator (the episodes' seeds are the env's business).
    """

    def __init__(self, low: Sequence[float], high: Sequence[float], seed: int = 0) -> None:
        self.low = np.asarray(low, np.float32).reshape(-1)[: ACTION_DIM - 1]
        self.high = np.asarray(high, np.float32).reshape(-1)[: ACTION_DIM - 1]
        if self.low.shape != (ACTION_DIM - 1,) or self.high.shape != (ACTION_DIM - 1,) or np.any(self.high < self.low):
            raise ValueError(f"RandomPolicy needs (6,) bounds with low <= high, got low={self.low}, high={self.high}")
        self._rng = np.random.default_rng(seed)

    def act(self, observation: Observation) -> np.ndarray:
        a = np.empty(ACTION_DIM, np.float32)
        a[:GRIPPER_INDEX] = self._rng.uniform(self.low, self.high)
        a[GRIPPER_INDEX] = float(self._rng.integers(0, 2))
        return a


@dataclass
class MeanTrajectory:
    """A task's mean expert action per time step.

    actions: (T, 7) float32; dims 0-5 are the mean over the demos still running at step t, the gripper is
    the majority vote (a half-open gripper is not an action any demo takes). T is the median demo length.
    """

    task: str
    actions: np.ndarray
    instructions: tuple[str, ...]
    num_episodes: int


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class NoVisionPolicy(Policy):
    """Blind baseline: replays the instructed task's mean expert action trajectory (see the module docstring).

    One instance keeps one episode's time step, so the runner makes one instance per parallel env
    (pass `NoVisionPolicy.from_dataset` wrapped in a factory, as `make_baseline` does).
    """

    cameras: tuple[str, ...] = ()

    def __init__(self, trajectories: dict[str, MeanTrajectory]) -> None:
        if not trajectories:
            raise ValueError("NoVisionPolicy needs at least one task trajectory")
        self.trajectories = dict(trajectories)
        self._by_instruction = {ins: t for t, tr in self.trajectories.items() for ins in tr.instructions}
        self._current: MeanTrajectory | None = None
        self._t = 0

    @classmethod
    def from_dataset(cls, dataset_dirs: str | Path | Iterable[str | Path], *, successful_only: bool = True,
                     split: str = "train") -> "NoVisionPolicy":
        """Mean trajectories per task (`episode_metadata/task`) of RLDS datasets written by `vla-collect`."""
        from vla.data.rlds_reader import RLDSReader

        dirs = [dataset_dirs] if isinstance(dataset_dirs, (str, Path)) else list(dataset_dirs)
        actions: dict[str, list[np.ndarray]] = {}
        instructions: dict[str, set[str]] = {}
        keys = {"steps/action", "steps/language_instruction", "episode_metadata/task", "episode_metadata/success"}
        for d in dirs:
            for ep in RLDSReader(d).episodes(split, keys=keys):
                md = ep["episode_metadata"]
                if successful_only and not bool(md["success"]):
                    continue
                task = _str(md["task"]) or "default"
                actions.setdefault(task, []).append(np.asarray(ep["steps"]["action"], np.float32))
                instructions.setdefault(task, set()).update(_str(s) for s in ep["steps"]["language_instruction"][:1])
        if not actions:
            raise ValueError(
                f"no {'successful ' if successful_only else ''}episodes in {[str(d) for d in dirs]} to build the "
                "no-vision baseline from; collect some with `vla-collect` first"
            )
        trajs = {t: _mean_trajectory(t, a, instructions[t]) for t, a in actions.items()}
        for t, tr in trajs.items():
            logger.info("no-vision baseline: task %s, %d demos, mean trajectory of %d steps", t, tr.num_episodes, len(tr.actions))
        return cls(trajs)

    def task_for(self, instruction: str) -> MeanTrajectory:
        """The training task whose instruction matches (exactly, else by word overlap, Jaccard)."""
        if instruction in self._by_instruction:
            return self.trajectories[self._by_instruction[instruction]]
        words = _tokens(instruction)
        best = max(
            self._by_instruction.items(),
            key=lambda kv: len(words & _tokens(kv[0])) / max(1, len(words | _tokens(kv[0]))),
        )
        return self.trajectories[best[1]]

    def reset(self, instruction: str) -> None:
        self._current = self.task_for(instruction)
        self._t = 0

    def act(self, observation: Observation) -> np.ndarray:
        if self._current is None:
            self.reset(observation.instruction)
        traj = self._current.actions
        if self._t < len(traj):
            a = traj[self._t].copy()
        else:  # past the mean demo length: stay still, keep the gripper as the demos left it
            a = np.zeros(ACTION_DIM, np.float32)
            a[GRIPPER_INDEX] = traj[-1, GRIPPER_INDEX]
        self._t += 1
        return a


def _str(v) -> str:
    return v.decode() if isinstance(v, (bytes, np.bytes_)) else str(v)


def _mean_trajectory(task: str, episodes: list[np.ndarray], instructions: set[str]) -> MeanTrajectory:
    lengths = np.array([len(a) for a in episodes])
    horizon = max(1, int(np.median(lengths)))
    out = np.zeros((horizon, ACTION_DIM), np.float32)
    for t in range(horizon):
        running = np.stack([a[t] for a in episodes if len(a) > t])
        out[t] = running.mean(0)
        out[t, GRIPPER_INDEX] = float(running[:, GRIPPER_INDEX].mean() >= 0.5)
    return MeanTrajectory(task, out, tuple(sorted(instructions)), len(episodes))


class ExpertPolicy(Policy):
    """The task's scripted expert, evaluated like any policy by `sim_envs.evaluation`.

    The expert reads privileged simulator state that an `Observation` does not carry, so it cannot be
    called on its own: the runner creates it inside each env worker (`sim_envs.experts.make_expert`) and
    executes the actions it computes there. Its success rate is the upper reference of a task / DR level.
    """

    privileged_expert = True

    def act(self, observation: Observation) -> np.ndarray:
        raise RuntimeError(
            "ExpertPolicy needs the simulator state; evaluate it with sim_envs.evaluation (policy=expert), "
            "or call sim_envs.experts.make_expert(env) on an env you hold"
        )


def env_action_bounds(task: str) -> tuple[np.ndarray, np.ndarray]:
    """The (6,) end-effector delta bounds of a task's action space (built at a tiny image size)."""
    import gymnasium

    import sim_envs  # noqa: F401  (registers the tasks)

    env = gymnasium.make(task, image_size=16)
    try:
        space = env.action_space
        return np.asarray(space.low, np.float32)[:GRIPPER_INDEX], np.asarray(space.high, np.float32)[:GRIPPER_INDEX]
    finally:
        env.close()


def make_policy(spec: str, *, tasks: Sequence[str], dataset=None, unnorm_key: str | None = None,
                device: str = "cpu", seed: int = 0):
    """A built-in baseline by name, or a VLA checkpoint directory, as the runner takes it.

    Returns (name, policy) where policy is a `Policy` instance (shared by parallel envs) or a zero-argument
    factory (one instance per parallel env, for policies with per-episode state).
    Raises ValueError naming the valid choices when `spec` is neither.
    """
    name = str(spec)
    if name == "random":
        low, high = env_action_bounds(tasks[0])
        counter = iter(range(1_000_000))
        return "random", lambda: RandomPolicy(low, high, seed=seed + next(counter))
    if name == "no_vision":
        if not dataset:
            raise ValueError(
                "the no_vision baseline replays the mean expert trajectory of the training data: pass the RLDS "
                "dataset(s) with policy_options.dataset=<dir> (what vla-collect wrote, e.g. "
                "outputs/data/sim_liftcube_none/1.0.0)"
            )
        template = NoVisionPolicy.from_dataset(dataset)
        return "no_vision", lambda: NoVisionPolicy(template.trajectories)
    if name == "expert":
        return "expert", ExpertPolicy()
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"policy {name!r} is neither a built-in baseline {list(BASELINES)} nor an existing checkpoint directory"
        )
    from vla.model.policy import VLAPolicy  # imported here: torch + transformers are only needed for checkpoints

    kwargs: dict = {"device": device}
    if unnorm_key:
        kwargs["unnorm_key"] = unnorm_key
    return name, VLAPolicy.from_pretrained(str(path), **kwargs)
