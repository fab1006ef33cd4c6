"""Discretize normalized actions into the last `n_bins` token ids of the vocabulary, and back (OpenVLA layout).

Bin edges are `linspace(-1, 1, n_bins)`; encoding clips to [-1, 1], takes `d = digitize(a, edges)` and emits
`end_id - d`, so with OpenVLA's end_id 32000: a=-1 -> 31999, a=0 -> 31872, a=+1 -> 31744 (reversed order).
Decoding maps an id to `bin_centers[clip(end_id - id - 1, 0, n_bins - 2)]`; the round trip error is <= 1/255.
"""

from __future__ import annotations

import numpy as np


class ActionTokenizer:
    """Maps normalized actions in [-1, 1] to token ids and back, exactly as OpenVLA's `ActionTokenizer`."""

    def __init__(self, end_id: int = 32000, n_bins: int = 256) -> None:
        if n_bins < 2 or end_id < n_bins:
            raise ValueError(f"need n_bins >= 2 and end_id >= n_bins, got end_id={end_id}, n_bins={n_bins}")
        self.end_id = int(end_id)
        self.n_bins = int(n_bins)
        self.bins = np.linspace(-1.0, 1.0, self.n_bins)  # float64, as the reference
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0

    @property
    def begin_id(self) -> int:
        """The smallest action token id."""
        return self.end_id - self.n_bins

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Normalized actions (..., D) -> int64 token ids (..., D)."""
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        d = np.digitize(a, self.bins)  # 1..n_bins
        return (self.end_id - d).astype(np.int64)

    def decode(self, token_ids: np.ndarray) -> np.ndarray:
        """Token ids (..., D) -> normalized actions (..., D), float64 bin centers."""
        idx = self.end_id - np.asarray(token_ids, dtype=np.int64) - 1
        idx = np.clip(idx, 0, self.bin_centers.shape[0] - 1)
        return self.bin_centers[idx]

    def is_action_token(self, token_ids: np.ndarray) -> np.ndarray:
        t = np.asarray(token_ids)
        return (t >= self.begin_id) & (t < self.end_id)
