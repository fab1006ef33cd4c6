"""Open-loop evaluation on held-out episodes: error per horizon against both baselines.

For start steps spread over each episode the model predicts `horizon` steps from the recorded actions.
Per horizon step we report
  - latent MSE of the model, of copy-last-frame (the start latent held constant) and of the model with
    shuffled actions (another rollout's actions: if the model uses actions, this must be clearly worse);
  - pixel MSE / PSNR / SSIM (at the model's resolution, averaged over cameras) of the decoded prediction,
    of copy-last-frame (the true start frame) and of the decoder-only ceiling (the true latent decoded:
    no dynamics error, only the autoencoder's).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from world_model.data import WMEpisode, window_indices
from world_model.imagine import open_loop
from world_model.metrics import image_metrics
from world_model.model import WorldModel

logger = logging.getLogger(__name__)


def choose_starts(episodes: list[WMEpisode], per_episode: int, horizon: int, seed: int = 0) -> list[tuple[int, int]]:
    """Start steps spread over each episode such that at least one future step exists."""
    rng = np.random.default_rng(seed)
    starts = []
    for i, e in enumerate(episodes):
        last = len(e) - 2
        if last < 0:
            continue
        hi = max(last - horizon + 1, 0)
        cands = np.unique(np.linspace(0, hi, per_episode).round().astype(int)) if hi > 0 else np.array([0])
        if len(cands) < per_episode and last > 0:
            cands = np.unique(np.concatenate([cands, rng.integers(0, last + 1, per_episode - len(cands))]))
        starts += [(i, int(t)) for t in cands[:per_episode]]
    if not starts:
        raise ValueError("no episode has at least 2 steps; open-loop evaluation needs transitions")
    return starts


def _masked_mean(err: np.ndarray, valid: np.ndarray) -> list[float]:
    """err (S, H), valid (S, H) -> mean over valid rollouts per horizon step (NaN where none)."""
    out = []
    for h in range(err.shape[1]):
        m = valid[:, h]
        out.append(float(err[m, h].mean()) if m.any() else float("nan"))
    return out


@torch.no_grad()
def evaluate_open_loop(model: WorldModel, episodes: list[WMEpisode], *, horizon: int = 8, starts_per_episode: int = 4,
                       seed: int = 0, pixel_samples: int = 64) -> dict:
    """Per-horizon open-loop errors (see the module docstring). Returns a JSON-friendly dict."""
    model.prepare(episodes)
    starts = choose_starts(episodes, starts_per_episode, horizon, seed)
    res = open_loop(model, episodes, starts, horizon)
    shuf = open_loop(model, episodes, starts, horizon, shuffle_actions=True, rng=np.random.default_rng(seed + 1))
    valid = res["valid"]
    lat = ((res["pred"] - res["true"]) ** 2).mean((-1, -2))  # (S, H)
    lat_copy = ((res["last"][:, None] - res["true"]) ** 2).mean((-1, -2))
    lat_shuf = ((shuf["pred"] - res["true"]) ** 2).mean((-1, -2))
    out = {
        "horizon": horizon, "num_rollouts": len(starts), "num_episodes": len(episodes),
        "latent_mse": {"model": _masked_mean(lat, valid), "copy_last": _masked_mean(lat_copy, valid),
                       "shuffled_actions": _masked_mean(lat_shuf, valid)},
    }
    # Pixel metrics on a subset of rollouts (decoding + SSIM cost).
    rng = np.random.default_rng(seed + 2)
    pick = np.sort(rng.choice(len(starts), size=min(pixel_samples, len(starts)), replace=False))
    names = ("model", "copy_last", "decoder_ceiling")
    acc = {m: {n: np.full((len(pick), horizon), np.nan) for n in names} for m in ("mse", "psnr", "ssim")}
    for row, si in enumerate(pick):
        ei, t0 = starts[si]
        ep = episodes[ei]
        pred = model.decode(torch.from_numpy(res["pred"][si]).float(), proprio=res["pred_proprio"][si])
        ceil = model.decode(torch.from_numpy(res["true"][si]).float(), proprio=res["true_proprio"][si])
        for h in range(horizon):
            if not valid[si, h]:
                continue
            t = t0 + 1 + h
            for c in model.cameras:
                true = ep.frames[c][t]
                cands = {"model": pred[c][h], "copy_last": ep.frames[c][t0], "decoder_ceiling": ceil[c][h]}
                for n, img in cands.items():
                    for m, v in image_metrics(img, true).items():
                        cur = acc[m][n][row, h]
                        acc[m][n][row, h] = v / len(model.cameras) if np.isnan(cur) else cur + v / len(model.cameras)
    for m in ("mse", "psnr", "ssim"):
        out[f"pixel_{m}"] = {}
        for n in names:
            a = np.where(np.isinf(acc[m][n]), 60.0, acc[m][n])  # identical frames: cap PSNR at 60 dB
            out[f"pixel_{m}"][n] = [float(np.nanmean(a[:, h])) if np.any(~np.isnan(a[:, h])) else float("nan")
                                    for h in range(horizon)]
    lm, lc, ls = out["latent_mse"]["model"][-1], out["latent_mse"]["copy_last"][-1], out["latent_mse"]["shuffled_actions"][-1]
    out["summary"] = {
        f"latent_ratio_vs_copy_last_h{horizon}": lm / lc if lc > 0 else float("nan"),
        f"shuffle_ratio_h{horizon}": ls / lm if lm > 0 else float("nan"),
        f"psnr_model_h{horizon}": out["pixel_psnr"]["model"][-1],
        f"psnr_copy_last_h{horizon}": out["pixel_psnr"]["copy_last"][-1],
        f"psnr_decoder_ceiling_h{horizon}": out["pixel_psnr"]["decoder_ceiling"][-1],
    }
    logger.info("open loop: %s", out["summary"])
    return out


@torch.no_grad()
def evaluate_long_horizon(model: WorldModel, episodes: list[WMEpisode], *, horizon: int = 25,
                          success_threshold: float = 0.5) -> dict:
    """Open loop from the first step of each held-out episode with its recorded actions, as far as it goes.

    The closed-loop ranking decides success near the end of long episodes, so this measures what decides it
    there, on episodes that are not the ranking's: per horizon step the proprio error in raw units (mean
    absolute error over dimensions, and the Euclidean error of the first three, the position), and per
    episode whether the success head fires (calibrated probability >= `success_threshold` after any of the
    episode's actions) as the episode's recorded outcome says (per episode in "imagined_success" and
    "recorded_success", e.g. to combine an ensemble's verdicts). Returns a JSON-friendly dict.
    """
    model.prepare(episodes)
    steps = min(horizon, max(len(e) for e in episodes))
    # From step 0 of every episode (the context repeats step 0 and its action, as `start_state` at step 0).
    res = open_loop(model, episodes, [(i, 0) for i in range(len(episodes))], steps)
    pred_p = model.unnorm_proprio(res["pred_proprio"])  # (E, S, P) raw units
    probs = model.success_probability(torch.from_numpy(res["success_logit"]))  # (E, S)
    raw = np.arange(1, steps + 1)
    true_p = np.stack([ep.proprio[window_indices(len(ep), 1, steps)] for ep in episodes])
    valid = res["valid"]  # a recorded state after action r exists
    act_valid = np.stack([raw - 1 <= len(ep) - 1 for ep in episodes])  # action r exists
    mae = np.abs(pred_p - true_p).mean(-1)
    pos = np.linalg.norm(pred_p[..., :3] - true_p[..., :3], axis=-1)
    fired = (probs >= success_threshold) & act_valid
    imagined = fired.any(1)
    recorded = np.array([bool(e.success[-1]) for e in episodes])
    out = {
        "horizon": steps, "num_episodes": len(episodes),
        "episodes_per_step": valid.sum(0).tolist(),
        "proprio_mae": _masked_mean(mae, valid), "position_error": _masked_mean(pos, valid),
        "success_agreement": float(np.mean(imagined == recorded)),
        "success_false_positives": int(np.sum(imagined & ~recorded)),
        "success_false_negatives": int(np.sum(~imagined & recorded)),
        "recorded_successes": int(recorded.sum()),
        "imagined_success": imagined.tolist(), "recorded_success": recorded.tolist(),  # per episode
    }
    both = imagined & recorded
    if both.any():
        first = fired.argmax(1)
        lengths = np.array([len(e) - 1 for e in episodes])
        out["success_step_error"] = float(np.abs(first[both] - lengths[both]).mean())
    for k in (10, 20, steps):
        if k <= steps:
            out[f"position_error_h{k}"] = out["position_error"][k - 1]
    logger.info("long-horizon open loop: position error h%d %.3f, success agreement %.2f", steps,
                out["position_error"][-1], out["success_agreement"])
    return out
