"""Training metrics (OpenVLA's): loss, action-token accuracy, L1 of decoded normalized actions; and sinks.

Action tokens are the label ids in `[action_token_begin_id, action_token_end_id)`; a token decodes to the
center of its bin (`vla.model` tokenizer layout: id = end - digitize(a), reversed). Sinks: TensorBoard
(on by default), wandb (off by default; only when installed and asked for), and the progress bar.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


class ActionTokenDecoder:
    """Token id -> normalized action value in [-1, 1] (bin centers of `linspace(-1, 1, n_bins)`)."""

    def __init__(self, begin_id: int, end_id: int, n_bins: int) -> None:
        self.begin_id, self.end_id = int(begin_id), int(end_id)
        self.edges = torch.linspace(-1.0, 1.0, n_bins, dtype=torch.float64)
        self.centers = ((self.edges[:-1] + self.edges[1:]) / 2.0).float()  # (n_bins - 1,)

    @classmethod
    def from_config(cls, config: Any) -> "ActionTokenDecoder":
        return cls(config.action_token_begin_id, config.action_token_end_id, config.n_action_bins)

    def is_action(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= self.begin_id) & (ids < self.end_id)

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        idx = (self.end_id - ids.long() - 1).clamp(0, self.centers.numel() - 1)
        return self.centers.to(ids.device)[idx]


@torch.no_grad()
def action_metrics(logits: torch.Tensor, labels: torch.Tensor, decoder: ActionTokenDecoder) -> dict[str, float]:
    """Accuracy and L1 over the action positions of a batch.

    Args:
        logits: (B, S + E, V), where E >= 0 positions (image patches, proprio) sit after BOS, before the text.
        labels: (B, S), -100 where no loss is taken.
    Returns:
        {"action_accuracy", "action_l1", "action_tokens"} (NaN metrics when the batch has no action token).
    """
    extra = logits.shape[1] - labels.shape[1]
    preds = logits[:, extra:-1].argmax(-1) if extra >= 0 else None  # (B, S - 1): position t predicts t + 1
    if preds is None:
        raise ValueError(f"logits have {logits.shape[1]} positions, fewer than the {labels.shape[1]} labels")
    return token_metrics(preds, labels[:, 1:], decoder)


@torch.no_grad()
def token_metrics(preds: torch.Tensor, gt: torch.Tensor, decoder: ActionTokenDecoder) -> dict[str, float]:
    """Accuracy and L1 where `gt` holds action tokens; `preds` are the predicted ids at the same places."""
    mask = decoder.is_action(gt)
    n = int(mask.sum())
    if n == 0:
        return {"action_accuracy": math.nan, "action_l1": math.nan, "action_tokens": 0}
    acc = (preds[mask] == gt[mask]).float().mean().item()
    l1 = (decoder.decode(preds[mask]) - decoder.decode(gt[mask])).abs().mean().item()
    return {"action_accuracy": acc, "action_l1": l1, "action_tokens": n}


@torch.no_grad()
def output_metrics(out: Any, batch: dict, decoder: ActionTokenDecoder, parallel: bool) -> dict[str, float]:
    """`action_metrics` for any head: autoregressive tokens (shifted), OFT parallel slots (unshifted: the
    logit at slot i is token i), or the L1 regression head (its continuous actions, binned for accuracy)."""
    labels = out.labels if getattr(out, "labels", None) is not None else batch["labels"]
    if getattr(out, "actions", None) is not None and "actions" in batch:  # L1 head: (B, K, 7) normalized
        pred = out.actions.float()
        gt = batch["actions"].to(pred.device).float().reshape(pred.shape)
        ids = lambda a: decoder.end_id - torch.bucketize(a.double().clamp(-1, 1), decoder.edges.to(a.device), right=True)  # noqa: E731
        return {"action_accuracy": (ids(pred) == ids(gt)).float().mean().item(),
                "action_l1": (pred - gt).abs().mean().item(), "action_tokens": int(gt.numel())}
    if parallel:  # unshifted: the logit at slot i predicts the token at slot i
        return token_metrics(out.logits.argmax(-1), labels, decoder)
    return action_metrics(out.logits.float(), labels, decoder)


class Smoothed:
    """Running means over the last `window` optimizer steps (openvla's deques), for the progress bar."""

    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.values: dict[str, deque] = {}

    def add(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                self.values.setdefault(k, deque(maxlen=self.window)).append(float(v))

    def means(self) -> dict[str, float]:
        return {k: sum(v) / len(v) for k, v in self.values.items() if v}


class MetricSink:
    """Writes scalars to TensorBoard and (when enabled) wandb; rank 0 only."""

    def __init__(self, log_dir: Path, *, tensorboard: bool, wandb: bool, wandb_project: str, config: dict) -> None:
        self.tb = None
        self.wandb = None
        if tensorboard:
            from vla.tensorboard import summary_writer

            self.tb = summary_writer(log_dir)
        if wandb:
            try:
                import wandb as _wandb
            except ImportError as e:
                raise RuntimeError("trainer.wandb=true but wandb is not installed: `pip install wandb`, "
                                   "or leave trainer.wandb=false (TensorBoard logs are written either way)") from e
            self.wandb = _wandb.init(project=wandb_project, config=config, dir=str(log_dir))

    def log(self, step: int, scalars: dict[str, float], prefix: str) -> None:
        clean = {f"{prefix}/{k}": float(v) for k, v in scalars.items() if v is not None and math.isfinite(float(v))}
        if self.tb is not None:
            for k, v in clean.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(clean, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
