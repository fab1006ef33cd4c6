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

    report = run_language_protocol({"vla": policy}, {"vla": blind_policy}, ["LiftNamedCube"], "low", 20, settings)
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Mapping, Sequence

from sim_envs.eval_envs import EvalSettings
from sim_envs.evaluation import EpisodeSpec, PolicyLike, evaluate_policies, plan_episodes
from sim_envs.results import EpisodeResult, aggregate

logger = logging.getLogger(__name__)

CONDITIONS = ("swap", "paraphrase", "blind")
#: What the blind-language baseline reads instead of the episode's instruction (names no object).
BLIND_INSTRUCTION = "do the task"


def scene_candidates(task: str, settings: EvalSettings, level: str = "none") -> tuple[int, int]:
    """(candidates per scene, held-out templates) of a task, read from one reset at a tiny image size."""
    import sim_envs
    from sim_envs.config import make_env
    from sim_envs.tasks import TASK_CLASSES

    env = make_env(task, sim=replace(settings.sim, image_size=16, cameras=["primary"]), dr=level)
    try:
        _, info = env.reset(seed=0)
    finally:
        env.close()
    name = sim_envs.task_id(task).split("/")[-1].rsplit("-v", 1)[0]
    return int(info.get("num_targets", 1)), len(getattr(TASK_CLASSES[name], "heldout_templates", ()))


def plan_language_episodes(tasks: Sequence[str], level: str, seeds, settings: EvalSettings,
                           templates: str = "train", candidates: Mapping[str, tuple[int, int]] | None = None
                           ) -> list[EpisodeSpec]:
    """Every seed x every candidate target of each task (the swap design), phrased with `templates`.

    `candidates`: task id -> `scene_candidates(task)`, when the caller has probed them already.
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
        out += [replace(s, target=t, templates=templates) for s in base if s.task == task for t in range(k)]
    return out


def language_tasks() -> list[str]:
    """Tasks whose instruction picks among several candidates (those with held-out paraphrases)."""
    from sim_envs.tasks import TASK_CLASSES

    return [name for name, cls in TASK_CLASSES.items() if getattr(cls, "heldout_templates", ())]


def run_language_protocol(policies: Mapping[str, PolicyLike], blind: Mapping[str, PolicyLike], tasks: Sequence[str],
                          level: str, seeds, settings: EvalSettings,
                          conditions: Sequence[str] = CONDITIONS) -> dict[str, dict[str, list[EpisodeResult]]]:
    """condition -> policy name -> results. `blind` maps each policy name to its fixed-instruction variant."""
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown language conditions {unknown}; choose from {list(CONDITIONS)}")
    probed = {t: scene_candidates(t, settings) for t in dict.fromkeys(s.task for s in plan_episodes(list(tasks), [level], 1))}
    swap = plan_language_episodes(tasks, level, seeds, settings, "train", probed)
    out: dict[str, dict[str, list[EpisodeResult]]] = {}
    if "swap" in conditions:
        out["swap"] = evaluate_policies(dict(policies), swap, settings)
    if "paraphrase" in conditions:
        heldout = plan_language_episodes(tasks, level, seeds, settings, "heldout", probed)
        out["paraphrase"] = evaluate_policies(dict(policies), heldout, settings)
    if "blind" in conditions:
        out["blind"] = {name: evaluate_policies({name: blind[name]}, swap, settings)[name] for name in policies}
    return out


def _rates(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    a = aggregate(results)
    return {k: a[k] for k in ("n_episodes", "n_success", "success_rate", "ci95", "n_wrong_target", "wrong_target_rate",
                              "n_errors")}


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
                per_task[task] = {**_rates(tr), "chance": 1.0 / max(1, tr[0].num_targets),
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
