"""What is trained: LoRA adapters through peft, the whole model, the projector only, or all but the towers.

LoRA defaults follow OpenVLA's `vla-scripts/finetune.py`: r 32, alpha 16, dropout 0, every linear layer
(both vision towers, projector, Llama; peft's "all-linear" leaves out `lm_head`), gaussian init.
"""

from __future__ import annotations

import logging

from torch import nn

from vla.train.config import FinetuneMode, LoraSettings

logger = logging.getLogger(__name__)

#: `trainer.lora.target_modules` value that adapts every Linear and Conv2d layer but the LM head. OpenVLA's
#: "all-linear" reaches every layer of its ViT towers; on a convolutional vision backbone (the tiny
#: `conv_keypoints`) it would leave the whole vision frozen, so a new camera could not be adapted to.
ALL_LINEAR_CONV = "all-linear-conv"

#: Module-name prefixes of the parts a mode freezes or trains (VLAForActionPrediction's attributes).
VISION_PREFIXES = ("vision_backbone.",)
PROJECTOR_PREFIXES = ("projector.",)


def apply_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """Wrap `model` in a peft `PeftModel` with LoRA adapters; only the adapters are trainable."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=resolve_target_modules(model, settings.target_modules),
        init_lora_weights=settings.init,
    )
    return get_peft_model(model, cfg)


def resolve_target_modules(model: nn.Module, target: str) -> str | list[str]:
    """peft's `target_modules` for a setting: `all-linear-conv` becomes the list of Linear and Conv2d layers."""
    if target != ALL_LINEAR_CONV:
        return target
    return sorted(n for n, m in model.named_modules()
                  if isinstance(m, (nn.Linear, nn.Conv2d)) and n.rsplit(".", 1)[-1] != "lm_head")


def _set_trainable(model: nn.Module, predicate) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(bool(predicate(name)))


def prepare_for_mode(model: nn.Module, mode: FinetuneMode, lora: LoraSettings) -> nn.Module:
    """Return the module to optimize with `requires_grad` set for `mode`; log the trainable count."""
    mode = FinetuneMode(mode)
    if mode == FinetuneMode.lora:
        model = apply_lora(model, lora)
    elif mode == FinetuneMode.projector:
        _require_prefix(model, PROJECTOR_PREFIXES, mode)
        _set_trainable(model, lambda n: n.startswith(PROJECTOR_PREFIXES))
    elif mode == FinetuneMode.freeze_vision:
        _require_prefix(model, VISION_PREFIXES, mode)
        _set_trainable(model, lambda n: not n.startswith(VISION_PREFIXES))
    else:
        _set_trainable(model, lambda n: True)
    trainable, total = count_parameters(model)
    logger.info("mode %s: %s of %s parameters trainable (%.3f%%)", mode.value, f"{trainable:,}", f"{total:,}",
                100.0 * trainable / max(total, 1))
    return model


def _require_prefix(model: nn.Module, prefixes: tuple[str, ...], mode: FinetuneMode) -> None:
    if not any(n.startswith(prefixes) for n, _ in model.named_parameters()):
        raise ValueError(f"trainer.mode={mode.value} needs parameters named {prefixes[0]}*; this model has none")


def count_parameters(model: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def freeze_unused_parameters(model: nn.Module, processor, config) -> list[str]:
    """Freeze trainable parameters the forward pass never uses; return their names.

    OpenVLA's towers keep layers that feed nothing (features come from the second-to-last block; the final
    norms, SigLIP's attention-pool head, DINOv2's mask token), and so do LoRA adapters placed on them. Left
    trainable they get no gradient, which DDP rejects and which leaves holes in the optimizer state. One
    probe forward/backward on a blank sample finds them; it reads no training data and draws no random numbers
    in the data stream.
    """
    import numpy as np

    size = int(config.image_size)
    chunk = int(getattr(config, "action_chunk", 1))
    sample = {
        "images": {c: np.zeros((size, size, 3), np.uint8) for c in config.cameras},
        "instruction": "probe",
        "action": np.zeros((chunk, 7) if chunk > 1 else (7,), np.float32),
        "proprio": np.zeros(int(getattr(config, "proprio_dim", 0)), np.float32),
    }
    batch = processor.collate([sample])
    device = next(model.parameters()).device
    was_training = model.training
    model.train()
    model(**{k: v.to(device) for k, v in batch.items()}).loss.backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for n, p in model.named_parameters():
        p.grad = None
        if n in unused:
            p.requires_grad_(False)
    model.train(was_training)
    if unused:
        logger.info("froze %d parameter tensors the forward pass does not use (e.g. %s)", len(unused), unused[0])
    return unused
