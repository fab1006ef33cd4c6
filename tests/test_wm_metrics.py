"""world_model.metrics: image metrics and sim-vs-model agreement (MMRV, correlations with bootstrap CIs)."""

import math

import numpy as np
import pytest

from world_model.metrics import correlations, image_metrics, mmrv, mse, psnr, ssim


def test_psnr_and_mse_known_values():
    a = np.zeros((16, 16, 3), np.uint8)
    b = np.full((16, 16, 3), 255, np.uint8)
    assert mse(a, b) == pytest.approx(1.0)
    assert psnr(a, b) == pytest.approx(0.0)
    c = np.full((16, 16, 3), 0.1)
    assert psnr(np.zeros_like(c), c) == pytest.approx(20.0)  # MSE 0.01 -> 20 dB
    assert math.isinf(psnr(a, a))


def test_ssim_identity_noise_and_structure():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim(img, img) == pytest.approx(1.0)
    noisy = np.clip(img.astype(int) + rng.normal(0, 40, img.shape), 0, 255).astype(np.uint8)
    s_noisy = ssim(img, noisy)
    assert 0.0 < s_noisy < 0.9
    # A constant image with the same mean keeps luminance but loses all structure.
    flat = np.full_like(img, int(img.mean()))
    assert ssim(img, flat) < s_noisy
    # Matches the closed form for two constant images: (2 mx my + c1) / (mx^2 + my^2 + c1).
    x, y = np.full((16, 16), 0.2), np.full((16, 16), 0.6)
    c1 = 0.01**2
    assert ssim(x, y) == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.04 + 0.36 + c1), rel=1e-6)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
    assert set(image_metrics(img, noisy)) == {"mse", "psnr", "ssim"}


def test_mmrv_definition():
    sim = np.array([0.1, 0.5, 0.9])
    assert mmrv(sim, sim) == 0.0
    assert mmrv(sim, sim * 0.5 + 0.2) == 0.0  # any monotone map keeps the ranking
    # Model swaps policies 1 and 2: each of them has a violation of |0.9 - 0.5| = 0.4; policy 0 none.
    assert mmrv(sim, np.array([0.1, 0.9, 0.5])) == pytest.approx((0 + 0.4 + 0.4) / 3)
    # Fully reversed: policy 0's worst violation is vs 2 (0.8), 1's is 0.4 (vs either), 2's is 0.8.
    assert mmrv(sim, sim[::-1]) == pytest.approx((0.8 + 0.4 + 0.8) / 3)
    with pytest.raises(ValueError, match=">= 2 policies"):
        mmrv([0.5], [0.5])


def test_correlations_with_bootstrap_intervals():
    rng = np.random.default_rng(1)
    sim = np.linspace(0, 1, 10)
    model = np.clip(sim * 0.8 + 0.05 + rng.normal(0, 0.05, 10), 0, 1)
    out = correlations(sim, model, bootstrap=300, seed=0)
    for k in ("pearson", "spearman", "kendall"):
        v = out[k]
        assert 0.8 < v["value"] <= 1.0
        assert v["low"] <= v["value"] <= v["high"] + 1e-12
    assert out["n"] == 10
    assert out["bias"] == pytest.approx(float(np.mean(model - sim)))
    assert out["mmrv"]["value"] < 0.1
    # Anti-correlated policies give negative correlations and a large MMRV.
    bad = correlations(sim, 1 - sim, bootstrap=100)
    assert bad["spearman"]["value"] == pytest.approx(-1.0)
    assert bad["mmrv"]["value"] > 0.5
    # Constant model success: correlation undefined (NaN), not a fake number.
    const = correlations(sim, np.full(10, 0.5), bootstrap=50)
    assert math.isnan(const["pearson"]["value"])
    with pytest.raises(ValueError, match=">= 3 policies"):
        correlations([0.1, 0.2], [0.1, 0.2])


def test_episode_agreement_counts_false_successes_and_failures():
    from world_model.closed_loop import episode_agreement

    res = {"a": {"sim": [True, True, False], "model": [True, False, False]},
           "b": {"sim": [False, False], "model": [True, False]}}
    out = episode_agreement(res)
    assert out == {"episodes": 5, "agreement": 0.6, "model_false_successes": 1, "model_false_failures": 1,
                   "sim_successes": 2, "model_successes": 2,
                   "false_success_rate": pytest.approx(1 / 3), "false_failure_rate": 0.5}  # of 3 sim failures, 2 successes
