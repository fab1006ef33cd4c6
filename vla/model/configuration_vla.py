"""`VLAConfig`: the OpenVLA architecture (DINOv2-reg + SigLIP -> fused GELU MLP -> Llama) as a transformers config.

The config carries everything inference needs: tower and Llama sizes, the action-token layout, the prompt
suffix rule and the normalization statistics (`norm_stats`, OpenVLA layout, one entry per `unnorm_key`).
OpenVLA-OFT features (parallel decoding with action chunks, an L1 regression head, a proprio token, several
camera images) are options that default off, so the plain OpenVLA path stays exact.

Example:
    >>> from transformers import Dinov2WithRegistersConfig, LlamaConfig, SiglipVisionConfig
    >>> config = VLAConfig(
    ...     dino_config=Dinov2WithRegistersConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
    ...                                          patch_size=14, image_size=224),
    ...     siglip_config=SiglipVisionConfig(hidden_size=40, intermediate_size=149, num_hidden_layers=3,
    ...                                      num_attention_heads=2, patch_size=14, image_size=224),
    ...     text_config=LlamaConfig(vocab_size=32064, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
    ...                             num_attention_heads=4),
    ... )
    >>> model = VLAForActionPrediction(config)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transformers import (
    AutoConfig,
    Dinov2WithRegistersConfig,
    LlamaConfig,
    PreTrainedConfig,
    SiglipVisionConfig,
)

from vla.model.schema import ACTION_HEADS, CAMERAS, DECODING_MODES, VISION_BACKBONES

# Keys a config.json may carry that are not fields of ours but are harmless (written by transformers itself
# or by older versions); anything else is rejected so typos do not pass silently.
_TOLERATED_EXTRA_KEYS = {"torch_dtype", "use_cache", "tie_word_embeddings", "output_attentions", "pruned_heads",
                         "tf_legacy_loss", "use_bfloat16", "add_cross_attention", "bos_token_id", "eos_token_id",
                         "auto_map", "num_labels", "model_type", "attn_implementation",
                         "experts_implementation", "name_or_path", "per_layer_config"}


class VLAConfig(PreTrainedConfig):
    """Configuration of `VLAForActionPrediction`.

    Args:
        dino_config / siglip_config: the two vision towers (their `image_size`/`patch_size` must agree).
        text_config: the Llama backbone; `vocab_size` includes the padding rows (OpenVLA: 32064).
        image_size: side of the square model input (the processor resizes to it).
        n_action_bins: number of bin edges (256); actions use the ids `action_token_end_id - 256 ..
            action_token_end_id - 1` (OpenVLA: the last 256 ids of the 32000-token Llama vocabulary).
        action_token_end_id: one past the last action token id (OpenVLA: 32000 = the tokenizer vocab size).
        prompt_suffix_token_id: appended to the inference prompt when it is not already last (Llama-2: 29871,
            the empty SentencePiece piece); None for tokenizers without such a piece.
        pad_token_id / bos_token_id / eos_token_id: special ids (OpenVLA 32000 / 1 / 2).
        norm_stats: `{unnorm_key: {"action": {...}, "proprio": {...}, ...}}` as in OpenVLA checkpoints.
        cameras: camera names read, in order; each image adds its own patches.
        use_proprio / proprio_dim: one projected proprio token after the patches.
        decoding: "autoregressive" (OpenVLA) or "parallel" (OFT: K x 7 placeholder slots, bidirectional
            attention, one forward pass).
        action_chunk: K actions per call (K > 1 needs `decoding="parallel"` or autoregressive K*7 tokens).
        action_head: "tokens" (discrete bins) or "l1" (continuous MLP-ResNet regression head, OFT).
        action_queries: parallel decoding only: add a learned embedding per action slot to its input (OFT
            zeroes the slot inputs; with a shallow backbone, e.g. the 2-layer tiny Llama, zero inputs give
            every slot the same all-zero query in the first layer). Off by default, so OpenVLA/OFT
            checkpoints load unchanged.
        vision_backbone: "dinosiglip" (OpenVLA's fused DINOv2 + SigLIP ViTs) or "conv_keypoints" (a small CNN
            with a spatial softmax, `num_keypoints` tokens of `keypoint_dim` per image from `conv_channels`
            channels; for tiny models trained from scratch, see vla.model.vision.ConvKeypointBackbone).
        vision_film: condition every running block of both vision towers on the instruction (FiLM from an
            attention pool over the prompt's token embeddings; vla.model.film). Off by default (OpenVLA).
        film_text_layers: with `vision_film`, transformer layers (with learned positions) that read the prompt
            before the pool, so word order reaches the towers ("the X cube on the Y plate"); 0 = bag of words.
        film_queries: with `vision_film`, how many instruction vectors the pool makes (one learned query each);
            the towers run once per vector and their tokens are concatenated, so each pass can look for one of
            the things a sentence names ("the X cube" and "the Y plate"). 1 = OpenVLA-sized prefix.
        film_detector: with `vision_film` and `conv_keypoints`, one more keypoint per pass: the spatial softmax of
            the dot product between a projection of the instruction vector and the last conv maps, i.e. where
            the image matches the words (vla.model.vision.ConvKeypointBackbone).
    """

    model_type = "vla"
    sub_configs_defaults = {
        "dino_config": Dinov2WithRegistersConfig,
        "siglip_config": SiglipVisionConfig,
        "text_config": LlamaConfig,
    }

    dino_config: dict | PreTrainedConfig | None = None
    siglip_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    image_size: int = 224
    n_action_bins: int = 256
    action_token_end_id: int = 32000
    prompt_suffix_token_id: int | None = 29871
    pad_token_id: int | None = 32000
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    pad_to_multiple_of: int = 64
    llm_max_length: int = 2048
    action_dim: int = 7
    norm_stats: dict | None = None
    cameras: list | tuple = ("primary",)
    use_proprio: bool = False
    proprio_dim: int = 0
    decoding: str = "autoregressive"
    action_chunk: int = 1
    action_head: str = "tokens"
    l1_head_blocks: int = 2
    action_queries: bool = False
    vision_film: bool = False
    film_text_layers: int = 0
    film_queries: int = 1
    film_detector: bool = False
    vision_backbone: str = "dinosiglip"
    conv_channels: int = 32
    num_keypoints: int = 32
    keypoint_dim: int = 128
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any):
        from transformers import GenerationConfig

        generation_keys = set(GenerationConfig._get_default_generation_params())
        unknown = sorted(k for k in kwargs if not k.startswith("_") and k not in _TOLERATED_EXTRA_KEYS
                         and k not in generation_keys)
        if unknown:
            raise ValueError(
                f"unknown VLAConfig key(s) {unknown}; valid keys are "
                f"{sorted(f.name for f in dataclasses.fields(self) if not f.name.startswith('_'))}"
            )
        super().__post_init__(**kwargs)
        self.cameras = list(self.cameras)
        self.norm_stats = dict(self.norm_stats or {})
        self.validate_options()

    def validate_options(self) -> None:
        """Raise a ValueError naming the bad option and the allowed values."""
        if self.decoding not in DECODING_MODES:
            raise ValueError(f"decoding={self.decoding!r}; allowed: {list(DECODING_MODES)}")
        if self.action_head not in ACTION_HEADS:
            raise ValueError(f"action_head={self.action_head!r}; allowed: {list(ACTION_HEADS)}")
        if self.action_head == "l1" and self.decoding != "parallel":
            raise ValueError("action_head='l1' regresses all slots in one pass: it needs decoding='parallel'")
        bad = [c for c in self.cameras if c not in CAMERAS]
        if bad or not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras={self.cameras}: give distinct names from {list(CAMERAS)}")
        if self.action_queries and self.decoding != "parallel":
            raise ValueError("action_queries=True embeds the parallel-decoding action slots: it needs decoding='parallel'")
        if self.action_chunk < 1:
            raise ValueError(f"action_chunk must be >= 1, got {self.action_chunk}")
        if self.vision_backbone not in VISION_BACKBONES:
            raise ValueError(f"vision_backbone={self.vision_backbone!r}; allowed: {list(VISION_BACKBONES)}")
        if self.use_proprio and self.proprio_dim <= 0:
            raise ValueError("use_proprio=True needs proprio_dim > 0")
        if self.film_text_layers < 0 or (self.film_text_layers and not self.vision_film):
            raise ValueError(f"film_text_layers={self.film_text_layers} needs vision_film=True and a count >= 0")
        if self.film_queries < 1 or (self.film_queries > 1 and not self.vision_film):
            raise ValueError(f"film_queries={self.film_queries} needs vision_film=True and a count >= 1")
        if self.film_detector and not (self.vision_film and self.vision_backbone == "conv_keypoints"):
            raise ValueError("film_detector=True needs vision_film=True and vision_backbone='conv_keypoints'")
        if self.action_token_end_id - self.n_action_bins < 0:
            raise ValueError(f"action_token_end_id={self.action_token_end_id} leaves no room for "
                             f"{self.n_action_bins} action bins")
        if self.action_token_end_id > self.text_config.vocab_size:
            raise ValueError(f"action_token_end_id={self.action_token_end_id} exceeds the Llama vocab "
                             f"({self.text_config.vocab_size})")
        for name in ("dino_config", "siglip_config"):
            sub = getattr(self, name)
            size = sub.image_size if isinstance(sub.image_size, int) else sub.image_size[0]
            if size != self.image_size:
                raise ValueError(f"{name}.image_size={sub.image_size} differs from image_size={self.image_size}")
            patch = sub.patch_size if isinstance(sub.patch_size, int) else sub.patch_size[0]
            if self.image_size < patch:  # like timm, a remainder smaller than a patch is dropped (384 px / 14)
                raise ValueError(f"image_size={self.image_size} is smaller than {name}.patch_size={patch}")
        # OFT parallel decoding attends bidirectionally; transformers reads `is_causal` from the Llama config.
        self.text_config.is_causal = self.decoding != "parallel"

    @property
    def action_token_begin_id(self) -> int:
        return self.action_token_end_id - self.n_action_bins

    @property
    def num_patches(self) -> int:
        """Vision tokens per image: ViT patches, or keypoints of the conv backbone (times `film_queries`)."""
        if self.vision_backbone == "conv_keypoints":
            return (self.num_keypoints + int(self.film_detector)) * self.film_queries
        patch = self.dino_config.patch_size
        patch = patch if isinstance(patch, int) else patch[0]
        return (self.image_size // patch) ** 2 * self.film_queries

    @property
    def num_images(self) -> int:
        return len(self.cameras)

    @property
    def vision_dim(self) -> int:
        if self.vision_backbone == "conv_keypoints":
            return self.keypoint_dim
        return self.dino_config.hidden_size + self.siglip_config.hidden_size

    @property
    def unnorm_keys(self) -> list[str]:
        return sorted(self.norm_stats)


AutoConfig.register("vla", VLAConfig, exist_ok=True)

__all__ = ["VLAConfig", "ACTION_HEADS", "DECODING_MODES"]
