"""Batches of loader samples: stack per-sample dicts, split batches, convert between numpy and torch.

A collated batch: `images` {cam: (B, ...) uint8}, `action`, `proprio` (and window masks) as (B, ...) arrays,
`step` int64 (B,), and `instruction`, `dataset`, `episode_id` as lists of str.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch


def collate_samples(samples: list[dict], images: dict | None = None) -> dict:
    """Stack per-sample dicts into a batch of numpy arrays (strings stay lists).

    `images`: the batch's image arrays when the samples' frames were already written into them (the loader's
    workers do that to skip a copy); the samples' own images are then views of them and are not stacked."""
    if images is None:
        images = {c: np.stack([s["images"][c] for s in samples]) for c in samples[0]["images"]}
    out: dict[str, Any] = {"images": images}
    for k in ("action", "proprio", "frame_is_pad", "action_is_pad"):
        if k in samples[0]:
            out[k] = np.stack([s[k] for s in samples])
    out["step"] = np.array([s["step"] for s in samples], np.int64)
    for k in ("instruction", "dataset", "episode_id"):
        out[k] = [s[k] for s in samples]
    return out


def _np(v: Any) -> np.ndarray:
    return v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def split_batch(batch: dict, start: int = 0) -> Iterator[dict]:
    """Per-sample dicts (numpy views) from a collated batch (numpy or torch)."""
    arrays = {k: _np(v) for k, v in batch.items() if k != "images" and not isinstance(v, list)}
    images = {c: _np(v) for c, v in batch["images"].items()}
    n = len(batch["instruction"])
    for i in range(start, n):
        s: dict[str, Any] = {"images": {c: v[i] for c, v in images.items()}}
        for k, v in batch.items():
            if k != "images":
                s[k] = v[i] if isinstance(v, list) else arrays[k][i]
        s["step"] = int(s["step"])
        yield s


def to_numpy(batch: dict) -> dict:
    """torch tensors of a collated batch -> numpy arrays (zero copy)."""
    out = {"images": {c: _np(v) for c, v in batch["images"].items()}}
    for k, v in batch.items():
        if k != "images":
            out[k] = v if isinstance(v, list) else _np(v)
    return out


def to_torch(batch: dict) -> dict:
    """numpy arrays of a collated batch -> torch tensors (zero copy)."""
    def t(v: Any) -> Any:
        return torch.from_numpy(v) if isinstance(v, np.ndarray) else v

    out = {"images": {c: t(v) for c, v in batch["images"].items()}}
    for k, v in batch.items():
        if k != "images":
            out[k] = t(v)
    return out
