"""Build a `VLAConfig` + `VLAProcessor` from a preset in `configs/model/<name>.yaml` (no weights, no hub).

    config, processor = build_preset("tiny", decoding="parallel", action_chunk=8)
    model = VLAForActionPrediction(config)

Overrides are `ModelConfig` fields (schema in `vla/model/schema.py`); nested ones as dicts or dotted keys
(`{"llm.hidden_size": 64}`). Unknown keys fail with the list of valid ones.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from vla.model.schema import ModelConfig

logger = logging.getLogger(__name__)


def available_presets() -> list[str]:
    root = resources.files("configs") / "model"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_preset_config(name: str, **overrides: Any) -> ModelConfig:
    """The validated `ModelConfig` of preset `name` with `overrides` applied."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, ValidationError

    path = resources.files("configs") / "model" / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"unknown model preset {name!r}; available: {available_presets()}")
    dotted = [f"{k}={_to_str(v)}" for k, v in overrides.items() if "." in k]
    nested = {k: v for k, v in overrides.items() if "." not in k}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(str(path)),
                                 OmegaConf.create(nested), OmegaConf.from_dotlist(dotted))
        return OmegaConf.to_object(merged)
    except (ConfigKeyError, ValidationError) as e:
        raise ValueError(f"bad model config for preset {name!r}: {e}. Valid top-level keys: "
                         f"{sorted(ModelConfig.__dataclass_fields__)}") from None


def _to_str(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


@functools.lru_cache(maxsize=4)
def _tiny_tokenizer(vocab_size: int, n_action_bins: int):
    from vla.model.tokenizer_tiny import build_tiny_tokenizer

    return build_tiny_tokenizer(vocab_size, n_action_bins)


def make_tokenizer(spec: str, vocab_size: int, n_action_bins: int):
    """`tiny` -> the project-made BPE; `none` -> None; else a directory with tokenizer files."""
    if spec == "tiny":
        return _tiny_tokenizer(vocab_size, n_action_bins)
    if spec in ("none", "", None):
        return None
    from vla.model.processing_vla import load_tokenizer

    tok = load_tokenizer(Path(spec).expanduser())
    if tok is None:
        raise FileNotFoundError(f"tokenizer={spec!r}: no tokenizer files (tokenizer.json / tokenizer.model) there")
    return tok


def to_vla_config(mc: ModelConfig, tokenizer=None, norm_stats: dict | None = None):
    """The `VLAConfig` a `ModelConfig` describes (the tokenizer decides the prompt suffix id)."""
    from transformers import Dinov2WithRegistersConfig, LlamaConfig, SiglipVisionConfig

    from vla.model.configuration_vla import VLAConfig
    from vla.model.tokenizer_tiny import SPACE

    if mc.dino.mlp_dim % mc.dino.hidden_size:
        raise ValueError(f"dino.mlp_dim {mc.dino.mlp_dim} must be a multiple of dino.hidden_size {mc.dino.hidden_size}")
    base_vocab = mc.llm.vocab_size
    m = mc.llm.pad_to_multiple_of
    text_vocab = -(-(base_vocab + 1) // m) * m  # + <pad>, rounded up like OpenVLA (32001 -> 32064)
    suffix = mc.prompt_suffix_token_id
    if suffix is None:
        if tokenizer is not None and SPACE in tokenizer.get_vocab():
            suffix = int(tokenizer.convert_tokens_to_ids(SPACE))
        else:
            suffix = 29871 if base_vocab == 32000 else None
    dino = Dinov2WithRegistersConfig(
        hidden_size=mc.dino.hidden_size, num_hidden_layers=mc.dino.num_layers, num_attention_heads=mc.dino.num_heads,
        mlp_ratio=mc.dino.mlp_dim // mc.dino.hidden_size, patch_size=mc.patch_size, image_size=mc.image_size,
        num_register_tokens=4, layer_norm_eps=1e-6, hidden_act="gelu", layerscale_value=1e-5)
    siglip = SiglipVisionConfig(
        hidden_size=mc.siglip.hidden_size, num_hidden_layers=mc.siglip.num_layers,
        num_attention_heads=mc.siglip.num_heads, intermediate_size=mc.siglip.mlp_dim, patch_size=mc.patch_size,
        image_size=mc.image_size, layer_norm_eps=1e-6, hidden_act="gelu")
    text = LlamaConfig(
        vocab_size=text_vocab, hidden_size=mc.llm.hidden_size, intermediate_size=mc.llm.intermediate_size,
        num_hidden_layers=mc.llm.num_layers, num_attention_heads=mc.llm.num_heads,
        num_key_value_heads=mc.llm.num_kv_heads, max_position_embeddings=mc.llm.max_position_embeddings,
        rms_norm_eps=mc.llm.rms_norm_eps, pad_token_id=base_vocab, bos_token_id=1, eos_token_id=2)
    config = VLAConfig(
        dino_config=dino, siglip_config=siglip, text_config=text, image_size=mc.image_size,
        n_action_bins=mc.n_action_bins, action_token_end_id=base_vocab, prompt_suffix_token_id=suffix,
        pad_token_id=base_vocab, pad_to_multiple_of=m, llm_max_length=mc.llm.max_position_embeddings,
        norm_stats=norm_stats or {}, cameras=list(mc.cameras), use_proprio=mc.use_proprio,
        proprio_dim=mc.proprio_dim, decoding=mc.decoding, action_chunk=mc.action_chunk,
        action_head=mc.action_head, action_queries=mc.action_queries,
        vision_film=mc.vision_film, film_text_layers=mc.film_text_layers,
        film_queries=mc.film_queries, film_detector=mc.film_detector,
        vision_backbone=mc.vision_backbone, conv_channels=mc.conv_channels,
        num_keypoints=mc.num_keypoints, keypoint_dim=mc.keypoint_dim)
    config._attn_implementation = mc.attn_implementation
    return config


def as_model_config(spec: Any, **overrides: Any) -> ModelConfig:
    """A `ModelConfig` from a preset name, a `ModelConfig`, or a dict / DictConfig of its fields."""
    if isinstance(spec, str):
        return load_preset_config(spec, **overrides)
    if isinstance(spec, ModelConfig) and not overrides:
        return spec
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.structured(spec)
                             if isinstance(spec, ModelConfig) else OmegaConf.create(spec), OmegaConf.create(overrides))
    return OmegaConf.to_object(merged)


def build_preset(name: str | ModelConfig, **overrides: Any):
    """(VLAConfig, VLAProcessor) for a preset name (or a ready `ModelConfig`) with overrides applied."""
    from vla.model.processing_vla import VLAProcessor

    mc = as_model_config(name, **overrides)
    tokenizer = make_tokenizer(mc.tokenizer, mc.llm.vocab_size, mc.n_action_bins)
    config = to_vla_config(mc, tokenizer)
    return config, VLAProcessor.from_model_config(config, tokenizer)


def build_model(name: str | ModelConfig = "tiny", seed: int | None = 0, **overrides: Any):
    """A freshly initialized (model, processor) pair; `seed` makes the weights reproducible."""
    import torch

    from vla.model.modeling_vla import VLAForActionPrediction

    config, processor = build_preset(name, **overrides)
    if seed is not None:
        torch.manual_seed(seed)
    return VLAForActionPrediction(config).eval(), processor
