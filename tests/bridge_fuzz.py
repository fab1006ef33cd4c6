"""Adversarial policy outputs for the safety tests and `bench/bridge.py` (no command may exceed a limit)."""

from __future__ import annotations

import numpy as np


def fuzz_actions(n: int, seed: int = 0) -> list:
    """Adversarial policy outputs: huge, tiny, NaN/inf, wrong shapes, grippers out of range, chunks."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = i % 8
        scale = 10.0 ** rng.uniform(-4, 1)
        a = rng.normal(0, scale, 7)
        a[6] = rng.uniform(-0.5, 1.5) if kind == 1 else rng.uniform(0, 1)
        if kind == 2:
            a[rng.integers(7)] = rng.choice([np.nan, np.inf, -np.inf])
        elif kind == 3:
            a = rng.normal(0, 0.01, rng.integers(1, 10))
        elif kind == 4:
            a = np.clip(a, -0.2, 0.2)  # inside "out of range" but far above the per-step limits
            a[6] = rng.uniform(0, 1)
        elif kind == 5:
            a = rng.normal(0, 0.02, (int(rng.integers(1, 4)), 7))
            a[:, 6] = rng.uniform(0, 1, a.shape[0])
        out.append(a)
    return out
