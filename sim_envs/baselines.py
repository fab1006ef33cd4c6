"""The simulator's own policy kinds, registered in `vla`'s registry: `expert` and `no_vision`.

    vla-eval policy=[outputs/train/final,no_vision,random,expert] policy_options.dataset=<RLDS dir>

- `MeanTrajectoryPolicy` (`no_vision`): the *blind* baseline. It never looks at images or proprio; it reads
  the instruction, finds the task it names (the training instruction it matches, else the most similar one)
  and replays that task's time-indexed mean expert action trajectory from the training data. For a policy
  that sees no observation, the mean action at each time step is the best open-loop prediction under the
  squared error that behaviour cloning minimizes, so this is the "what can language + timing alone do"
  baseline (the blind-agent baseline of embodied AI). Its success rate is what a learned policy must beat to
  show it uses vision. (`blank_images=1` on any kind is the other no-vision ablation: a visual policy shown
  black images.)
- `ExpertPolicy` (`expert`): the task's scripted expert (privileged simulator state). It cannot act from an
  `Observation`, so the evaluation runner computes its actions inside each env worker and feeds them in.
- `random` is `vla`'s; `policy_context` gives it the task's action bounds.

Importing `sim_envs` imports this module, so the kinds exist wherever the tasks do.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from vla.core.types import ACTION_DIM, GRIPPER_INDEX, Observation, Policy
from vla.policy.registry import PolicyContext, PolicyOptions, PolicySpecError, register_policy

logger = logging.getLogger(__name__)


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


class MeanTrajectoryPolicy(Policy):
    """Blind baseline: replays the instructed task's mean expert action trajectory (see the module docstring).

    One instance keeps one episode's time step, so the runner makes one instance per parallel env (the
    `no_vision` kind returns a factory).
    """

    cameras: tuple[str, ...] = ()

    def __init__(self, trajectories: dict[str, MeanTrajectory]) -> None:
        if not trajectories:
            raise ValueError("MeanTrajectoryPolicy needs at least one task trajectory")
        self.trajectories = dict(trajectories)
        self._by_instruction = {ins: t for t, tr in self.trajectories.items() for ins in tr.instructions}
        self._current: MeanTrajectory | None = None
        self._t = 0

    @classmethod
    def from_dataset(cls, dataset_dirs: str | Path | Iterable[str | Path], *, successful_only: bool = True,
                     split: str = "train") -> "MeanTrajectoryPolicy":
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

    The expert reads privileged simulator state that an `Observation` does not carry, so the runner computes
    its action inside each env worker (`sim_envs.eval_envs.EvalEpisodeWrapper`) and `feed`s it here just
    before asking `act`: wrappers of the registry (`expert:noise=0.01`) then apply to it like to any policy.
    Its success rate is the upper reference of a task / DR level.
    """

    def __init__(self) -> None:
        self._next: np.ndarray | None = None

    def feed(self, action: np.ndarray) -> None:
        """The action the expert computed for the observation `act` is asked about next."""
        self._next = action

    def act(self, observation: Observation) -> np.ndarray:
        if self._next is None:
            raise RuntimeError(
                "ExpertPolicy needs the simulator state; evaluate it with sim_envs.evaluation (policy=expert), "
                "or call sim_envs.experts.make_expert(env) on an env you hold"
            )
        action, self._next = self._next, None
        return action


def expert_of(policy: Policy) -> ExpertPolicy | None:
    """The `ExpertPolicy` inside `policy` (itself, or under wrappers' `.base`), else None."""
    while policy is not None:
        if isinstance(policy, ExpertPolicy):
            return policy
        policy = getattr(policy, "base", None)
    return None


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


def policy_context(tasks: Sequence[str], *, datasets: Sequence[str | Path] | str | Path | None = None,
                   seed: int = 0, device: str = "cpu", unnorm_key: str | None = None) -> PolicyContext:
    """What a sim command tells the registry: its tasks, the `random` kind's action bounds (the first task's,
    read only when `random` is built), the datasets `no_vision` averages."""
    if datasets is None:
        datasets = ()
    elif isinstance(datasets, (str, Path)):
        datasets = (datasets,)
    tasks = tuple(tasks)
    bounds = (lambda: env_action_bounds(tasks[0])) if tasks else None
    return PolicyContext(device=device, seed=seed, tasks=tasks, datasets=tuple(str(d) for d in datasets),
                         unnorm_key=unnorm_key, action_bounds=bounds)


@register_policy("expert", summary="the task's scripted expert (privileged simulator state; sim_envs.evaluation only)")
def _expert(opts: PolicyOptions, ctx: PolicyContext) -> Callable[[], Policy]:
    return ExpertPolicy  # one per parallel env: each is fed its own env's action


@register_policy("no_vision", options=("dataset",),
                 summary="replays the instructed task's mean demonstration (dataset=<RLDS dir> or the command's "
                         "datasets): what language and timing alone achieve")
def _no_vision(opts: PolicyOptions, ctx: PolicyContext) -> Callable[[], Policy]:
    datasets = opts.raw("dataset") or ctx.datasets
    if isinstance(datasets, (str, Path)):
        datasets = [datasets]
    if not datasets:
        raise PolicySpecError(
            "the no_vision baseline replays the mean expert trajectory of the training data: pass the RLDS "
            "dataset(s) with policy_options.dataset=<dir> (vla-eval) or no_vision:dataset=<dir> (what "
            "vla-collect wrote, e.g. outputs/data/sim_liftcube_none/1.0.0)"
        )
    template = MeanTrajectoryPolicy.from_dataset(list(datasets))
    return lambda: MeanTrajectoryPolicy(template.trajectories)
