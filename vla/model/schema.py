"""Typed schema of a model preset (`configs/model/*.yaml`), validated in `__post_init__`.

A preset names the architecture sizes and options; `vla.model.presets.build_preset` turns it into a
`VLAConfig` plus a `VLAProcessor`. Registered in hydra's ConfigStore as `model/model_schema`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from vla.core.types import CAMERA_NAMES as CAMERAS

ACTION_HEADS = ("tokens", "l1")
DECODING_MODES = ("autoregressive", "parallel")
VISION_BACKBONES = ("dinosiglip", "conv_keypoints")


@dataclass
class TowerConfig:
    """One ViT tower: width, blocks, heads, MLP width (timm's `int(width * mlp_ratio)`)."""

    hidden_size: int = 64
    num_layers: int = 3
    num_heads: int = 2
    mlp_dim: int = 256

    def __post_init__(self) -> None:
        if self.num_layers < 2:
            raise ValueError(f"a tower needs >= 2 layers (features come from the second-to-last one), "
                             f"got {self.num_layers}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"tower hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")


@dataclass
class LlmConfig:
    """The Llama backbone. `vocab_size` is the tokenizer's base vocabulary (the action bins are its last ids);
    the embedding table adds the pad token and rounds up to `pad_to_multiple_of`."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 4
    intermediate_size: int = 256
    vocab_size: int = 1024
    max_position_embeddings: int = 1024
    rms_norm_eps: float = 1e-6
    pad_to_multiple_of: int = 64


@dataclass
class ModelConfig:
    """A model preset. `tokenizer`: `tiny` (built locally), a directory with tokenizer files, or `none`."""

    name: str = "tiny"
    image_size: int = 112
    patch_size: int = 14
    dino: TowerConfig = field(default_factory=TowerConfig)
    siglip: TowerConfig = field(default_factory=lambda: TowerConfig(mlp_dim=236))
    llm: LlmConfig = field(default_factory=LlmConfig)
    tokenizer: str = "tiny"
    n_action_bins: int = 256
    cameras: List[str] = field(default_factory=lambda: ["primary"])
    use_proprio: bool = False
    proprio_dim: int = 0
    decoding: str = "autoregressive"
    action_chunk: int = 1
    action_head: str = "tokens"
    action_queries: bool = False  # learned per-slot inputs for parallel decoding (VLAConfig.action_queries)
    vision_film: bool = False  # instruction-conditioned vision towers (VLAConfig.vision_film, vla.model.film)
    film_text_layers: int = 0  # vision_film: prompt encoder layers before the pool (word order); 0 = bag of words
    film_queries: int = 1  # vision_film: pooled instruction vectors, one conditioned vision pass each (tokens x this)
    film_detector: bool = False  # vision_film + conv_keypoints: one more keypoint per pass, where the words match the maps
    vision_backbone: str = "dinosiglip"  # or conv_keypoints (vla.model.vision.ConvKeypointBackbone, tiny models)
    conv_channels: int = 32  # conv_keypoints: channels of each conv block
    num_keypoints: int = 32  # conv_keypoints: tokens per image
    keypoint_dim: int = 128  # conv_keypoints: width of each token (the projector's input)
    attn_implementation: str = "sdpa"
    prompt_suffix_token_id: Optional[int] = None  # None: the tokenizer's space piece (29871 for Llama-2)

    def __post_init__(self) -> None:
        problems = []
        if self.decoding not in DECODING_MODES:
            problems.append(f"decoding={self.decoding!r}, allowed {list(DECODING_MODES)}")
        if self.action_head not in ACTION_HEADS:
            problems.append(f"action_head={self.action_head!r}, allowed {list(ACTION_HEADS)}")
        if any(c not in CAMERAS for c in self.cameras):
            problems.append(f"cameras={list(self.cameras)}, allowed names {list(CAMERAS)}")
        if self.image_size < self.patch_size:
            problems.append(f"image_size {self.image_size} is smaller than patch_size {self.patch_size}")
        if self.vision_backbone not in VISION_BACKBONES:
            problems.append(f"vision_backbone={self.vision_backbone!r}, allowed {list(VISION_BACKBONES)}")
        if self.film_text_layers < 0 or (self.film_text_layers and not self.vision_film):
            problems.append(f"film_text_layers={self.film_text_layers} needs vision_film=true and a count >= 0 (it "
                            "encodes the prompt for FiLM)")
        if self.film_queries < 1 or (self.film_queries > 1 and not self.vision_film):
            problems.append(f"film_queries={self.film_queries} needs vision_film=true and a count >= 1 (one "
                            "instruction-conditioned vision pass per query)")
        if self.film_detector and not (self.vision_film and self.vision_backbone == "conv_keypoints"):
            problems.append("film_detector=true needs vision_film=true and vision_backbone=conv_keypoints (it matches "
                            "the instruction against the conv feature maps)")
        if self.attn_implementation not in ("sdpa", "eager", "flash_attention_2"):
            problems.append(f"attn_implementation={self.attn_implementation!r}, allowed sdpa, eager, flash_attention_2")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))


def register_configs() -> None:
    """Register the schema in hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="model", name="model_schema", node=ModelConfig)
