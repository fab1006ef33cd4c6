"""The language-following protocol: does a policy do what it is told, or the task it memorized?

Three conditions, each run from identical initial states (usable on any `vla.Policy`, the 7B included):

- **swap** (LIBERO-PRO's instruction swap): every initial state is run once per candidate the scene offers
  (the same cubes, another colour named), success judged against the *named* target. A policy that ignores
  language succeeds on at most one of the K instructions of a scene: chance is 1/K.
- **paraphrase**: the same episodes phrased with held-out templates never seen in training.
- **blind**: the same policy with the instruction replaced by one fixed string (`instruction=<text>` of the
  spec grammar), on the swap episodes: the chance level the swap success must beat, measured.

Reported per task and per named referent: success with its Wilson interval and the wrong-target rate (the
policy acted on an object the instruction did not name).

The swap set is every candidate of each scene unless `swap_targets` names some (`vla-eval
language.swap_targets=[cube,ball]`): each name selects the candidates whose bindings hold it (`red` -> the red
cube; `lift+red` -> lifting the red cube). The names are checked against every planned scene before any episode
runs: a name that is not a candidate of a scene raises ValueError naming the task, the seed, the name and the
candidates that scene offers. With a subset of m candidates the chance level is 1/m.

    report = run_language_protocol({"vla": policy}, {"vla": blind_policy}, ["LiftNamedCube"], "low", 20, settings)
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import replace
from typing import Any, Mapping, Sequence

from sim_envs.eval_envs import EvalSettings
from sim_envs.evaluation import EpisodeSpec, PolicyLike, evaluate_policies, plan_episodes, resolve_task
from sim_envs.results import EpisodeResult, aggregate

logger = logging.getLogger(__name__)

CONDITIONS = ("swap", "paraphrase", "blind")
#: What the blind-language baseline reads instead of the episode's instruction (names no object).
BLIND_INSTRUCTION = "do the task"


def scene_candidates(task: str, settings: EvalSettings, level: str = "none") -> tuple[int, int]:
    """(candidates per scene, held-out templates) of a task, read from one reset at a tiny image size."""
    import sim_envs
    from sim_envs.tasks import TASK_CLASSES

    scene = probe_scenes(task, [0], settings, level)[0]
    name = sim_envs.task_id(task).split("/")[-1].rsplit("-v", 1)[0]
    return len(scene), len(getattr(TASK_CLASSES[name], "heldout_templates", ()))


def probe_scenes(task: str, seeds: Sequence[int], settings: EvalSettings, level: str = "none"
                 ) -> dict[int, list[dict[str, str]]]:
    """seed -> the candidates of that seed's scene (e.g. [{"color": "red"}, ...]): one reset each, tiny images."""
    import json

    from sim_envs.config import make_env

    env = make_env(task, sim=replace(settings.sim, image_size=16, cameras=["primary"]), dr=level)
    try:
        return {int(seed): json.loads(env.reset(seed=int(seed))[1]["candidates_json"]) for seed in seeds}
    finally:
        env.close()


def resolve_swap_targets(swap_targets: Sequence[str] | Mapping[str, Sequence[str]] | None, tasks: Sequence[str]
                         ) -> dict[str, list[str]]:
    """task id -> the names its swap set is restricted to; tasks left out swap every candidate.

    `swap_targets`: None (every candidate of every task), a list of names for every task of the run, or a
    mapping task -> names (`{LiftNamedShape: [cube, ball]}`). Raises ValueError for an empty list, a name that
    is not a string, or a mapping key that is not one of `tasks` (task ids).
    """
    if swap_targets is None:
        return {}
    if isinstance(swap_targets, (str, bytes)):
        swap_targets = [swap_targets]
    by_task = dict(swap_targets) if isinstance(swap_targets, Mapping) else {t: swap_targets for t in tasks}
    out: dict[str, list[str]] = {}
    for key, names in by_task.items():
        task = resolve_task(key)
        if task not in tasks:
            raise ValueError(f"language.swap_targets names task {key!r}, which this run does not evaluate; its "
                             f"tasks: {[_short(t) for t in tasks]}")
        names = [names] if isinstance(names, str) else list(names or [])
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"language.swap_targets for {_short(task)} must be a non-empty list of candidate names "
                             f"(e.g. [red,blue]), got {names!r}; null swaps every candidate of each scene")
        out[task] = names
    return out


def select_swap_targets(task: str, names: Sequence[str], scenes: Mapping[int, Sequence[Mapping[str, str]]]
                        ) -> dict[int, list[int]]:
    """seed -> indices of the candidates of that seed's scene that `names` select (see module docstring).

    A name selects the candidates whose binding values include each of its words (`lift+red`, `lift red`), or
    match `key=value`, case-insensitively. Raises ValueError, before anything runs, for a name that selects no
    candidate of some scene: it names the task, the name, the seeds concerned and the candidates offered.
    """
    for name in names:
        missing = [seed for seed, cands in scenes.items() if not any(_selects(name, c) for c in cands)]
        if not missing:
            continue
        offered = sorted({v for cands in scenes.values() for c in cands for v in c.values()})
        if len(missing) == len(scenes):
            close = difflib.get_close_matches(str(name).lower(), offered, n=1)
            example = scenes[missing[0]][0] if scenes[missing[0]] else {}
            hint = f" (one candidate: {'+'.join(example.values())!r})" if len(example) > 1 else ""
            hint += f". Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"language.swap_targets: {name!r} is not a candidate of {_short(task)} in any planned "
                             f"scene; its scenes offer {offered}{hint}")
        seed = missing[0]
        holding = [s for s, cands in scenes.items() if all(any(_selects(n, c) for c in cands) for n in names)]
        raise ValueError(
            f"language.swap_targets: {name!r} is not a candidate of {_short(task)}'s scene at {len(missing)} of the "
            f"{len(scenes)} planned seeds (seed {seed} offers {_labels(scenes[seed])}). {_short(task)} draws its "
            f"referents per seed: name ones every scene offers, or evaluate only seeds whose scenes hold every name "
            f"({holding[:20] if holding else 'none of the planned seeds'})")
    return {seed: [i for i, c in enumerate(cands) if any(_selects(n, c) for n in names)]
            for seed, cands in scenes.items()}


def _selects(name: str, candidate: Mapping[str, str]) -> bool:
    values = {str(v).lower() for v in candidate.values()} | {f"{k}={v}".lower() for k, v in candidate.items()}
    words = [w for w in re.split(r"[+\s]+", str(name).strip().lower()) if w]
    return bool(words) and all(w in values for w in words)


def _labels(candidates: Sequence[Mapping[str, str]]) -> list[str]:
    return ["+".join(map(str, c.values())) for c in candidates]


def _short(task: str) -> str:
    return task.split("/")[-1].rsplit("-v", 1)[0]


def plan_language_episodes(tasks: Sequence[str], level: str, seeds, settings: EvalSettings,
                           templates: str = "train", candidates: Mapping[str, tuple[int, int]] | None = None,
                           targets: Mapping[str, Mapping[int, Sequence[int]]] | None = None) -> list[EpisodeSpec]:
    """Every seed x every candidate target of each task (the swap design), phrased with `templates`.

    `candidates`: task id -> `scene_candidates(task)`, when the caller has probed them already.
    `targets`: task id -> seed -> the candidate indices to name (`select_swap_targets`); tasks not in it name
    every candidate.
    Raises ValueError for a task whose scenes offer one candidate (nothing to swap) or, for `heldout`, a
    task without held-out templates, naming the tasks that qualify.
    """
    base = plan_episodes(list(tasks), [level], seeds)
    out: list[EpisodeSpec] = []
    for task in dict.fromkeys(s.task for s in base):
        k, heldout = candidates[task] if candidates and task in candidates else scene_candidates(task, settings)
        if k < 2:
            raise ValueError(f"{task} has one candidate per scene: the instruction decides nothing, so there is "
                             f"nothing to swap. Language tasks: {language_tasks()}")
        if templates == "heldout" and heldout == 0:
            raise ValueError(f"{task} has no held-out templates for the paraphrase condition; language tasks: "
                             f"{language_tasks()}")
        chosen = (targets or {}).get(task)
        out += [replace(s, target=t, templates=templates) for s in base if s.task == task
                for t in (chosen[s.seed] if chosen is not None else range(k))]
    return out


def language_tasks() -> list[str]:
    """Tasks whose instruction picks among several candidates (those with held-out paraphrases)."""
    from sim_envs.tasks import TASK_CLASSES

    return [name for name, cls in TASK_CLASSES.items() if getattr(cls, "heldout_templates", ())]


def run_language_protocol(policies: Mapping[str, PolicyLike], blind: Mapping[str, PolicyLike], tasks: Sequence[str],
                          level: str, seeds, settings: EvalSettings, conditions: Sequence[str] = CONDITIONS,
                          swap_targets: Sequence[str] | Mapping[str, Sequence[str]] | None = None
                          ) -> dict[str, dict[str, list[EpisodeResult]]]:
    """condition -> policy name -> results. `blind` maps each policy name to its fixed-instruction variant.

    `swap_targets`: the names the swap set is restricted to (`resolve_swap_targets`; None: every candidate),
    checked against every planned scene before any episode runs.
    """
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown language conditions {unknown}; choose from {list(CONDITIONS)}")
    base = plan_episodes(list(tasks), [level], seeds)
    task_ids = list(dict.fromkeys(s.task for s in base))
    probed = {t: scene_candidates(t, settings) for t in task_ids}
    targets = {}
    for task, names in resolve_swap_targets(swap_targets, task_ids).items():
        if probed[task][0] < 2:
            continue  # nothing to swap: planning names the task and the language tasks
        scenes = probe_scenes(task, [s.seed for s in base if s.task == task], settings, level)
        targets[task] = select_swap_targets(task, names, scenes)
        logger.info("language swap on %s restricted to %s: %d episodes per condition", _short(task), names,
                    sum(map(len, targets[task].values())))
    swap = plan_language_episodes(tasks, level, seeds, settings, "train", probed, targets)
    out: dict[str, dict[str, list[EpisodeResult]]] = {}
    if "swap" in conditions:
        out["swap"] = evaluate_policies(dict(policies), swap, settings)
    if "paraphrase" in conditions:
        heldout = plan_language_episodes(tasks, level, seeds, settings, "heldout", probed, targets)
        out["paraphrase"] = evaluate_policies(dict(policies), heldout, settings)
    if "blind" in conditions:
        out["blind"] = {name: evaluate_policies({name: blind[name]}, swap, settings)[name] for name in policies}
    return out


def _rates(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    a = aggregate(results)
    return {k: a[k] for k in ("n_episodes", "n_success", "success_rate", "ci95", "n_wrong_target", "wrong_target_rate",
                              "n_errors")}


def _chance(results: Sequence[EpisodeResult]) -> float:
    """What a policy ignoring language reaches at most: 1 / (instructions run per scene), averaged over scenes
    (1/K for the full swap, 1/m for a swap set of m candidates)."""
    named: dict[tuple[str, int], set[int]] = {}
    for r in results:
        named.setdefault((r.dr_level, r.seed), set()).add(r.target)
    return sum(1.0 / len(t) for t in named.values()) / len(named)


def summarize_language(results: Mapping[str, Mapping[str, Sequence[EpisodeResult]]]) -> dict[str, Any]:
    """The report: per policy, per condition, overall / per task / per named referent, with chance levels."""
    report: dict[str, Any] = {}
    policies = list(dict.fromkeys(p for by_policy in results.values() for p in by_policy))
    for name in policies:
        entry: dict[str, Any] = {}
        for condition, by_policy in results.items():
            rs = list(by_policy.get(name, []))
            if not rs:
                continue
            tasks = list(dict.fromkeys(r.task for r in rs))
            per_task = {}
            for task in tasks:
                tr = [r for r in rs if r.task == task]
                named = list(dict.fromkeys(r.named for r in tr))
                per_task[task] = {**_rates(tr), "chance": _chance(tr),
                                  "per_named": {n: _rates([r for r in tr if r.named == n]) for n in named}}
            task_rates = [v["success_rate"] for v in per_task.values()]
            entry[condition] = {**_rates(rs), "mean_task_success": sum(task_rates) / len(task_rates),
                                "chance": sum(v["chance"] for v in per_task.values()) / len(per_task),
                                "per_task": per_task}
        if "swap" in entry and "paraphrase" in entry and entry["swap"]["success_rate"] > 0:
            entry["paraphrase_ratio"] = entry["paraphrase"]["success_rate"] / entry["swap"]["success_rate"]
        report[name] = entry
    return report


def plot_language(report: Mapping[str, Any], path) -> None:
    """Bars per task and condition with Wilson 95% intervals, chance as a dashed line; one panel per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(report)
    fig, axes = plt.subplots(1, len(names), figsize=(5 + 2.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        entry = report[name]
        conditions = [c for c in CONDITIONS if c in entry]
        tasks = list(entry[conditions[0]]["per_task"]) if conditions else []
        width = 0.8 / max(1, len(conditions))
        x = np.arange(len(tasks))
        for j, c in enumerate(conditions):
            per = [entry[c]["per_task"].get(t) for t in tasks]
            rates = np.array([p["success_rate"] if p else np.nan for p in per])
            lo = np.array([p["ci95"][0] if p else np.nan for p in per])
            hi = np.array([p["ci95"][1] if p else np.nan for p in per])
            ax.bar(x + (j - (len(conditions) - 1) / 2) * width, rates, width, label=c,
                   yerr=[rates - lo, hi - rates], capsize=3)
        for i, t in enumerate(tasks):
            chance = entry[conditions[0]]["per_task"][t]["chance"]
            ax.hlines(chance, i - 0.45, i + 0.45, colors="k", linestyles="dashed", linewidth=1)
        ax.set_xticks(x, [t.split("/")[-1].rsplit("-v", 1)[0] for t in tasks], rotation=20, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("success on the named target (Wilson 95%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
