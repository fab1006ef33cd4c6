"""Batches of loader samples: stack per-sample dicts, split batches, convert between numpy and torch; and the
padding collator for model-ready samples.

A collated batch of raw samples: `images` {cam: (B, ...) uint8}, `action`, `proprio` (and window masks) as
(B, ...) arrays, `step` int64 (B,), and `instruction`, `dataset`, `episode_id` as lists of str.

Model-ready samples (a loader `transform`, e.g. `VLAProcessor.transform`, made them in the workers) only need
padding and stacking: `PaddedCollator` (OpenVLA's `PaddedCollatorForActionPrediction`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

IGNORE_INDEX = -100  # label of positions the loss skips (prompt, padding)


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


@dataclass(frozen=True)
class PaddedCollator:
    """Model-ready samples -> a batch: pads `input_ids` (with `pad_token_id`) and `labels` (with -100) to the
    longest sequence, builds `attention_mask` from the lengths, and stacks every other tensor.

    The mask comes from the lengths, not from `input_ids != pad`: parallel decoding fills its action slots with
    the pad id under attention 1. Training pads on the right; inference on the left (generation appends there).

    Args:
        pad_token_id: the id padding positions hold.
        padding_side: "right" or "left".
        max_length: a longer sequence raises (the Llama context the model was built for).
    """

    pad_token_id: int
    padding_side: str = "right"
    max_length: int | None = None

    def __post_init__(self) -> None:
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    def __call__(self, samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Samples with `input_ids` (L_i,), optional `labels` (L_i,), and same-shape tensors under other keys ->
        `input_ids`, `attention_mask` (and `labels`) (B, max L_i), the others stacked to (B, ...)."""
        if not samples:
            raise ValueError("empty batch")
        batch, width = len(samples), max(len(s["input_ids"]) for s in samples)
        if self.max_length is not None and width > self.max_length:
            raise ValueError(f"a sequence has {width} text tokens, more than llm_max_length={self.max_length}")
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        has_labels = "labels" in samples[0]
        labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long) if has_labels else None
        for i, s in enumerate(samples):
            n = len(s["input_ids"])
            sl = slice(width - n, width) if self.padding_side == "left" else slice(0, n)
            input_ids[i, sl] = s["input_ids"]
            mask[i, sl] = 1
            if labels is not None:
                labels[i, sl] = s["labels"]
        out = {"input_ids": input_ids, "attention_mask": mask}
        if labels is not None:
            out["labels"] = labels
        for k in samples[0]:
            if k not in out:
                first = samples[0][k]
                out[k] = torch.stack([s[k] for s in samples], out=_empty((batch, *first.shape), first.dtype))
        return out


def _empty(shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """A tensor to fill; in shared memory inside a DataLoader worker, so handing the batch over copies nothing."""
    t = torch.empty(shape, dtype=dtype)
    return t.share_memory_() if torch.utils.data.get_worker_info() is not None else t


def _np(v: Any) -> np.ndarray:
    return v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def split_batch(batch: dict, start: int = 0) -> Iterator[dict]:
    """Per-sample dicts (numpy views) from a collated batch of raw samples (numpy or torch)."""
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
