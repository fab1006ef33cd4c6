"""Normalization statistics in OpenVLA's `norm_stats` layout, and the BOUNDS_Q99 normalization.

One `DatasetStatistics` per dataset (`unnorm_key`): statistics of the standardized 7-D action and of the
proprio, plus counts. Serialized exactly as OpenVLA's `config.json["norm_stats"][key]`, so released
checkpoints load unchanged and our checkpoints carry their own statistics.

Normalization (OpenVLA / Octo `BOUNDS_Q99`): `clip(2 * (x - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)` where
`mask` is true; untouched where it is false (the absolute gripper); dims with min == max map to 0. Both
directions compute in float64 from the statistics as stored, as the reference does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

_EPS = 1e-8


@dataclass
class ArrayStatistics:
    """Per-dimension statistics of one array feature (action or proprio)."""

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray  # bool: normalize this dim (False for the absolute gripper)

    def __post_init__(self) -> None:
        for name in ("mean", "std", "min", "max", "q01", "q99"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))
        self.mask = np.asarray(self.mask, dtype=bool).reshape(-1)
        dims = {name: getattr(self, name).shape[0] for name in ("mean", "std", "min", "max", "q01", "q99", "mask")}
        if len(set(dims.values())) != 1:
            raise ValueError(f"ArrayStatistics fields disagree on the dimension: {dims}")

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def compute(cls, values: np.ndarray, mask: np.ndarray | None = None) -> "ArrayStatistics":
        """Statistics of `values` (N, D) in one pass over an in-memory array."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] == 0:
            raise ValueError(f"need a non-empty (N, D) array to compute statistics, got shape {values.shape}")
        d = values.shape[1]
        return cls(
            mean=values.mean(0),
            std=values.std(0),
            min=values.min(0),
            max=values.max(0),
            q01=np.quantile(values, 0.01, axis=0),
            q99=np.quantile(values, 0.99, axis=0),
            mask=np.ones(d, bool) if mask is None else mask,
        )

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("mean", "std", "max", "min", "q01", "q99", "mask")}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ArrayStatistics":
        missing = [k for k in ("mean", "std", "max", "min", "q01", "q99") if k not in d]
        if missing:
            raise ValueError(f"statistics dict is missing {missing}; it has {sorted(d)}")
        mask = d.get("mask", [True] * len(d["mean"]))
        return cls(mean=d["mean"], std=d["std"], min=d["min"], max=d["max"], q01=d["q01"], q99=d["q99"], mask=mask)

    def normalize(self, x: np.ndarray, dtype=np.float32) -> np.ndarray:
        """BOUNDS_Q99 normalization to [-1, 1] on masked dims; constant dims map to 0.

        Computed in float64 on `x` as given and the statistics as stored, then returned as `dtype`: the
        reference's arithmetic (OpenVLA-OFT `normalize_proprio`, numpy float64 on the float32 JSON
        statistics). Rounding x or q01 to float32 before subtracting moves the result by up to
        ~ulp(x) / (q99 - q01), 1.5e-5 on LIBERO's proprio (axis-angle near 3.1 within a q01..q99 range of
        a few hundredths).
        """
        x = np.asarray(x, dtype=np.float64)
        self._check_dim(x)
        y = np.clip(2.0 * (x - self.q01) / (self.q99 - self.q01 + _EPS) - 1.0, -1.0, 1.0)
        y = np.where(self.mask, y, x)
        y = np.where(self.min == self.max, 0.0, y)
        return y.astype(dtype)

    def unnormalize(self, y: np.ndarray, dtype=np.float32) -> np.ndarray:
        """Inverse of `normalize` on masked dims (values in [-1, 1]); unmasked dims pass through.

        OpenVLA's un-normalization, computed in float64 and returned as `dtype` (the model's reference
        `predict_action` returns float64, the policy float32). The one copy of the formula in the project.
        """
        y = np.asarray(y, dtype=np.float64)
        self._check_dim(y)
        x = np.where(self.mask, 0.5 * (y + 1.0) * (self.q99 - self.q01) + self.q01, y)
        return x.astype(dtype)

    def _check_dim(self, x: np.ndarray) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(f"array has {x.shape[-1]} dims in its last axis, statistics have {self.dim}")


@dataclass
class DatasetStatistics:
    """Statistics of one dataset: `norm_stats[unnorm_key]` in an OpenVLA config."""

    action: ArrayStatistics
    proprio: ArrayStatistics | None = None
    num_transitions: int = 0
    num_trajectories: int = 0
    extra: dict = field(default_factory=dict)  # e.g. the cache key it was computed under

    def to_dict(self) -> dict:
        d = {"action": self.action.to_dict(), "num_transitions": int(self.num_transitions),
             "num_trajectories": int(self.num_trajectories)}
        if self.proprio is not None:
            d["proprio"] = self.proprio.to_dict()
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "DatasetStatistics":
        if "action" not in d:
            raise ValueError(f"dataset statistics need an 'action' entry; got keys {sorted(d)}")
        extra = {k: v for k, v in d.items() if k not in ("action", "proprio", "num_transitions", "num_trajectories")}
        return cls(
            action=ArrayStatistics.from_dict(d["action"]),
            proprio=ArrayStatistics.from_dict(d["proprio"]) if d.get("proprio") else None,
            num_transitions=int(d.get("num_transitions", 0)),
            num_trajectories=int(d.get("num_trajectories", 0)),
            extra=extra,
        )


def select_statistics(norm_stats: Mapping[str, "DatasetStatistics | Mapping"], unnorm_key: str | None) -> DatasetStatistics:
    """Pick one dataset's statistics; fail clearly (listing the keys) when the choice is missing or ambiguous."""
    keys = sorted(norm_stats)
    if not keys:
        raise KeyError("this checkpoint carries no normalization statistics (norm_stats is empty)")
    if unnorm_key is None:
        if len(keys) > 1:
            raise KeyError(
                f"the checkpoint has statistics for {len(keys)} datasets; pass unnorm_key=one of {keys}"
            )
        unnorm_key = keys[0]
    if unnorm_key not in norm_stats:
        raise KeyError(f"unnorm_key {unnorm_key!r} not in the checkpoint's norm_stats; choose one of {keys}")
    s = norm_stats[unnorm_key]
    return s if isinstance(s, DatasetStatistics) else DatasetStatistics.from_dict(s)
