"""The world model as a policy judge, shown: sim and imagined rollouts per camera, and the policy ranking.

Used by both the static report (`report.py`) and the localhost page (`server.py`), so they show the same
thing. Input: the "closed_loop" entry of a `wm-eval` result (`world_model.closed_loop.compare_policies`).

- `rollout_videos_html`: for each recorded episode, one animated GIF per camera with sim | imagined side by
  side (sim | member 0 | member 1 ... for an ensemble). From the step where a member's rollout departs from
  the sim (`world_model.viz.divergence`) its panel has a red border; a rollout that has ended is greyed.
- `ranking_plot`: per policy, sim and imagined success with 95% Wilson intervals over its episodes (and each
  ensemble member's), policies sorted by sim success.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from world_model.viz.divergence import Divergence, divergence
from world_model.viz.images import gif_b64, svg_inline, upscale

_RED = np.array([220, 30, 30], np.uint8)
_HEADER = 14  # pixels of label strip above the panels
_Z95 = 1.959963984540054


def members_of(video: dict) -> list[dict]:
    """The imagined frames of each member of a recorded episode (a single model: just its frames)."""
    return list(video.get("members") or [video["model"]])


def _member_success(video: dict) -> list[bool]:
    return list(video.get("member_success") or [video["model_success"]])


def _pad(frames: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Frames repeated at their last one up to n; returns them and how many were real."""
    real = len(frames)
    if real < n:
        frames = np.concatenate([frames, np.repeat(frames[-1:], n - real, 0)])
    return frames, real


def _panel(frames: np.ndarray, n: int, size: int, mark_from: int | None) -> np.ndarray:
    """(n, size, size, 3): upscaled, greyed after the rollout ends, a red border from `mark_from` on."""
    if frames.shape[1] != size:
        if size % frames.shape[1] == 0:
            frames = np.stack([upscale(f, size // frames.shape[1]) for f in frames])
        else:
            from world_model.data import resize_frames

            frames = resize_frames(frames, size)
    out, real = _pad(frames.copy(), n)
    out[real:] = (out[real:].astype(np.uint16) + 2 * 235) // 3  # ended: faded towards grey
    if mark_from is not None and mark_from < n:
        b = max(2, size // 40)
        out[mark_from:, :b], out[mark_from:, -b:], out[mark_from:, :, :b], out[mark_from:, :, -b:] = (_RED,) * 4
    return out


def _headers(labels: list[str], marks: list[int | None], n: int, size: int, gap: int) -> np.ndarray:
    """(n, _HEADER, width, 3) label strips: each panel's name, the step, a member's name red once diverged."""
    from PIL import Image, ImageDraw

    width = len(labels) * size + (len(labels) - 1) * gap
    out = []
    for t in range(n):
        img = Image.new("RGB", (width, _HEADER), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        for j, (label, mark) in enumerate(zip(labels, marks)):
            diverged = mark is not None and t >= mark
            text = f"{label} t={t}" if j == 0 else label + (" diverged" if diverged else "")
            draw.text((j * (size + gap) + 2, 1), text, fill=(200, 20, 20) if diverged else (40, 40, 40))
        out.append(np.asarray(img))
    return np.stack(out)


def side_by_side(sim: np.ndarray, imagined: Sequence[np.ndarray], marks: Sequence[int | None], *,
                 labels: Sequence[str] | None = None, height: int = 128, gap: int = 4) -> np.ndarray:
    """One camera's frames: sim | imagined[0] | imagined[1] ... as uint8 (T, header + height, W, 3)."""
    n = max(len(sim), *(len(f) for f in imagined))
    size = max(height // sim.shape[1], 1) * sim.shape[1] if sim.shape[1] <= height else height
    panels = [_panel(sim, n, size, None)] + [_panel(f, n, size, m) for f, m in zip(imagined, marks)]
    sep = np.full((n, size, gap, 3), 255, np.uint8)
    body = np.concatenate([x for p in panels for x in (p, sep)][:-1], axis=2)
    names = list(labels) if labels else ["sim"] + (["imagined"] if len(imagined) == 1 else
                                                    [f"member {k}" for k in range(len(imagined))])
    return np.concatenate([_headers(names, [None, *marks], n, size, gap), body], axis=1)


def _badge(ok: bool) -> str:
    return f"<span class='badge {'ok' if ok else 'fail'}'>{'success' if ok else 'failure'}</span>"


def video_divergences(video: dict) -> list[Divergence]:
    """Each member's divergence from the sim for one recorded episode."""
    return [divergence(video["sim"], m, successes=(video["sim_success"], ok))
            for m, ok in zip(members_of(video), _member_success(video))]


def rollout_videos_html(closed: dict, cameras: Sequence[str] | None = None) -> str:
    """Every recorded episode: badges, each member's divergence step, and one GIF per camera (rows)."""
    parts = []
    for v in closed.get("videos", []):
        if not isinstance(v.get("sim"), dict) or not v["sim"]:  # the videos' .npz was not found / nothing recorded
            continue
        mems, oks = members_of(v), _member_success(v)
        divs = video_divergences(v)
        names = ["imagined"] if len(mems) == 1 else [f"member {k}" for k in range(len(mems))]
        badges = " ".join(f"{n} {_badge(ok)}" for n, ok in zip(names, oks))
        caps = "".join(f"<div class='divergence'>{n}: "
                       + (f"<b>diverges at step {d.step}</b>" if d.step is not None else "<b>no divergence</b>")
                       + f" ({html.escape(d.reason)})</div>" for n, d in zip(names, divs))
        rows = []
        for cam in cameras or list(v["sim"]):
            if cam not in v["sim"] or any(cam not in m for m in mems):
                continue
            gif = gif_b64(side_by_side(v["sim"][cam], [m[cam] for m in mems], [d.step for d in divs]))
            rows.append(f"<div class='camrow'><span class='cam'>{html.escape(cam)}</span>"
                        f"<img class='video pix' data-camera='{html.escape(cam)}' alt='sim vs imagined, "
                        f"{html.escape(cam)}' src='{gif}'></div>")
        parts.append(f"<div class='vid'><div>{html.escape(v['policy'])}, seed {v['seed']}: sim "
                     f"{_badge(v['sim_success'])} {badges}</div>{caps}{''.join(rows)}</div>")
    return "\n".join(parts)


def wilson_bounds(rate: float, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval at a success rate over n episodes, for a rate that need not be k/n.

    Equals `vla.core.intervals.wilson_interval(k, n)` at rate k/n (tested). An ensemble's imagined success is
    the mean over members of per-episode verdicts in [0, 1]; their variance is at most rate * (1 - rate), so
    the interval over the n episodes (not n * members: the members share the initial states) is conservative.
    """
    if n <= 0:
        return 0.0, 1.0
    d = 1 + z * z / n
    c = (rate + z * z / (2 * n)) / d
    h = z * math.sqrt(max(rate * (1 - rate), 0.0) / n + z * z / (4 * n * n)) / d
    return (0.0 if rate <= 0 else max(0.0, c - h)), (1.0 if rate >= 1 else min(1.0, c + h))


def _count(verdicts: Sequence[bool]) -> dict:
    from vla.core.intervals import wilson_interval

    k, n = int(np.sum(verdicts)), len(verdicts)
    lo, hi = wilson_interval(k, n)
    return {"value": k / n if n else float("nan"), "low": lo, "high": hi}


def ranking_rows(closed: dict) -> list[dict]:
    """Per policy, sorted by sim success (best first): {"policy", "episodes", "sim", "model", "members"}, each
    rate as {"value", "low", "high"} (95% Wilson over the policy's episodes); "members" only for an ensemble."""
    rows = []
    for name, p in closed["policies"].items():
        n = len(p["sim"])
        row = {"policy": name, "episodes": n, "sim": _count(p["sim"]), "members": []}
        if p.get("member_model"):
            row["members"] = [_count(m) for m in p["member_model"]]
            lo, hi = wilson_bounds(p["model_success"], n)
            row["model"] = {"value": p["model_success"], "low": lo, "high": hi}
        else:
            row["model"] = _count(p["model"])
        rows.append(row)
    return sorted(rows, key=lambda r: -r["sim"]["value"])  # stable: ties keep the evaluation's order


def ranking_plot(closed: dict) -> str:
    """Policies (rows, best sim success on top): sim and imagined success with 95% Wilson intervals; an
    ensemble's members as small grey dots with their own intervals. Inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ranking_rows(closed)
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.55 * len(rows)))
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        series = [("sim", r["sim"], y + 0.18, "s", "#333", 6), ("world model", r["model"], y - 0.05, "o", "#1f77b4", 6)]
        series += [("members" if k == 0 else None, m, y - 0.2 - 0.08 * k, ".", "#999", 4)
                   for k, m in enumerate(r["members"])]
        for label, s, yy, marker, color, size in series:
            ax.errorbar([s["value"]], [yy], xerr=[[s["value"] - s["low"]], [s["high"] - s["value"]]], fmt=marker,
                        color=color, ms=size, capsize=2, lw=1, label=label if i == 0 else None)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['policy']} (n={r['episodes']})" for r in rows][::-1], fontsize=8)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.7, len(rows) - 0.4)
    ax.set_xlabel("success rate (95% Wilson interval)")
    ax.set_title("Ranking: policies by sim success (top = best)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.8)
    return svg_inline(fig)


JUDGE_CSS = """
.vid{display:inline-block;margin:8px 16px 12px 0;vertical-align:top}.camrow{display:flex;align-items:center;gap:6px}
.cam{font-size:12px;color:#444;min-width:52px;text-align:right}.divergence{font-size:12px;color:#333}
.badge{display:inline-block;padding:1px 8px;border-radius:8px;font-size:12px;color:#fff}
.ok{background:#2a9d4b}.fail{background:#c0392b}img.pix{image-rendering:pixelated}
"""

VIDEOS_NOTE = ("Same initial state and policy, every camera a row: left the sim, then the world model (each member "
               "of an ensemble); the policy acts on the decoded frames. A red border marks the step from which the "
               "imagined rollout departs from the sim: for two steps its mean pixel error stays above twice that of "
               "the first imagined step (and above 0.01) or above a flat frame's; else where one rollout ends before "
               "the other, or at the last step when only one judged the task solved. A greyed panel has ended.")


def judge_html(closed: dict, cameras: Sequence[str] | None = None) -> str:
    """The ranking chart and the sim-vs-imagined videos, as one HTML fragment (styles in `JUDGE_CSS`)."""
    return (f"<h2>Policy ranking: sim vs imagined</h2><figure id='ranking' class='ranking'>{ranking_plot(closed)}"
            "</figure><h2>Sim vs imagined</h2>"
            f"<p class='note'>{VIDEOS_NOTE}</p><div id='videos'>{rollout_videos_html(closed, cameras)}</div>")
