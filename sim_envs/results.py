"""Evaluation results: per-episode records, aggregation with Wilson intervals, and `eval_info.json`.

The layout of `eval_info.json` follows LeRobot's `lerobot-eval` output (`per_episode`, `aggregated` with
`pc_success`, `avg_sum_reward`, `avg_max_reward`, `eval_s`, `eval_ep_s`, `video_paths`; `per_task` and
`per_group` as in its multi-task evaluation) and adds what a success rate needs to be read honestly: the
number of episodes, the successes and a Wilson 95% interval, per task x DR level cell, per task, per DR
level and overall.

    eval_info.json
      policy            name of the evaluated policy
      per_episode       [{episode_ix, task, dr_level, seed, success, steps, sum_reward, max_reward,
                          instruction, dr_params, error, video_path, initial_state_hash, target,
                          num_targets, templates, wrong_target, named}]
      per_task          [{task, dr_level, metrics: {successes, sum_rewards, max_rewards, seeds,
                          video_paths}, aggregated: {...}}]          one entry per task x DR level
      per_group         {"task": {task: {...}}, "dr_level": {level: {...}}}
      aggregated        {n_episodes, n_success, pc_success, success_rate, ci95: [lo, hi], n_errors,
                          avg_sum_reward, avg_max_reward, avg_steps, eval_s, eval_ep_s, video_paths}
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from vla.core.intervals import wilson_interval

@dataclass
class EpisodeResult:
    """The outcome of one evaluation episode.

    `error` is None for an episode that ran to its end (success or time-out); otherwise it says why the
    episode was stopped and counted as a failure (the policy raised, returned NaN/inf or a wrong shape).
    """

    policy: str
    task: str
    dr_level: str
    seed: int
    success: bool
    steps: int
    sum_reward: float = 0.0
    max_reward: float = 0.0
    instruction: str = ""
    dr_params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    video_path: str | None = None
    initial_state_hash: str = ""
    wall_s: float = 0.0
    #: which of the scene's `num_targets` candidates the instruction named, from which template set
    target: int = 0
    num_targets: int = 1
    templates: str = "train"
    #: the policy acted on an object the instruction did not name (the task's `wrong_target` check)
    wrong_target: bool = False
    #: the named candidate as `key=value` pairs, e.g. `color=red` ('' for single-referent tasks)
    named: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "EpisodeResult":
        return cls(**d)  # older files lack the language fields: their defaults (one target) apply


def aggregate(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Success statistics of a set of episodes (the `aggregated` block of eval_info.json)."""
    n = len(results)
    k = sum(bool(r.success) for r in results)
    lo, hi = wilson_interval(k, n)

    def mean(values: list[float]) -> float:
        return float(sum(values) / len(values)) if values else float("nan")

    return {
        "n_episodes": n,
        "n_success": k,
        "success_rate": k / n if n else float("nan"),
        "pc_success": 100.0 * k / n if n else float("nan"),
        "ci95": [lo, hi],
        "n_errors": sum(r.error is not None for r in results),
        "n_wrong_target": sum(bool(r.wrong_target) for r in results),
        "wrong_target_rate": sum(bool(r.wrong_target) for r in results) / n if n else float("nan"),
        "avg_sum_reward": mean([r.sum_reward for r in results]),
        "avg_max_reward": mean([r.max_reward for r in results]),
        "avg_steps": mean([float(r.steps) for r in results]),
        "video_paths": [r.video_path for r in results if r.video_path],
    }


def _ordered(values: Iterable[str]) -> list[str]:
    """Unique values in first-seen order (keeps the order of the user's task / level lists)."""
    return list(dict.fromkeys(values))


def build_eval_info(results: Sequence[EpisodeResult], *, eval_s: float, config: dict | None = None) -> dict:
    """The `eval_info.json` content of one policy's results (layout in the module docstring)."""
    policies = _ordered(r.policy for r in results)
    if len(policies) > 1:
        raise ValueError(f"build_eval_info takes one policy's results, got {policies}")
    tasks = _ordered(r.task for r in results)
    levels = _ordered(r.dr_level for r in results)
    cells: dict[tuple[str, str], list[EpisodeResult]] = defaultdict(list)
    for r in results:
        cells[(r.task, r.dr_level)].append(r)

    per_task = []
    for task in tasks:
        for level in levels:
            rs = cells.get((task, level), [])
            if not rs:
                continue
            per_task.append({
                "task": task,
                "dr_level": level,
                "metrics": {
                    "successes": [bool(r.success) for r in rs],
                    "sum_rewards": [r.sum_reward for r in rs],
                    "max_rewards": [r.max_reward for r in rs],
                    "seeds": [r.seed for r in rs],
                    "video_paths": [r.video_path for r in rs if r.video_path],
                },
                "aggregated": aggregate(rs),
            })
    overall = aggregate(results)
    overall["eval_s"] = float(eval_s)
    overall["eval_ep_s"] = float(eval_s) / len(results) if results else float("nan")
    info = {
        "policy": policies[0] if policies else "",
        "per_episode": [{"episode_ix": i, **_episode_row(r)} for i, r in enumerate(results)],
        "per_task": per_task,
        "per_group": {
            "task": {t: aggregate([r for r in results if r.task == t]) for t in tasks},
            "dr_level": {lv: aggregate([r for r in results if r.dr_level == lv]) for lv in levels},
        },
        "aggregated": overall,
        "video_paths": overall["video_paths"],
    }
    if config is not None:
        info["config"] = config
    return info


def _episode_row(r: EpisodeResult) -> dict[str, Any]:
    d = r.to_json()
    d.pop("policy")
    return d


def write_jsonl(results: Iterable[EpisodeResult], path: str | Path) -> Path:
    """One JSON object per line, one line per episode (easy to `cat`, grep and concatenate)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in results:
            f.write(json.dumps(r.to_json(), sort_keys=True) + "\n")
    return path


def write_json(obj: Any, path: str | Path) -> Path:
    """Write JSON with NaN written as null (strict JSON readers reject NaN)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_nan_to_none(obj), indent=2) + "\n")
    return path


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def format_rate(agg: dict[str, Any]) -> str:
    """'0.80 [0.49, 0.94] (8/10)' for tables and logs."""
    if not agg["n_episodes"]:
        return "-"
    lo, hi = agg["ci95"]
    return f"{agg['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] ({agg['n_success']}/{agg['n_episodes']})"


def write_results(
    results: Mapping[str, Sequence[EpisodeResult]],
    out_dir: str | Path,
    *,
    eval_s: Mapping[str, float] | None = None,
    config: dict | None = None,
) -> dict[str, Path]:
    """Write `<out_dir>/<policy>/{episodes.jsonl, eval_info.json}` and `summary.json`.

    Returns the paths written, by name (the plot: `sim_envs.evaluation.write_outputs`).
    """
    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    summary = {}
    for name, res in results.items():
        pdir = out_dir / safe_name(name)
        paths[f"{name}/episodes"] = write_jsonl(res, pdir / "episodes.jsonl")
        info = build_eval_info(list(res), eval_s=(eval_s or {}).get(name, sum(r.wall_s for r in res)), config=config)
        paths[f"{name}/eval_info"] = write_json(info, pdir / "eval_info.json")
        summary[name] = {"aggregated": info["aggregated"], "per_task": [
            {"task": c["task"], "dr_level": c["dr_level"], **c["aggregated"]} for c in info["per_task"]
        ]}
    paths["summary"] = write_json(summary, out_dir / "summary.json")
    return paths


def safe_name(name: str) -> str:
    """A policy name (possibly a checkpoint path) as one file-name component."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "policy"
