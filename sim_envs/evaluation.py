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
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from vla.core.types import Policy

from sim_envs.baselines import expert_of
from sim_envs.eval_envs import EvalSettings, make_vector_env
from sim_envs.group_runner import GroupRunner
from sim_envs.plots import plot_success_vs_dr
from sim_envs.results import EpisodeResult, aggregate, format_rate, write_results

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
    """One initial state: task id, DR level, seed, and (for a replay) the DR parameters to reuse.

    `target` names which of the scene's candidates the instruction refers to (None: the task draws it from
    the seed) and `templates` which instruction templates it is phrased with (`train` or `heldout`): the
    same seed with another target is the same scene under another instruction (the language protocol's swap).
    """

    task: str
    dr_level: str
    seed: int
    dr_params: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    target: int | None = None
    templates: str = "train"

    def reset_options(self) -> dict[str, Any]:
        """The env reset options that select this episode's instruction (beyond seed and DR parameters)."""
        out: dict[str, Any] = {}
        if self.target is not None:
            out["target"] = int(self.target)
        if self.templates != "train":
            out["templates"] = self.templates
        return out


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
    """A shipped DR level, or a single-dimension perturbation level (`camera@2`, `nominal`; see
    `sim_envs.perturbations`); ValueError lists the valid ones."""
    levels = list(levels) if levels is not None else available_levels()
    if str(level) in levels:
        return str(level)
    if str(level) == "nominal" or "@" in str(level):
        from sim_envs.perturbations import level_config

        level_config(str(level))  # raises naming the valid dimensions and magnitudes
        return str(level)
    raise ValueError(f"unknown domain-randomization level {level!r}. Valid levels: {levels}, 'nominal', or "
                     "<dimension>@<magnitude> (sim_envs.perturbations)")


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
            returning a fresh `Policy`, called once per parallel env (for stateful policies); an
            `ExpertPolicy` (or a wrapper of one) gets the actions the scripted expert computes inside each
            env worker.
        specs: the initial states (see `plan_episodes`); specs with `dr_params` are replayed exactly.
        settings: how to run (vector envs, chunk execution, videos).
        name: the policy name written into the results.
        progress_bar: a tqdm bar to advance by one per finished episode (None: no bar).
        env_cache: vector envs kept open for reuse by later calls (the caller closes them); None: the
            envs are made for this call and closed at its end.
    """
    results: list[EpisodeResult | None] = [None] * len(specs)
    # One group per task x level x instruction choice: a vector env passes one options dict to every
    # sub-env, so the episodes running together share their target and template set.
    groups: dict[tuple[str, str, int | None, str], list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault((s.task, s.dr_level, s.target, s.templates), []).append(i)
    shared = isinstance(policy, Policy)
    envs = env_cache if env_cache is not None else {}
    try:
        for (task, level, _, _), indices in groups.items():
            n = min(settings.num_envs, len(indices))
            slot_policies = [policy] * n if shared else [policy() for _ in range(n)]
            expert = expert_of(slot_policies[0]) is not None
            key = (task, level, n, expert)
            if key not in envs:
                envs[key] = make_vector_env(task, level, n, settings, with_expert=expert)
            GroupRunner(envs[key], slot_policies, [(i, specs[i]) for i in indices], settings, name=name,
                        expert=expert, shared=shared, results=results, bar=progress_bar).run()
    finally:
        if env_cache is None:
            for venv in envs.values():
                venv.close()
    return [r for r in results if r is not None]


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
    return [EpisodeSpec(r.task, r.dr_level, r.seed, dict(r.dr_params), r.target if r.num_targets > 1 else None,
                        r.templates) for r in results]


def write_outputs(
    results: Mapping[str, Sequence[EpisodeResult]],
    out_dir: str | Path,
    *,
    eval_s: Mapping[str, float] | None = None,
    config: dict | None = None,
    levels: Sequence[str] | None = None,
    plot: bool = True,
) -> dict[str, Path]:
    """`sim_envs.results.write_results` (per policy `episodes.jsonl`, `eval_info.json`; `summary.json`), plus
    `success_vs_dr.png` (`sim_envs.plots`; x-axis in `levels` order) when `plot`. Returns the paths by name."""
    paths = write_results(results, out_dir, eval_s=eval_s, config=config)
    all_results = [r for res in results.values() for r in res]
    if plot and all_results:
        paths["plot"] = plot_success_vs_dr(all_results, Path(out_dir) / "success_vs_dr.png", levels=levels)
    return paths
