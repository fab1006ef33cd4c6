"""Metrics of world-model quality: image error (MSE, PSNR, SSIM) and sim-vs-model policy agreement.

- `psnr`, `ssim`: per image pair on uint8 or [0, 1] images; SSIM is Wang et al. 2004 with an 11-tap
  Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, averaged over channels (as skimage with
  `gaussian_weights=True`).
- `mmrv`: mean maximum rank violation (SIMPLER, Li et al. 2024): for each policy i, the largest sim-success
  gap |r_i - r_j| over policies j that the model orders the other way round, averaged over i.
- `correlations`: Pearson, Spearman and Kendall with percentile-bootstrap 95% intervals over policies.
"""

from __future__ import annotations

import math

import numpy as np


def _to_float(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    return img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error in [0, 1] pixel units (uint8 inputs are scaled)."""
    return float(np.mean((_to_float(a) - _to_float(b)) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio (dB) for [0, 1] (or uint8) images; inf for identical images."""
    m = mse(a, b)
    return math.inf if m == 0 else float(10 * math.log10(max_value**2 / m))


def _gaussian_filter(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """Separable Gaussian blur over axes 0 and 1 with 'valid' borders."""
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    n = 2 * radius + 1
    h, w = x.shape[:2]
    if h < n or w < n:
        raise ValueError(f"SSIM needs images of at least {n}x{n} pixels, got {h}x{w}")
    y = sum(k[i] * x[i : h - n + 1 + i] for i in range(n))
    return sum(k[i] * y[:, i : w - n + 1 + i] for i in range(n))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two (H, W, 3) or (H, W) images (uint8 or [0, 1]); 1 for identical."""
    x, y = _to_float(a), _to_float(b)
    if x.shape != y.shape:
        raise ValueError(f"SSIM of images of different shapes {x.shape} and {y.shape}")
    c1, c2 = (0.01) ** 2, (0.03) ** 2
    mx, my = _gaussian_filter(x), _gaussian_filter(y)
    sxx = _gaussian_filter(x * x) - mx * mx
    syy = _gaussian_filter(y * y) - my * my
    sxy = _gaussian_filter(x * y) - mx * my
    # skimage's unbiased-covariance correction for a Gaussian window is omitted: it is < 1% here.
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def image_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """MSE, PSNR and SSIM of one image pair."""
    return {"mse": mse(pred, true), "psnr": psnr(pred, true), "ssim": ssim(pred, true)}


def mmrv(sim: np.ndarray, model: np.ndarray) -> float:
    """Mean maximum rank violation between sim (reference) and model success rates (0 = same order)."""
    r, p = np.asarray(sim, float), np.asarray(model, float)
    if r.shape != p.shape or r.ndim != 1 or len(r) < 2:
        raise ValueError(f"mmrv needs two equal-length 1-D arrays of >= 2 policies, got {r.shape} and {p.shape}")
    violation = (r[:, None] < r[None, :]) != (p[:, None] < p[None, :])
    gaps = np.abs(r[:, None] - r[None, :]) * violation
    return float(gaps.max(1).mean())


def _corr(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from scipy import stats

    if np.std(x) == 0 or np.std(y) == 0:
        return {"pearson": math.nan, "spearman": math.nan, "kendall": math.nan}
    return {
        "pearson": float(stats.pearsonr(x, y)[0]),
        "spearman": float(stats.spearmanr(x, y)[0]),
        "kendall": float(stats.kendalltau(x, y)[0]),
    }


def correlations(sim, model, *, bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Pearson / Spearman / Kendall between per-policy sim and model success, with bootstrap intervals.

    Returns {"pearson": {"value", "low", "high"}, "spearman": ..., "kendall": ..., "mmrv": {...},
    "bias": mean(model - sim), "n": number of policies}. Resamples policies with replacement;
    degenerate resamples (constant) are skipped; NaN when the data are constant.
    """
    x, y = np.asarray(sim, float), np.asarray(model, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"need >= 3 policies with sim and model success each, got {x.shape} and {y.shape}")
    point = _corr(x, y)
    point["mmrv"] = mmrv(x, y)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(bootstrap):
        idx = rng.integers(0, len(x), len(x))
        xs, ys = x[idx], y[idx]
        if np.std(xs) == 0 or np.std(ys) == 0:
            continue
        for k, v in _corr(xs, ys).items():
            if not math.isnan(v):
                samples[k].append(v)
        samples["mmrv"].append(mmrv(xs, ys))
    lo_q, hi_q = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100
    out = {}
    for k, v in point.items():
        s = np.asarray(samples[k])
        out[k] = {"value": v, "low": float(np.percentile(s, lo_q)) if len(s) else math.nan,
                  "high": float(np.percentile(s, hi_q)) if len(s) else math.nan}
    out["bias"] = float(np.mean(y - x))
    out["n"] = int(len(x))
    return out
