"""Teacher-forced metrics of a checkpoint on a dataset: loss, action-token accuracy, L1 (OpenVLA's metrics).

    from vla.train.evaluate import evaluate_checkpoint
    evaluate_checkpoint("outputs/train/final", {"datasets": [{"path": "outputs/data/sim_pick/1.0.0"}]})
    # {"loss": 0.41, "action_accuracy": 0.93, "action_l1": 0.004, "first_token_accuracy": 0.8, "frames": 400}

Every step of every episode of the split, once, in order, without augmentation. Used by the benchmark
("the tiny model fits a small dataset") and handy after training.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import torch

from vla.train.metrics import ActionTokenDecoder, output_metrics


@torch.no_grad()
def evaluate_checkpoint(checkpoint: str | Path, data: Any, *, batch_size: int = 32, max_frames: int | None = None) -> dict:
    """Mean metrics of `checkpoint` over `data` (a `vla.data.config.DataConfig` or dict of one)."""
    from dataclasses import replace

    from vla.data.config import to_data_config
    from vla.data.loader import RLDSLoader
    from vla.model.policy import load_checkpoint
    from vla.train.setup import shape_for_model

    model, processor = load_checkpoint(checkpoint)
    cfg = replace(shape_for_model(to_data_config(data), model.config), image_augmentation=False)
    loader = RLDSLoader(cfg, train=False, transform=processor.transform, collate=processor.collator())
    return evaluate_model(model, loader.batches(batch_size), max_frames=max_frames)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, batches: Iterable[dict], *, max_frames: int | None = None) -> dict:
    """Frame-weighted mean loss / accuracy / L1 of `model` over model-ready batches (e.g. an `RLDSLoader` with
    `transform=processor.transform`: its `.batches(n)`), stopping after `max_frames` frames."""
    decoder = ActionTokenDecoder.from_config(model.config)
    parallel = model.config.decoding == "parallel"  # (first-token accuracy: autoregressive models only)
    model.eval()
    totals = {"loss": 0.0, "action_accuracy": 0.0, "action_l1": 0.0, "first_token_accuracy": 0.0}
    frames, tokens = 0, 0
    for batch in batches:
        n = len(batch["input_ids"])
        if max_frames is not None and frames + n > max_frames:
            n = max_frames - frames
            batch = {k: v[:n] for k, v in batch.items()}
        out = model(**batch)
        m = output_metrics(out, batch, decoder, parallel=parallel)
        if not parallel:
            # the first action token is the one only the image (and instruction) decides: the others can lean
            # on the tokens before them under teacher forcing
            labels = out.labels if getattr(out, "labels", None) is not None else batch["labels"]
            gt = labels[:, 1:]
            preds = out.logits[:, out.logits.shape[1] - labels.shape[1]:-1].argmax(-1)  # (B, S - 1)
            is_action = decoder.is_action(gt)
            first = is_action & (is_action.cumsum(-1) == 1)
            totals["first_token_accuracy"] += float((preds[first] == gt[first]).float().sum())
        totals["loss"] += float(out.loss) * n
        totals["action_accuracy"] += m["action_accuracy"] * m["action_tokens"]
        totals["action_l1"] += m["action_l1"] * m["action_tokens"]
        frames += n
        tokens += m["action_tokens"]
        if max_frames is not None and frames >= max_frames:
            break
    if frames == 0:
        raise ValueError("no frames to evaluate on")
    return {"loss": totals["loss"] / frames, "action_accuracy": totals["action_accuracy"] / max(tokens, 1),
            "action_l1": totals["action_l1"] / max(tokens, 1),
            "first_token_accuracy": math.nan if parallel else totals["first_token_accuracy"] / frames,
            "frames": frames}
