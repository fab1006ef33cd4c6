"""Confidence intervals of success rates: one home for every report of the project."""

from __future__ import annotations


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's `proportion_ci(method="wilson")`).

    Wilson rather than the normal approximation because success rates here are often 0 or 1 on a few dozen
    episodes, where the normal interval collapses to a point. `n == 0` gives (0, 1): nothing is known.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import binomtest  # imported here: a robot node's start-up should not pay for scipy

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    # At 0 or n successes the bound is exactly 0 or 1; floating point leaves a residue there.
    low = 0.0 if successes == 0 else max(0.0, float(ci.low))
    high = 1.0 if successes == n else min(1.0, float(ci.high))
    return low, high
