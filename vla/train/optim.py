"""AdamW over the trainable parameters and a warmup + constant / cosine / linear learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from vla.train.config import Schedule, TrainerConfig


def build_optimizer(model: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"trainer.mode={cfg.mode.value} left no trainable parameters")
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)


def schedule_factor(step: int, total_steps: int, *, warmup_steps: int = 0, shape: str = "cosine",
                    min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at step `step` (0-based): linear warmup over `warmup_steps`, then `shape`
    (cosine, linear or constant) from 1 down to `min_ratio` at `total_steps`. The one schedule of the project:
    the VLA trainer and the world-model trainers both call it."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if shape == "constant":
        return 1.0
    progress = min(max(step - warmup_steps, 0) / max(total_steps - warmup_steps, 1), 1.0)
    if shape == "cosine":
        value = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif shape == "linear":
        value = 1.0 - progress
    else:
        raise ValueError(f"schedule shape {shape!r}; choose cosine, linear or constant")
    return min_ratio + (1.0 - min_ratio) * value


def lr_factor(step: int, cfg: TrainerConfig) -> float:
    """Multiplier of `cfg.lr` at optimizer step `step` (0-based): linear warmup, then the schedule."""
    return schedule_factor(step, cfg.steps, warmup_steps=cfg.warmup_steps, shape=Schedule(cfg.schedule).value,
                           min_ratio=cfg.min_lr_ratio)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainerConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
