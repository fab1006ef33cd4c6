"""Demo stages 3 and 6: the tiny VLA per task next to its baselines, and its success at DR none vs high.

A multi-task checkpoint carries one set of normalization statistics per training dataset, and each task is
evaluated with its own (`unnorm_key`, as OpenVLA evaluates each dataset with its key), so policies are built
and run task by task and the per-task results are concatenated:

    data = [TaskData("vla_sim/LiftNamedCube-v0", Path("outputs/demo/data/demo_liftnamedcube_low/1.0.0"),
                     "demo_liftnamedcube_low"), ...]
    results = evaluate_per_task(data, checkpoint, ["tiny_vla", "no_vision", "random"], plan, settings, seed=0)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

#: The policies of the evaluate stage, in the order they run (the first samples the initial states).
POLICIES = ("tiny_vla", "no_vision", "random")
#: The DR levels whose success ratio the robustness target reads (high / none).
ROBUSTNESS_LEVELS = ("none", "high")


@dataclass(frozen=True)
class TaskData:
    """One task of the demo: its gymnasium id, its RLDS dataset and the key of its statistics in the checkpoint."""

    task: str
    dataset_dir: Path
    unnorm_key: str

    @property
    def short(self) -> str:
        """'vla_sim/LiftNamedCube-v0' -> 'LiftNamedCube'."""
        return short_name(self.task)


def short_name(task: str) -> str:
    return task.split("/")[-1].rsplit("-v", 1)[0]


def policy_spec(name: str, checkpoint: Path, data: TaskData, **options: Any) -> dict[str, Any] | str:
    """The `vla.policy` spec of one of `POLICIES` for `data`'s task (`options`: e.g. `instruction=`)."""
    if name == "tiny_vla":
        return {"kind": "vla", "path": str(checkpoint), "unnorm_key": data.unnorm_key, "name": name, **options}
    if name in ("no_vision", "random"):
        return {"kind": name, "name": name, **options} if options else name
    raise ValueError(f"unknown demo policy {name!r}; choose one of {list(POLICIES)}")


def build_policies(names: Sequence[str], checkpoint: Path, data: TaskData, *, seed: int, **options: Any) -> dict:
    """name -> policy (or factory) for `data`'s task; `no_vision` replays the mean of that task's dataset."""
    from sim_envs.baselines import policy_context
    from vla.policy import policy_source

    context = policy_context([data.task], datasets=data.dataset_dir, seed=seed)
    return {name: policy_source(policy_spec(name, checkpoint, data, **options), context)[1] for name in names}


def evaluate_per_task(data: Sequence[TaskData], checkpoint: Path, names: Sequence[str],
                      plan: Callable[[str], list], settings, *, seed: int) -> dict[str, list]:
    """`evaluate_policies` task by task (each task's policies un-normalize with its statistics), concatenated.

    `plan(task_id)` gives the task's episode specs. Returns name -> results (task by task, in spec order).
    """
    from sim_envs.evaluation import evaluate_policies

    out: dict[str, list] = {name: [] for name in names}
    for d in data:
        logger.info("evaluating on %s: %s", d.short, ", ".join(names))
        results = evaluate_policies(build_policies(names, checkpoint, d, seed=seed), plan(d.task), settings)
        for name in names:
            out[name].extend(results[name])
    return out


def success_summary(results: dict[str, list]) -> dict[str, Any]:
    """Per policy: the aggregate over every episode, `per_task` aggregates and `mean_task_success`."""
    from sim_envs.results import aggregate

    summary = {}
    for name, res in results.items():
        tasks = list(dict.fromkeys(r.task for r in res))
        per_task = {short_name(t): aggregate([r for r in res if r.task == t]) for t in tasks}
        rates = [a["success_rate"] for a in per_task.values()]
        summary[name] = {**aggregate(res), "mean_task_success": sum(rates) / len(rates) if rates else float("nan"),
                         "per_task": per_task}
    return summary


def run_eval_stage(cfg, out: Path, data: Sequence[TaskData], checkpoint: Path) -> tuple[dict[str, Any], dict[str, list]]:
    """The tiny VLA, no-vision and random from the same held-out initial states, per task; writes `<out>/eval`."""
    import torch

    from sim_envs.evaluation import EvalSettings, plan_episodes, write_outputs

    torch.set_num_threads(cfg.torch_threads)
    settings = EvalSettings(
        sim=cfg.sim_config(), num_envs=cfg.eval_envs, execute_steps=cfg.execute_steps, videos_per_cell=cfg.videos,
        video_dir=out / "eval" / "videos",
    )
    results = evaluate_per_task(data, checkpoint, POLICIES, lambda t: plan_episodes(t, cfg.dr_level, cfg.eval_episodes),
                                settings, seed=cfg.seed)
    write_outputs(results, out / "eval", levels=[cfg.dr_level])
    return success_summary(results), results


def run_robustness_stage(cfg, out: Path, data: Sequence[TaskData], checkpoint: Path) -> dict[str, Any]:
    """The tiny VLA at DR none and high (`robustness_episodes` per task each); writes `<out>/robustness`."""
    import torch

    from sim_envs.evaluation import EvalSettings, plan_episodes, write_outputs

    torch.set_num_threads(cfg.torch_threads)
    settings = EvalSettings(sim=cfg.sim_config(), num_envs=cfg.eval_envs, execute_steps=cfg.execute_steps)
    results = evaluate_per_task(data, checkpoint, ["tiny_vla"],
                                lambda t: plan_episodes(t, list(ROBUSTNESS_LEVELS), cfg.robustness_episodes),
                                settings, seed=cfg.seed)
    write_outputs(results, out / "robustness", levels=list(ROBUSTNESS_LEVELS))
    res = results["tiny_vla"]
    levels = {lv: success_summary({"tiny_vla": [r for r in res if r.dr_level == lv]})["tiny_vla"]
              for lv in ROBUSTNESS_LEVELS}
    none, high = (levels[lv]["mean_task_success"] for lv in ROBUSTNESS_LEVELS)
    ratio = high / none if none > 0 else None  # undefined when nothing succeeds without randomization
    return {
        "levels": levels, "ratio_high_to_none": ratio,
        "targets": [{"name": "tiny VLA success at DR high / at DR none (means over tasks)", "value": ratio,
                     "baseline": none, "target": 0.75, "met": ratio is not None and ratio >= 0.75}],
    }
