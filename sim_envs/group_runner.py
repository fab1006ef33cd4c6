"""`GroupRunner`: one policy's episodes of one task x DR level, run on one gymnasium vector env.

Each sub-env is a slot that holds one running episode; when it ends, the slot is refilled with the next
planned episode (its own seed, so results do not depend on the number of envs). Autoreset is disabled: the
runner resets sub-envs itself (`options["reset_mask"]`), and a sub-env with nothing left to run gets an
idle reset and a no-op action. Chunks run through one `vla.policy.ActionQueue` per slot; a policy that
raises or returns an invalid action fails its episode, never the run (`sim_envs.evaluation` explains the
results).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from vla.core.gym import observation_from_gym
from vla.core.types import ACTION_DIM, GRIPPER_INDEX, ContractError, Observation, Policy
from vla.policy import ActionQueue

from sim_envs.baselines import expert_of
from sim_envs.eval_envs import EvalSettings
from sim_envs.results import EpisodeResult, aggregate, format_rate, safe_name

if TYPE_CHECKING:
    from sim_envs.evaluation import EpisodeSpec

logger = logging.getLogger(__name__)


@dataclass
class _Slot:
    """The episode running in one sub-env."""

    index: int  # position in the caller's spec list
    spec: EpisodeSpec
    instruction: str
    dr_params: dict[str, Any]
    initial_hash: str
    policy: Policy
    actions: ActionQueue
    start: float
    steps: int = 0
    sum_reward: float = 0.0
    max_reward: float = float("-inf")
    success: bool = False
    wrong_target: bool = False
    error: str | None = None
    video: Any = None
    last_obs: dict[str, np.ndarray] = field(default_factory=dict)
    last_info: dict[str, Any] = field(default_factory=dict)


class GroupRunner:
    """Runs `items` (index, EpisodeSpec) of one task x level to their ends, writing `results[index]`.

    Args:
        venv: the vector env (autoreset disabled, see `sim_envs.eval_envs.make_vector_env`).
        policies: one per sub-env (the same instance everywhere when `shared`).
        items: the episodes to run, in order.
        settings: chunk execution and videos.
        name: the policy name written into the results.
        expert: the policies are scripted experts: their actions come from the env workers' infos.
        shared: one instance serves every sub-env (its observations go through `act_batch` together).
        results: filled at each episode's index as episodes finish.
        bar: a tqdm bar to advance per finished episode, or None.
    """

    def __init__(self, venv, policies: Sequence[Policy], items: Sequence[tuple[int, EpisodeSpec]], settings: EvalSettings, *,
                 name: str, expert: bool, shared: bool, results: list[EpisodeResult | None], bar: Any = None) -> None:
        self.venv, self.n = venv, venv.num_envs
        self.policies, self.settings, self.name = list(policies), settings, name
        self.expert, self.shared, self.results, self.bar = expert, shared, results, bar
        self.todo = deque(items)
        self.slots: list[_Slot | None] = [None] * self.n
        self.videos_left = settings.videos_per_cell
        # Sub-envs whose episode ended (terminated / truncated) must be reset before the next vector step.
        self.ended: set[int] = set()
        self.first_reset = True

    def run(self) -> None:
        self.refill()
        while any(s is not None for s in self.slots):
            self.step()
            self.refill()

    # --------------------------------------------------------------------------------------- episodes
    def refill(self) -> None:
        """Start the next planned episodes in free sub-envs; idle-reset ended ones with nothing left to run."""
        free = [i for i, s in enumerate(self.slots) if s is None]
        picks = free[: len(self.todo)]
        running = bool(picks) or any(s is not None for s in self.slots)
        idle = [i for i in free[len(picks):] if i in self.ended] if running else []
        if picks or idle:
            self.start(picks, idle)

    def start(self, sub_envs: list[int], idle: Sequence[int] = ()) -> None:
        """Reset `sub_envs` to the next planned episodes (and `idle` ones to anything), one vector reset."""
        picks = {i: self.todo.popleft() for i in sub_envs}
        seeds = [picks[i][1].seed if i in picks else None for i in range(self.n)]
        options: dict[str, Any] = {"dr_params_by_seed": {spec.seed: spec.dr_params for _, spec in picks.values()}}
        for _, spec in list(picks.values())[:1]:  # the caller groups episodes that share these
            options.update(spec.reset_options())
        if not self.first_reset:
            options["reset_mask"] = np.array([i in picks or i in idle for i in range(self.n)])
        self.first_reset = False
        obs, info = self.venv.reset(seed=seeds, options=options)
        self.ended.difference_update(picks, idle)
        for i, (index, spec) in picks.items():
            o, inf = _obs_at(obs, i), _info_at(info, i)
            instruction = str(inf.get("instruction", ""))
            slot = _Slot(index=index, spec=spec, instruction=instruction,
                         dr_params=json.loads(inf.get("dr_params_json", "{}")), initial_hash=_initial_hash(o),
                         policy=self.policies[i], actions=ActionQueue(self.settings.execute_steps),
                         start=time.perf_counter(), last_obs=o, last_info=inf)
            if self.videos_left > 0:
                from sim_envs.video import EpisodeVideo

                self.videos_left -= 1
                slot.video = EpisodeVideo(instruction, f"{spec.task.split('/')[-1]} dr={spec.dr_level} seed {spec.seed}",
                                          self.settings.sim.cameras)
                slot.video.add(o, "step 0")
            try:
                slot.policy.reset(instruction)
            except Exception as e:  # noqa: BLE001
                slot.error = f"policy.reset raised {type(e).__name__}: {e}"
            self.slots[i] = slot

    def finish(self, i: int) -> None:
        """Record sub-env `i`'s episode (and its video) and free the slot."""
        s, name = self.slots[i], self.name
        video_path = None
        if s.video is not None:
            fname = f"{safe_name(name)}_{s.spec.task.split('/')[-1]}_{s.spec.dr_level}_seed{s.spec.seed}.mp4"
            try:
                video_path = str(s.video.save(Path(self.settings.video_dir) / fname, fps=self.settings.video_fps))
            except Exception as e:  # noqa: BLE001  (a video problem must not lose the result)
                logger.warning("could not write video %s: %s", fname, e)
        self.results[s.index] = EpisodeResult(
            policy=name, task=s.spec.task, dr_level=s.spec.dr_level, seed=s.spec.seed,
            success=bool(s.success and s.error is None), steps=s.steps, sum_reward=float(s.sum_reward),
            max_reward=float(s.max_reward if s.steps else 0.0), instruction=s.instruction, dr_params=s.dr_params,
            error=s.error, video_path=video_path, initial_state_hash=s.initial_hash,
            wall_s=time.perf_counter() - s.start, target=int(s.last_info.get("target", 0)),
            num_targets=int(s.last_info.get("num_targets", 1)), templates=s.spec.templates,
            wrong_target=s.wrong_target, named=_named(s.last_info),
        )
        if s.error:
            logger.warning("%s %s dr=%s seed %d failed: %s", name, s.spec.task, s.spec.dr_level, s.spec.seed, s.error)
        self.slots[i] = None
        if self.bar is not None:
            self.bar.update(1)
            done = [r for r in self.results if r is not None and r.policy == name]
            self.bar.set_postfix_str(f"{name}: {format_rate(aggregate(done))}")

    # --------------------------------------------------------------------------------------- stepping
    def step(self) -> None:
        """Plan the running episodes' actions, end the failed ones, step the vector env once."""
        active = self._active()
        self.plan(active)
        for i in [i for i in active if self.slots[i].error]:
            self.finish(i)
        active = self._active()
        if not active:
            return
        actions = np.zeros((self.n, ACTION_DIM), np.float32)
        actions[:, GRIPPER_INDEX] = 1.0  # idle sub-envs (no episode left for them) get a no-op
        for i in active:
            actions[i] = self.slots[i].actions.pop()
        obs, reward, terminated, truncated, info = self.venv.step(actions)
        self.ended.update(np.flatnonzero(np.logical_or(terminated, truncated)).tolist())
        for i in active:
            s = self.slots[i]
            o, inf = _obs_at(obs, i), _info_at(info, i)
            s.steps += 1
            r = float(reward[i])
            s.sum_reward += r
            s.max_reward = max(s.max_reward, r)
            s.success = s.success or bool(inf.get("success", False))
            s.wrong_target = s.wrong_target or bool(inf.get("wrong_target", False))
            s.last_obs, s.last_info = o, inf
            if s.video is not None:
                s.video.add(o, f"step {s.steps}" + ("  SUCCESS" if s.success else ""))
            if terminated[i] or truncated[i]:
                self.finish(i)

    def plan(self, active: list[int]) -> None:
        """Fill the action queue of each active slot that has run out (asking the policy only there)."""
        need = [i for i in active if self.slots[i].actions.empty and not self.slots[i].error]
        obs: dict[int, Observation] = {}
        for i in need:
            s = self.slots[i]
            if self.expert and (err := str(s.last_info.get("expert_error", ""))):
                s.error = f"expert raised {err}"
                continue
            try:
                obs[i] = observation_from_gym(s.last_obs, s.last_info, instruction=s.instruction)
            except Exception as e:  # noqa: BLE001
                s.error = f"building the observation raised {type(e).__name__}: {e}"
        ready = [i for i in need if i in obs]
        outputs = {} if self.expert else self._act_batch(ready, obs)
        for i in ready:
            s = self.slots[i]
            if i not in outputs:
                try:
                    if self.expert:
                        expert_of(s.policy).feed(np.asarray(s.last_info["expert_action"], np.float32))
                    outputs[i] = s.policy.act(obs[i])
                except Exception as e:  # noqa: BLE001
                    s.error = f"policy raised {type(e).__name__}: {e}"
                    continue
            try:
                s.actions.push(outputs[i], name="policy action")
            except ContractError as e:
                s.error = f"invalid action: {e}"

    def _act_batch(self, ready: list[int], obs: Mapping[int, Observation]) -> dict[int, Any]:
        """A shared policy's outputs for all `ready` slots in one call ({} when not shared, or when it fails)."""
        if not self.shared or len(ready) < 2:
            return {}
        try:
            batch = self.slots[ready[0]].policy.act_batch([obs[i] for i in ready])
            if len(batch) != len(ready):
                raise ContractError(f"act_batch returned {len(batch)} actions for {len(ready)} observations")
            return dict(zip(ready, batch))
        except Exception as e:  # noqa: BLE001
            logger.warning("act_batch raised %s: %s; asking the policy one observation at a time to find the "
                           "failing episode", type(e).__name__, e)
            return {}

    def _active(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s is not None]


def _obs_at(obs: Mapping[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {k: np.asarray(v[i]) for k, v in obs.items()}


def _info_at(info: Mapping[str, Any], i: int) -> dict[str, Any]:
    """One sub-env's entries of a vector-env info dict (keys whose `_key` mask is set for it)."""
    out = {}
    for k, v in info.items():
        if k.startswith("_") or isinstance(v, dict):
            continue
        mask = info.get(f"_{k}")
        if mask is not None and not mask[i]:
            continue
        out[k] = v[i]
    return out


def _named(info: Mapping[str, Any]) -> str:
    """The candidate the instruction named, as `key=value` pairs ('' for single-referent tasks)."""
    try:
        candidates = json.loads(str(info.get("candidates_json", "[]")))
        named = candidates[int(info.get("target", 0))] if candidates else {}
    except (ValueError, IndexError, TypeError):
        return ""
    return ",".join(f"{k}={v}" for k, v in sorted(named.items()))


def _initial_hash(obs: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha1()
    for k in sorted(obs):
        h.update(k.encode())
        h.update(np.ascontiguousarray(obs[k]).tobytes())
    return h.hexdigest()[:16]
