"""Plot of success rate vs domain-randomization level, with Wilson 95% intervals as error bars."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sim_envs.results import EpisodeResult, aggregate


def plot_success_vs_dr(
    results: Sequence[EpisodeResult],
    path: str | Path,
    *,
    levels: Sequence[str] | None = None,
    title: str = "Success rate vs domain randomization",
) -> Path:
    """One panel per policy: a line per task and a bold line for all tasks pooled.

    Args:
        results: episodes of one or more policies.
        levels: x-axis order (default: the order the levels appear in `results`).
    Returns:
        the png path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = list(levels) if levels else list(dict.fromkeys(r.dr_level for r in results))
    policies = list(dict.fromkeys(r.policy for r in results))
    tasks = list(dict.fromkeys(r.task for r in results))
    fig, axes = plt.subplots(1, len(policies), figsize=(4.5 * len(policies) + 1.5, 3.8), squeeze=False, sharey=True)
    x = list(range(len(levels)))
    for ax, policy in zip(axes[0], policies):
        mine = [r for r in results if r.policy == policy]
        series = [(t.split("/")[-1], [r for r in mine if r.task == t], dict(lw=1, alpha=0.7, marker="o", ms=3)) for t in tasks]
        if len(tasks) > 1:
            series.append(("all tasks", mine, dict(lw=2.5, color="black", marker="s", ms=5)))
        for i, (label, rs, style) in enumerate(series):
            xs, ys, err_lo, err_hi = [], [], [], []
            for j, level in enumerate(levels):
                agg = aggregate([r for r in rs if r.dr_level == level])
                if not agg["n_episodes"]:
                    continue
                # Offset the lines slightly so overlapping error bars stay visible.
                xs.append(j + 0.04 * (i - len(series) / 2))
                ys.append(agg["success_rate"])
                err_lo.append(max(0.0, agg["success_rate"] - agg["ci95"][0]))
                err_hi.append(max(0.0, agg["ci95"][1] - agg["success_rate"]))
            if xs:
                ax.errorbar(xs, ys, yerr=[err_lo, err_hi], capsize=3, label=label, **style)
        ax.set_title(policy)
        ax.set_xticks(x, levels)
        ax.set_xlabel("DR level")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success rate (Wilson 95% CI)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / fig.get_figwidth(), 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
