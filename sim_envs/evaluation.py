"""The evaluation runner: any `vla.Policy` over tasks x DR levels x seeds, in gymnasium vector envs.

Typical use (what `vla-eval` does; envs and settings: `sim_envs.eval_envs`, outputs: `sim_envs.results`):

    specs = plan_episodes(["LiftCube"], ["none", "low"], seeds=20)       # held-out seeds by default
    results = evaluate_policies({"vla": policy, "random": random_factory}, specs, EvalSettings(num_envs=2))
    write_outputs(results, "outputs/eval/run1")                           # jsonl, eval_info.json, plot

Every policy of one `evaluate_policies` call starts its episodes from identical initial states: the first
policy samples them (seed -> task layout and DR parameters), and the others replay them exactly with
`env.reset(seed=seed, options={"dr_params": params})`. Each result records a hash of its initial
observation so this can be checked.

Failures do not stop a run: a policy that raises, or returns NaN/inf or a wrong shape, fails that episode
(`EpisodeResult.error` says why) and the run goes on.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np

from vla.core.types import ACTION_DIM, GRIPPER_INDEX, ContractError, Observation, Policy, validate_action

from sim_envs.eval_envs import EvalSettings, make_vector_env
from sim_envs.results import EpisodeResult, aggregate, format_rate, safe_name, write_outputs

logger = logging.getLogger(__name__)

#: Collection (`vla-collect`) uses seeds from 0 up; evaluation defaults to seeds from here, so a default
#: evaluation never replays a training episode.
COLLECT_SEED_START = 0
EVAL_SEED_START = 1_000_000
DR_LEVELS = ("none", "low", "medium", "high")

PolicyLike = Union[Policy, Callable[[], Policy]]


# ----------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class EpisodeSpec:
    """One initial state: task id, DR level, seed, and (for a replay) the DR parameters to reuse."""

    task: str
    dr_level: str
    seed: int
    dr_params: dict[str, Any] | None = field(default=None, compare=False, hash=False)


def available_tasks() -> list[str]:
    import sim_envs

    return list(sim_envs.TASKS)


def available_levels() -> list[str]:
    """The shipped DR levels, mildest first (none, low, medium, high, then any others by name)."""
    from sim_envs.domain_randomization import available_levels as levels

    order = {lv: i for i, lv in enumerate(DR_LEVELS)}
    return sorted(levels(), key=lambda lv: (order.get(lv, len(order)), lv))


def resolve_task(name: str, tasks: Sequence[str] | None = None) -> str:
    """'LiftCube', 'LiftCube-v0' or 'vla_sim/LiftCube-v0' -> the registered gymnasium id.

    Raises ValueError listing the valid tasks (and the closest one) for an unknown name.
    """
    tasks = list(tasks) if tasks is not None else available_tasks()
    key = str(name).strip().lower()
    for t in tasks:
        short = t.split("/")[-1]
        if key in (t.lower(), short.lower(), short.rsplit("-v", 1)[0].lower()):
            return t
    shorts = [t.split("/")[-1].rsplit("-v", 1)[0] for t in tasks]
    close = difflib.get_close_matches(str(name), shorts, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown task {name!r}. Valid tasks: {shorts} (or their ids {tasks}).{hint}")


def resolve_level(level: str, levels: Sequence[str] | None = None) -> str:
    levels = list(levels) if levels is not None else available_levels()
    if str(level) in levels:
        return str(level)
    raise ValueError(f"unknown domain-randomization level {level!r}. Valid levels: {levels}")


def resolve_seeds(seeds: int | str | Sequence[int], start: int = EVAL_SEED_START) -> list[int]:
    """N -> N held-out seeds from `start`; "a:b" -> range(a, b); a list -> itself (no duplicates allowed)."""
    if isinstance(seeds, bool):
        raise ValueError(f"seeds must be a count, 'start:stop' or a list of ints, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds (the number of episodes per task and level) must be >= 1, got {seeds}")
        return list(range(start, start + seeds))
    if isinstance(seeds, str):
        if ":" in seeds:
            a, b = (int(x) for x in seeds.split(":"))
            out = list(range(a, b))
        else:
            return resolve_seeds(int(seeds), start)
    else:
        out = [int(s) for s in seeds]
    if not out or any(s < 0 for s in out) or len(set(out)) != len(out):
        raise ValueError(f"seeds must be a non-empty list of distinct non-negative ints, got {seeds!r}")
    return out


def plan_episodes(tasks: Sequence[str] | str, dr_levels: Sequence[str] | str, seeds: int | str | Sequence[int]) -> list[EpisodeSpec]:
    """All task x level x seed combinations, validated (unknown names raise with the valid ones)."""
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    dr_levels = [dr_levels] if isinstance(dr_levels, str) else list(dr_levels)
    if not tasks or not dr_levels:
        raise ValueError(f"need at least one task and one DR level, got tasks={tasks}, dr={dr_levels}")
    task_ids = [resolve_task(t) for t in tasks]
    levels = [resolve_level(lv) for lv in dr_levels]
    seed_list = resolve_seeds(seeds)
    overlap = [s for s in seed_list if COLLECT_SEED_START <= s < EVAL_SEED_START]
    if overlap:
        logger.warning(
            "%d of the evaluation seeds (e.g. %s) lie in the range vla-collect uses by default [%d, %d): "
            "those episodes may be training episodes, not held out",
            len(overlap), overlap[:3], COLLECT_SEED_START, EVAL_SEED_START,
        )
    return [EpisodeSpec(t, lv, s) for t in task_ids for lv in levels for s in seed_list]


# ----------------------------------------------------------------------------------------- runner
@dataclass
class _Slot:
    """The episode running in one sub-env."""

    index: int  # position in the spec list
    spec: EpisodeSpec
    instruction: str
    dr_params: dict[str, Any]
    initial_hash: str
    policy: Policy
    start: float
    pending: deque = field(default_factory=deque)
    steps: int = 0
    sum_reward: float = 0.0
    max_reward: float = float("-inf")
    success: bool = False
    error: str | None = None
    video: Any = None
    last_obs: dict[str, np.ndarray] = field(default_factory=dict)
    last_info: dict[str, Any] = field(default_factory=dict)


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


def _initial_hash(obs: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha1()
    for k in sorted(obs):
        h.update(k.encode())
        h.update(np.ascontiguousarray(obs[k]).tobytes())
    return h.hexdigest()[:16]


def _to_observation(obs: dict[str, np.ndarray], info: dict[str, Any], instruction: str) -> Observation:
    import sim_envs

    info = dict(info)
    info.setdefault("instruction", instruction)
    return sim_envs.to_observation(obs, info)


def run_policy(
    policy: PolicyLike,
    specs: Sequence[EpisodeSpec],
    settings: EvalSettings,
    *,
    name: str = "policy",
    progress_bar: Any = None,
    env_cache: dict | None = None,
) -> list[EpisodeResult]:
    """Run one policy on every spec; results come back in spec order.

    Args:
        policy: a `Policy` instance, shared by the parallel envs (it must not keep per-episode state across
            `act_batch` calls when num_envs > 1; OpenVLA-style policies do not), or a zero-argument factory
            returning a fresh `Policy`, called once per parallel env (for stateful policies), or an
            `ExpertPolicy` (then the scripted expert runs inside each env worker).
        specs: the initial states (see `plan_episodes`); specs with `dr_params` are replayed exactly.
        settings: how to run (vector envs, chunk execution, videos).
        name: the policy name written into the results.
        progress_bar: a tqdm bar to advance by one per finished episode (None: no bar).
        env_cache: vector envs kept open for reuse by later calls (the caller closes them); None: the
            envs are made for this call and closed at its end.
    """
    from sim_envs.baselines import ExpertPolicy

    results: list[EpisodeResult | None] = [None] * len(specs)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault((s.task, s.dr_level), []).append(i)
    is_expert = isinstance(policy, ExpertPolicy) or getattr(policy, "privileged_expert", False)
    for (task, level), indices in groups.items():
        n = min(settings.num_envs, len(indices))
        if isinstance(policy, Policy):
            slot_policies = [policy] * n
        else:
            slot_policies = [policy() for _ in range(n)]
        key = (task, level, n, is_expert)
        venv = env_cache.get(key) if env_cache is not None else None
        if venv is None:
            venv = make_vector_env(task, level, n, settings, with_expert=is_expert)
            if env_cache is not None:
                env_cache[key] = venv
        try:
            _run_group(venv, slot_policies, [(i, specs[i]) for i in indices], settings, name, is_expert,
                       results, progress_bar, shared=isinstance(policy, Policy))
        finally:
            if env_cache is None:
                venv.close()
    return [r for r in results if r is not None]


def _run_group(venv, policies, queue_items, settings, name, is_expert, results, bar, shared) -> None:
    n = venv.num_envs
    queue = deque(queue_items)
    slots: list[_Slot | None] = [None] * n
    video_budget = {"left": settings.videos_per_cell}

    # Sub-envs whose episode ended (terminated / truncated) must be reset before the next vector step
    # (autoreset is disabled); those with no planned episode left get an idle reset and a no-op action.
    ended: set[int] = set()
    first_reset = [True]

    def start(mask_indices: list[int], idle: list[int] = ()) -> None:
        picks = {i: queue.popleft() for i in mask_indices}
        seeds = [picks[i][1].seed if i in picks else None for i in range(n)]
        options: dict[str, Any] = {"dr_params_by_seed": {p[1].seed: p[1].dr_params for p in picks.values()}}
        if not first_reset[0]:
            options["reset_mask"] = np.array([i in picks or i in idle for i in range(n)])
        first_reset[0] = False
        obs, info = venv.reset(seed=seeds, options=options)
        ended.difference_update(picks, idle)
        for i, (index, spec) in picks.items():
            o, inf = _obs_at(obs, i), _info_at(info, i)
            instruction = str(inf.get("instruction", ""))
            slot = _Slot(
                index=index, spec=spec, instruction=instruction, dr_params=json.loads(inf.get("dr_params_json", "{}")),
                initial_hash=_initial_hash(o), policy=policies[i], start=time.perf_counter(),
            )
            if video_budget["left"] > 0:
                from sim_envs.video import EpisodeVideo

                video_budget["left"] -= 1
                slot.video = EpisodeVideo(instruction, f"{spec.task.split('/')[-1]} dr={spec.dr_level} seed {spec.seed}",
                                          settings.cameras)
                slot.video.add(o, "step 0")
            try:
                slot.policy.reset(instruction)
            except Exception as e:  # noqa: BLE001
                slot.error = f"policy.reset raised {type(e).__name__}: {e}"
            slot.last_obs, slot.last_info = o, inf
            slots[i] = slot

    def finish(i: int) -> None:
        s = slots[i]
        video_path = None
        if s.video is not None:
            vdir = Path(settings.video_dir)
            fname = f"{safe_name(name)}_{s.spec.task.split('/')[-1]}_{s.spec.dr_level}_seed{s.spec.seed}.mp4"
            try:
                video_path = str(s.video.save(vdir / fname, fps=settings.video_fps))
            except Exception as e:  # noqa: BLE001  (a video problem must not lose the result)
                logger.warning("could not write video %s: %s", fname, e)
        results[s.index] = EpisodeResult(
            policy=name, task=s.spec.task, dr_level=s.spec.dr_level, seed=s.spec.seed,
            success=bool(s.success and s.error is None), steps=s.steps, sum_reward=float(s.sum_reward),
            max_reward=float(s.max_reward if s.steps else 0.0), instruction=s.instruction, dr_params=s.dr_params,
            error=s.error, video_path=video_path, initial_state_hash=s.initial_hash,
            wall_s=time.perf_counter() - s.start,
        )
        if s.error:
            logger.warning("%s %s dr=%s seed %d failed: %s", name, s.spec.task, s.spec.dr_level, s.spec.seed, s.error)
        slots[i] = None
        if bar is not None:
            bar.update(1)
            done = [r for r in results if r is not None and r.policy == name]
            bar.set_postfix_str(f"{name}: {format_rate(aggregate(done))}")

    def refill() -> None:
        free = [i for i, s in enumerate(slots) if s is None]
        picks = free[: len(queue)]
        running = bool(picks) or any(s is not None for s in slots)
        idle = [i for i in free[len(picks):] if i in ended] if running else []
        if picks or idle:
            start(picks, idle)

    refill()
    while any(s is not None for s in slots):
        active = [i for i, s in enumerate(slots) if s is not None]
        _plan_actions(slots, active, settings, is_expert, shared)
        for i in [i for i in active if slots[i].error]:
            finish(i)
        active = [i for i, s in enumerate(slots) if s is not None]
        if active:
            actions = np.zeros((n, ACTION_DIM), np.float32)
            actions[:, GRIPPER_INDEX] = 1.0  # idle sub-envs (no episode left for them) get a no-op
            for i in active:
                actions[i] = slots[i].pending.popleft()
            obs, reward, terminated, truncated, info = venv.step(actions)
            ended.update(np.flatnonzero(np.logical_or(terminated, truncated)).tolist())
            for i in active:
                s = slots[i]
                o, inf = _obs_at(obs, i), _info_at(info, i)
                s.steps += 1
                r = float(reward[i])
                s.sum_reward += r
                s.max_reward = max(s.max_reward, r)
                s.success = s.success or bool(inf.get("success", False))
                s.last_obs, s.last_info = o, inf
                if s.video is not None:
                    s.video.add(o, f"step {s.steps}" + ("  SUCCESS" if s.success else ""))
                if terminated[i] or truncated[i]:
                    finish(i)
        refill()


def _plan_actions(slots, active, settings, is_expert, shared) -> None:
    """Fill each active slot's queue of pending actions (asking the policy only where it is empty)."""
    need = [i for i in active if not slots[i].pending and not slots[i].error]
    if not need:
        return
    if is_expert:
        for i in need:
            s = slots[i]
            err = str(s.last_info.get("expert_error", ""))
            if err:
                s.error = f"expert raised {err}"
            else:
                s.pending.append(np.asarray(s.last_info["expert_action"], np.float32))
        return
    obs: dict[int, Observation] = {}
    for i in need:
        s = slots[i]
        try:
            obs[i] = _to_observation(s.last_obs, s.last_info, s.instruction)
        except Exception as e:  # noqa: BLE001
            s.error = f"building the observation raised {type(e).__name__}: {e}"
    ready = [i for i in need if i in obs]
    outputs: dict[int, Any] = {}
    if shared and len(ready) > 1:
        policy = slots[ready[0]].policy
        try:
            batch = policy.act_batch([obs[i] for i in ready])
            if len(batch) != len(ready):
                raise ContractError(f"act_batch returned {len(batch)} actions for {len(ready)} observations")
            outputs = dict(zip(ready, batch))
        except Exception as e:  # noqa: BLE001
            logger.warning("act_batch raised %s: %s; asking the policy one observation at a time to find the failing episode",
                           type(e).__name__, e)
    for i in ready:
        if i not in outputs:
            try:
                outputs[i] = slots[i].policy.act(obs[i])
            except Exception as e:  # noqa: BLE001
                slots[i].error = f"policy raised {type(e).__name__}: {e}"
                continue
        try:
            a = validate_action(outputs[i], allow_chunk=True, name="policy action")
        except ContractError as e:
            slots[i].error = f"invalid action: {e}"
            continue
        chunk = a[None] if a.ndim == 1 else a
        k = len(chunk) if settings.execute_steps is None else min(settings.execute_steps, len(chunk))
        slots[i].pending.extend(chunk[:k])


# ----------------------------------------------------------------------------------------- many policies
def evaluate_policies(
    policies: Mapping[str, PolicyLike] | Sequence[PolicyLike],
    specs: Sequence[EpisodeSpec],
    settings: EvalSettings,
) -> dict[str, list[EpisodeResult]]:
    """Evaluate several policies from identical initial states.

    The first policy runs the specs as given; its episodes' sampled DR parameters are then attached to the
    specs, and every other policy replays exactly those initial states (same seed, same task layout, same
    DR parameters, through `env.reset(seed=seed, options={"dr_params": params})`). Compare
    `EpisodeResult.initial_state_hash` across policies to check it: equal hashes mean identical first
    observations. The world-model evaluation uses this to compare a policy in the simulator with the same
    policy inside the learned model.

    Args:
        policies: name -> Policy instance or factory (see `run_policy`), evaluated in this order; a plain
            list is named "0_<ClassName>", "1_<ClassName>", ...
        specs: initial states, from `plan_episodes` or earlier results (`specs_from_results`).
        settings: how to run them.
    Returns:
        name -> results in spec order.
    """
    from tqdm.auto import tqdm

    if not policies:
        raise ValueError("evaluate_policies needs at least one policy")
    if not isinstance(policies, Mapping):
        policies = {f"{i}_{getattr(p, '__name__', type(p).__name__)}": p for i, p in enumerate(policies)}
    out: dict[str, list[EpisodeResult]] = {}
    specs = list(specs)
    bar = tqdm(total=len(specs) * len(policies), desc="eval episodes", unit="ep", disable=not settings.progress)
    envs: dict = {}  # vector envs shared by the policies (built once per task x level)
    try:
        for name, policy in policies.items():
            t0 = time.perf_counter()
            res = run_policy(policy, specs, settings, name=name, progress_bar=bar, env_cache=envs)
            logger.info("%s: %s in %.1f s", name, format_rate(aggregate(res)), time.perf_counter() - t0)
            out[name] = res
            if any(s.dr_params is None for s in specs):
                specs = specs_from_results(res)
    finally:
        bar.close()
        for venv in envs.values():
            venv.close()
    return out


def specs_from_results(results: Sequence[EpisodeResult]) -> list[EpisodeSpec]:
    """The initial states of earlier episodes (seed + DR parameters), to replay them for another policy."""
    return [EpisodeSpec(r.task, r.dr_level, r.seed, dict(r.dr_params)) for r in results]
