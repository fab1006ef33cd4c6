"""The robustness protocol: success vs the magnitude of one perturbation at a time (LIBERO-Plus style).

The combined DR levels move everything at once; here each dimension of `sim_envs.perturbations` (camera
pose, lighting, textures, distractors, image noise, physics, action latency, the arm's start pose) is
applied alone at magnitudes 1-3 next to the nominal scene, and optionally the combined levels too. Every
policy runs the same initial states (seed -> layout) at every level. The report gives, per dimension and
magnitude, the success rate with its Wilson interval and its ratio to the nominal success.

    specs, dr_configs = plan_robustness(["LiftCube"], seeds=20)
    results = evaluate_policies(policies, specs, replace(settings, dr_configs=dr_configs))
    report = summarize_robustness(results)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from sim_envs.evaluation import EpisodeSpec, resolve_seeds, resolve_task
from sim_envs.perturbations import DIMENSIONS, NOMINAL, level_config, parse_level, sweep_levels
from sim_envs.results import EpisodeResult, aggregate

#: The combined levels reported next to the per-dimension sweep (their ratio to `none` is the DR target).
COMBINED = ("none", "low", "medium", "high")


def plan_robustness(tasks: Sequence[str], seeds, dimensions: Sequence[str] | None = None,
                    magnitudes: Sequence[int] = (1, 2, 3), combined: Sequence[str] = ()) -> tuple[list[EpisodeSpec], dict]:
    """(specs, level name -> DRConfig): every task x level x seed, nominal first."""
    levels = sweep_levels(list(dimensions) if dimensions else None, magnitudes)
    for name in combined:
        levels[name] = level_config(name)
    task_ids = [resolve_task(t) for t in tasks]
    seed_list = resolve_seeds(seeds)
    specs = [EpisodeSpec(t, lv, s) for t in task_ids for lv in levels for s in seed_list]
    return specs, levels


def _rate(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    a = aggregate(results)
    return {k: a[k] for k in ("n_episodes", "n_success", "success_rate", "ci95", "n_errors")}


def summarize_robustness(results: Mapping[str, Sequence[EpisodeResult]]) -> dict[str, Any]:
    """Per policy: nominal success, per dimension the rate and ratio to nominal at each magnitude, the combined
    levels with their ratio to `none`, and the worst middle-magnitude ratio (the protocol's headline)."""
    report: dict[str, Any] = {}
    for name, rs in results.items():
        by_level: dict[str, list[EpisodeResult]] = {}
        for r in rs:
            by_level.setdefault(r.dr_level, []).append(r)
        nominal = _rate(by_level.get(NOMINAL, []))
        base = nominal["success_rate"]
        dims: dict[str, list[dict[str, Any]]] = {}
        for level, lr in by_level.items():
            if "@" not in level:
                continue
            dim, mag = parse_level(level)
            rate = _rate(lr)
            rate["magnitude"] = mag
            rate["ratio_to_nominal"] = rate["success_rate"] / base if base else None
            dims.setdefault(dim, []).append(rate)
        for v in dims.values():
            v.sort(key=lambda r: r["magnitude"])
        combined = {lv: _rate(by_level[lv]) for lv in COMBINED if lv in by_level}
        none = combined.get("none", {}).get("success_rate")
        for lv, rate in combined.items():
            rate["ratio_to_none"] = rate["success_rate"] / none if none else None
        middle = {d: next((r["ratio_to_nominal"] for r in v if r["magnitude"] == 2), None) for d, v in dims.items()}
        known = {d: m for d, m in middle.items() if m is not None}
        report[name] = {"nominal": nominal, "dimensions": {d: dims[d] for d in DIMENSIONS if d in dims},
                        "combined": combined, "middle_ratio": middle,
                        "worst_middle": min(known.items(), key=lambda kv: kv[1]) if known else None}
    return report


def plot_robustness(report: Mapping[str, Any], path) -> None:
    """Success vs magnitude, one line per dimension (Wilson 95% bands), nominal at magnitude 0; a panel per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(report)
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names) + 1.5, 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        entry = report[name]
        nominal = entry["nominal"]
        for dim, rows in entry["dimensions"].items():
            mags = [0] + [r["magnitude"] for r in rows]
            rates = np.array([nominal["success_rate"]] + [r["success_rate"] for r in rows], float)
            lo = np.array([nominal["ci95"][0]] + [r["ci95"][0] for r in rows], float)
            hi = np.array([nominal["ci95"][1]] + [r["ci95"][1] for r in rows], float)
            line, = ax.plot(mags, rates, marker="o", label=dim)
            ax.fill_between(mags, lo, hi, color=line.get_color(), alpha=0.08)
        ax.set_xticks(range(4), ["nominal", "small", "middle", "large"])
        ax.set_ylim(-0.02, 1.05)
        ax.set_ylabel("success (Wilson 95%)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
