"""The static world-model report: one self-contained HTML file (images inline, plots inline SVG).

Sections: open-loop rows (true / imagined / error, with the step where imagination starts marked and the
horizon stated); error over horizon against copy-last-frame and the decoder-only ceiling (and shuffled
actions); a counterfactual sweep from one start frame (+-x, +-y, +-z, gripper); sim vs imagined videos per
camera, each ensemble member beside the sim, tagged success / failure with the step where they diverge
(`viz.judge`); the model-vs-sim success scatter with its correlations and the policy ranking with 95%
intervals; and any warnings (e.g. a horizon longer than the training episodes).
"""

from __future__ import annotations

import html
import logging
import math
from pathlib import Path

import numpy as np
import torch

from world_model.data import WMEpisode, window_indices
from world_model.imagine import open_loop
from world_model.evaluate import choose_starts
from world_model.metrics import psnr
from world_model.model import WorldModel
from world_model.viz.images import error_map, grid, png_b64, svg_inline, upscale
from world_model.viz.judge import JUDGE_CSS, VIDEOS_NOTE, ranking_plot, rollout_videos_html

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.note{color:#555;font-size:13px}.warn{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px;margin:8px 0}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
.row{display:flex;align-items:stretch;gap:8px;margin:6px 0}.labels{display:flex;flex-direction:column;
justify-content:space-around;font-size:12px;color:#444;text-align:right;min-width:64px}
.row img{max-width:calc(100% - 80px);height:auto}img.sweep{max-width:100%;height:auto}
.plots{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.plots figure{margin:0}
""" + JUDGE_CSS


def _rollout_rows(model: WorldModel, episodes: list[WMEpisode], horizon: int, num_rows: int, seed: int) -> list[dict]:
    starts = [s for s in choose_starts(episodes, 3, horizon, seed) if s[1] > 0] or choose_starts(episodes, 1, horizon, seed)
    rng = np.random.default_rng(seed)
    pick = [starts[i] for i in sorted(rng.choice(len(starts), size=min(num_rows, len(starts)), replace=False))]
    res = open_loop(model, episodes, pick, horizon)
    h = model.config.history
    cam = model.cameras[0]
    rows = []
    for k, (ei, t0) in enumerate(pick):
        ep = episodes[ei]
        ctx_idx = window_indices(len(ep), t0 - h + 1, h)
        fut = np.arange(t0 + 1, t0 + horizon + 1)
        valid = fut < len(ep)
        pred = model.decode(torch.from_numpy(res["pred"][k]).float(), proprio=res["pred_proprio"][k])[cam]
        recon = model.decode(torch.from_numpy(ep.latents[ctx_idx]).float(), proprio=ep.norm_proprio[ctx_idx])[cam]
        true_row = [ep.frames[cam][i] for i in ctx_idx] + [ep.frames[cam][t] if v else None for t, v in zip(fut, valid)]
        pred_row = list(recon) + [pred[j] if valid[j] else None for j in range(horizon)]
        err_row = [None] * h + [error_map(pred[j], ep.frames[cam][fut[j]]) if valid[j] else None for j in range(horizon)]
        img = grid([[upscale(f, 2) if f is not None else None for f in r] for r in (true_row, pred_row, err_row)],
                   marks={h: (220, 30, 30)})
        psnrs = [psnr(pred[j], ep.frames[cam][fut[j]]) for j in range(horizon) if valid[j]]
        rows.append({"episode": ep.metadata.episode_id, "t0": int(t0), "img": png_b64(img), "psnr": psnrs,
                     "context": [int(i) for i in ctx_idx], "camera": cam})
    return rows


def counterfactual_sweep(model: WorldModel, ep: WMEpisode, t0: int, steps: int = 6) -> list[tuple[str, str]]:
    """Constant +-x, +-y, +-z and gripper actions from one start frame; returns [(row label, PNG data URI)]."""
    st = model.statistics.action
    mag = np.maximum(np.abs(st.q01), np.abs(st.q99))
    rows = []
    grip0 = float(ep.action[t0, 6])
    variants = []
    for d, name in enumerate("xyz"):
        for sign in (1, -1):
            a = np.zeros(7, np.float32)
            a[d] = sign * mag[d]
            a[6] = grip0
            variants.append((f"{'+' if sign > 0 else '-'}{name}", a))
    for g, name in ((0.0, "close"), (1.0, "open")):
        a = np.zeros(7, np.float32)
        a[6] = g
        variants.append((f"gripper {name}", a))
    cam = model.cameras[0]
    st0 = model.start_state(ep, t0)
    start = model.decode(st0.latents[:, -1], proprio=st0.proprio[:, -1])[cam][0]
    for name, a in variants:
        state = model.start_state(ep, t0)
        frames = [start]
        for _ in range(steps):
            state, out = model.step(state, a[None])
            frames.append(model.decode(out.latents, proprio=out.norm_proprio)[cam][0])
        rows.append((f"{name} ({', '.join(f'{v:+.3g}' for v in a[:3])}; g={a[6]:.0f})",
                     png_b64(grid([[upscale(f, 2) for f in frames]], marks={1: (220, 30, 30)}))))
    return rows


def error_plot(open_loop_res: dict) -> str:
    """Latent MSE and PSNR over the horizon with the baselines, as inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hz = np.arange(1, open_loop_res["horizon"] + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    shared = (("model", "world model", "-o"), ("copy_last", "copy last frame", "--s"))
    _curves(a1, hz, open_loop_res["latent_mse"], (*shared, ("shuffled_actions", "model, shuffled actions", ":^")),
            "latent MSE (normalized)")
    _curves(a2, hz, open_loop_res["pixel_psnr"], (*shared, ("decoder_ceiling", "decoder-only ceiling", ":d")),
            "PSNR (dB, higher is better)")
    fig.tight_layout()
    return svg_inline(fig)


def _curves(ax, hz: np.ndarray, series: dict, lines, ylabel: str) -> None:
    """One panel of `error_plot`: a curve over the horizon per (key, label, style); None values are gaps."""
    for key, label, style in lines:
        ax.plot(hz, [np.nan if v is None else v for v in series[key]], style, label=label)
    ax.set_xlabel("horizon (steps)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _fmt_share(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _fmt(x, digits: int = 2) -> str:
    """A figure that may be missing (null in JSON, NaN: e.g. a rank correlation of constant success rates)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _fmt_ci(d: dict) -> str:
    return f"{_fmt(d.get('value'))} [{_fmt(d.get('low'))}, {_fmt(d.get('high'))}]"


def scatter_plot(closed: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(closed["policies"])
    x = [closed["policies"][n]["sim_success"] for n in names]
    y = [closed["policies"][n]["model_success"] for n in names]
    fig, ax = plt.subplots(figsize=(5, 4.6))
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--")
    if closed.get("members", 1) > 1:  # an ensemble: each member's own rate in grey, their mean in blue
        for n, xi in zip(names, x):
            ms = closed["policies"][n]["member_success"]
            ax.scatter([xi] * len(ms), ms, s=12, color="#aaa", zorder=2)
    ax.scatter(x, y, s=40, color="#1f77b4", zorder=3)
    for n, xi, yi in zip(names, x, y):
        ax.annotate(n, (xi, yi), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("success in sim")
    ax.set_ylabel("success in the world model")
    ag = closed.get("agreement")
    if ag:
        ax.set_title(f"Pearson {_fmt_ci(ag['pearson'])}\nSpearman {_fmt_ci(ag['spearman'])}  MMRV {ag['mmrv']['value']:.3f}",
                     fontsize=9)
    ax.grid(alpha=0.3)
    return svg_inline(fig)


def build_report(model: WorldModel, episodes: list[WMEpisode], output: str | Path, *, eval_results: dict | None = None,
                 horizon: int = 8, num_rows: int = 3, seed: int = 0, title: str = "World-model report",
                 checkpoint: str = "") -> Path:
    """Write the report; returns its path. `eval_results` is what `wm-eval` returns (open and closed loop)."""
    from world_model.evaluate import evaluate_open_loop

    model.prepare(episodes)
    warnings = list((eval_results or {}).get("warnings", []))
    if model.max_episode_length and horizon > model.max_episode_length:
        warnings.append(f"horizon {horizon} is longer than the longest training episode ({model.max_episode_length} "
                        "steps): predictions past it are extrapolation")
    ol = (eval_results or {}).get("open_loop") or evaluate_open_loop(model, episodes, horizon=horizon, seed=seed,
                                                                      starts_per_episode=2, pixel_samples=16)
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='note'>checkpoint {html.escape(checkpoint or '(in memory)')} &middot; cameras "
             f"{', '.join(model.cameras)} &middot; history {model.config.history} steps &middot; trained rollout "
             f"{model.train_rollout_steps} steps &middot; longest training episode {model.max_episode_length} steps</p>"]
    for w in warnings:
        parts.append(f"<div class='warn'>Warning: {html.escape(w)}</div>")

    parts.append(f"<h2>Open loop: true / imagined / error</h2><p class='note'>Each block: the first "
                 f"{model.config.history} columns are the observed history (imagined row: its reconstruction); the red "
                 f"bar marks where imagination starts; then {horizon} steps predicted from the recorded actions alone "
                 f"(open loop, not one-step). Camera: {html.escape(model.cameras[0])}.</p>")
    for r in _rollout_rows(model, episodes, horizon, num_rows, seed):
        ps = ", ".join(f"{p:.1f}" for p in r["psnr"])
        parts.append(f"<div><b>{html.escape(r['episode'])}</b>, imagination from step {r['t0']} (history steps "
                     f"{r['context']}), horizon {horizon}; PSNR per step: {ps} dB</div>"
                     f"<div class='row'><div class='labels'><span>true</span><span>imagined</span>"
                     f"<span>error</span></div><img class='pix openloop' alt='open-loop rollout' src='{r['img']}'></div>")

    s = ol["summary"]
    parts.append("<h2>Error over horizon</h2>" + error_plot(ol))
    parts.append(
        f"<p class='note'>{ol['num_rollouts']} rollouts on {ol['num_episodes']} held-out episodes. At horizon {horizon}: "
        f"latent error {s[f'latent_ratio_vs_copy_last_h{horizon}']:.2f}x copy-last; shuffled actions "
        f"{s[f'shuffle_ratio_h{horizon}']:.2f}x the true-action error; PSNR {s[f'psnr_model_h{horizon}']:.1f} dB (copy last "
        f"{s[f'psnr_copy_last_h{horizon}']:.1f}, decoder ceiling {s[f'psnr_decoder_ceiling_h{horizon}']:.1f}).</p>"
        if ol.get("horizon") == horizon else "")

    ep = max(episodes, key=len)
    t0 = min(len(ep) // 3, len(ep) - 1)
    parts.append(f"<h2>Counterfactual sweep</h2><p class='note'>From step {t0} of {html.escape(ep.metadata.episode_id)}, "
                 "each row holds one constant action (dx, dy, dz; gripper) for 6 imagined steps; the first column is "
                 "the start frame, the red bar marks where imagination starts.</p>")
    for label, img in counterfactual_sweep(model, ep, t0):
        parts.append(f"<div class='row'><div class='labels' style='width:260px'>{html.escape(label)}</div>"
                     f"<img class='pix sweep' alt='counterfactual {html.escape(label)}' src='{img}'></div>")

    closed = (eval_results or {}).get("closed_loop")
    if closed:
        parts.append(f"<h2>Sim vs imagined</h2><p class='note'>{VIDEOS_NOTE}</p>"
                     f"<div id='videos'>{rollout_videos_html(closed, model.cameras)}</div>")
        parts.append("<h2>Policy success: model vs sim</h2><div class='plots'><figure id='scatter'>"
                     f"{scatter_plot(closed)}</figure><figure id='ranking'>{ranking_plot(closed)}</figure></div>")
        members = closed.get("members", 1)
        each = lambda p: (f"<td>{' / '.join(f'{v:.2f}' for v in p['member_success'])}</td>"  # noqa: E731
                          if members > 1 else "")
        rows = "".join(f"<tr><td style='text-align:left'>{html.escape(n)}</td><td>{p['sim_success']:.2f}</td>"
                       f"<td>{p['model_success']:.2f}</td>{each(p)}<td>{p['model_success'] - p['sim_success']:+.2f}</td>"
                       f"<td>{_fmt_share(p.get('actions_out_of_range'))}</td></tr>"
                       for n, p in closed["policies"].items())
        ag = closed.get("agreement", {})
        extra = ""
        if ag:
            extra = (f"<p>Pearson {_fmt_ci(ag['pearson'])}, Spearman {_fmt_ci(ag['spearman'])}, Kendall "
                     f"{_fmt_ci(ag['kendall'])}, MMRV {_fmt_ci(ag['mmrv'])}, bias (model - sim) {ag['bias']:+.3f}; "
                     f"95% bootstrap intervals over {ag['n']} policies.</p>")
        if members > 1:
            alone = ", ".join(f"{_fmt(m['spearman']['value'])} / {_fmt(m['mmrv']['value'], 3)}"
                              for m in closed.get("member_agreement", []))
            extra += (f"<p>Ensemble of {members} world models: the model column is their mean success rate, the "
                      f"members column each one's own. The members disagree on "
                      f"{100 * closed['member_disagreement']:.0f}% of the episodes: no single model's verdict on "
                      f"those is to be trusted. Each member alone, Spearman / MMRV: {alone}.</p>")
        extra += ("<p>Actions outside training range: the share of a policy's imagined steps whose action lies outside "
                  "the range of the actions the model was trained on. No data shows what such an action does, so the "
                  "model's verdict on that policy is extrapolation to that extent.</p>")
        parts.append("<table><tr><th>policy</th><th>sim</th><th>model</th>"
                     + ("<th>members</th>" if members > 1 else "") + "<th>bias</th>"
                     f"<th>actions outside training range</th></tr>{rows}</table>{extra}")

    doc = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>" + _CSS
           + "</style></head><body>" + "\n".join(parts) + "</body></html>")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(doc)
    tmp.replace(out)
    logger.info("report: %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
