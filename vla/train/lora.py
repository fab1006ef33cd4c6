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

#: Module-name prefixes of the parts a mode freezes or trains (VLAForActionPrediction's attributes). The vision
#: includes its instruction conditioning (`vision_film`: the pooler and the FiLM generator serve the vision only):
#: left trainable, they would move what a grounding-pretrained backbone attends to (docs/history.md L10).
VISION_PREFIXES = ("vision_backbone.", "film.", "instruction_pooler.")
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


#: torch modules that use their Linear children's weights without calling them: MultiheadAttention reads
#: `out_proj.weight` inside `F.multi_head_attention_forward`, and Transformer{Encoder,Decoder}Layer's inference
#: fast path hands `linear1`/`linear2` weights straight to a fused kernel. A LoRA adapter there never trains (MHA)
#: or trains but is skipped at inference (the eval fast path), so the adapter model would act unlike its merge.
BYPASSED_BY = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def resolve_target_modules(model: nn.Module, target: str) -> str | list[str]:
    """peft's `target_modules` for a setting. `all-linear` (peft's meaning: every Linear but the LM head) and
    `all-linear-conv` (Conv2d too) become explicit lists without the layers `BYPASSED_BY` skips; any other value
    (a module name regex or list) goes to peft as given."""
    if target not in ("all-linear", ALL_LINEAR_CONV):
        return target
    kinds = (nn.Linear, nn.Conv2d) if target == ALL_LINEAR_CONV else (nn.Linear,)
    bypassed = {f"{owner}.{child}" for owner, m in model.named_modules() if isinstance(m, BYPASSED_BY)
                for child, _ in m.named_modules() if child}
    layers = {n for n, m in model.named_modules() if isinstance(m, kinds) and n.rsplit(".", 1)[-1] != "lm_head"}
    if layers & bypassed:
        logger.info("LoRA %s: leaving out %d layer(s) that torch attention/transformer modules use without calling "
                    "them (e.g. %s)", target, len(layers & bypassed), sorted(layers & bypassed)[0])
    return sorted(layers - bypassed)


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
