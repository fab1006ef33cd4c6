"""`VLAProcessor`: images + instructions (+ actions) -> model inputs, one sample at a time, then padded.

Inference: `input_ids` = tokenized prompt + suffix token (left padded), `pixel_values` (B, 6 * n_cameras, S, S).
Training (`actions` given, normalized (B, 7) or (B, K, 7)), autoregressive: prompt + K*7 action ids + EOS,
labels -100 on the prompt (right padded). Parallel decoding (OFT): prompt + K*7 slots holding the pad id under
attention 1, labels = the action ids at the slots; `actions` (B, K, 7) is passed through for the L1 head.

Training data: `transform` turns one loader sample into its unpadded inputs (`encode`), in the loader's workers
as OpenVLA's `RLDSBatchTransform` does, and `collator()` only pads and stacks them. The settings copied from the
model (`_SETTINGS`, image size) are checked against the checkpoint's config.json when loading one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from vla.core.types import ContractError
from vla.data.collate import IGNORE_INDEX, PaddedCollator
from vla.model.action_tokenizer import ActionTokenizer
from vla.model.image_processing import VLAImageProcessor
from vla.model.prompt import build_prompt

logger = logging.getLogger(__name__)

CONFIG_NAME = "processor_config.json"
_SETTINGS = ("action_token_end_id", "n_action_bins", "prompt_suffix_token_id", "bos_token_id", "eos_token_id",
             "pad_token_id", "cameras", "action_chunk", "action_dim", "decoding", "use_proprio", "proprio_dim",
             "llm_max_length")


class ProcessorConfigMismatchError(ValueError):
    """A checkpoint's processor files disagree with its model config; the message names each setting."""


class VLAProcessor:
    """Tokenizes prompts, discretizes actions, processes images; saved beside the model."""

    def __init__(self, image_processor: VLAImageProcessor, tokenizer=None, *, action_token_end_id: int = 32000,
                 n_action_bins: int = 256, prompt_suffix_token_id: int | None = 29871, bos_token_id: int = 1,
                 eos_token_id: int = 2, pad_token_id: int = 32000, cameras: Sequence[str] = ("primary",),
                 action_chunk: int = 1, action_dim: int = 7, decoding: str = "autoregressive",
                 use_proprio: bool = False, proprio_dim: int = 0, llm_max_length: int = 2048) -> None:
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.action_token_end_id = int(action_token_end_id)
        self.n_action_bins = int(n_action_bins)
        self.prompt_suffix_token_id = prompt_suffix_token_id
        self.bos_token_id, self.eos_token_id = int(bos_token_id), int(eos_token_id)
        self.pad_token_id = int(pad_token_id)
        self.cameras = list(cameras)
        self.action_chunk, self.action_dim = int(action_chunk), int(action_dim)
        self.decoding = decoding
        self.use_proprio, self.proprio_dim = bool(use_proprio), int(proprio_dim)
        self.llm_max_length = int(llm_max_length)
        self.action_tokenizer = ActionTokenizer(self.action_token_end_id, self.n_action_bins)

    # ---- construction / persistence ---------------------------------------------------------------------
    @classmethod
    def from_model_config(cls, config, tokenizer=None, **image_kwargs: Any) -> "VLAProcessor":
        settings = {k: getattr(config, k) for k in _SETTINGS}
        return cls(VLAImageProcessor(config.image_size, **image_kwargs), tokenizer, **settings)

    def settings(self) -> dict:
        return {k: getattr(self, k) for k in _SETTINGS}

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        Path(path, CONFIG_NAME).write_text(json.dumps({"processor_class": "VLAProcessor", **self.settings()},
                                                      indent=2) + "\n")
        self.image_processor.save_pretrained(path)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(path)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "VLAProcessor":
        path = Path(path)
        cfg_path = path / CONFIG_NAME
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{cfg_path} not found: not a checkpoint saved by this project (for a released "
                                    "OpenVLA directory run `vla-import <openvla_dir> <out_dir>` first)")
        settings = {k: v for k, v in json.loads(cfg_path.read_text()).items() if k in _SETTINGS}
        processor = cls(VLAImageProcessor.from_pretrained(path), load_tokenizer(path), **settings)
        if (path / "config.json").is_file():  # a model directory (an adapter or processor-only one has none)
            from vla.model.configuration_vla import VLAConfig

            processor.check_model_config(VLAConfig.from_pretrained(str(path)), where=path)
        return processor

    def check_model_config(self, config, *, where: str | Path = "") -> None:
        """Raise `ProcessorConfigMismatchError` when a setting this processor copies (`_SETTINGS` and the image
        size) differs from the model's config: prompts, action tokens or pixels would not be the model's."""
        ours = {**self.settings(), "image_size": self.image_processor.image_size}
        diff = []
        for key, mine in ours.items():
            theirs = getattr(config, key)
            theirs = list(theirs) if isinstance(theirs, (list, tuple)) else theirs
            if mine != theirs:
                src = "preprocessor_config.json" if key == "image_size" else CONFIG_NAME
                diff.append(f"{key}: {src} has {mine!r}, config.json has {theirs!r}")
        if diff:
            raise ProcessorConfigMismatchError(
                f"{where or 'the processor'}: the processor's copies of the model settings disagree with the model's "
                "config.json (which the weights were built with): " + "; ".join(diff) + ". Fix the processor files "
                "(or rewrite them from the model: VLAProcessor.from_model_config(VLAConfig.from_pretrained(dir), "
                "load_tokenizer(dir)).save_pretrained(dir))"
            )

    # ---- prompts ----------------------------------------------------------------------------------------
    def prompt_ids(self, instruction: str) -> list[int]:
        """BOS + tokenized prompt + the suffix token when the prompt does not already end with it."""
        if self.tokenizer is None:
            raise RuntimeError("this processor has no tokenizer (the checkpoint directory has no tokenizer files); "
                               "copy the Llama-2 tokenizer files (tokenizer.model, tokenizer_config.json) into it")
        ids = list(self.tokenizer(build_prompt(instruction), add_special_tokens=True)["input_ids"])
        if not ids or ids[0] != self.bos_token_id:
            ids = [self.bos_token_id] + ids
        if self.prompt_suffix_token_id is not None and ids[-1] != self.prompt_suffix_token_id:
            ids.append(int(self.prompt_suffix_token_id))
        return ids

    # ---- images -----------------------------------------------------------------------------------------
    def pixel_values(self, images: Sequence[np.ndarray | Mapping[str, np.ndarray]]) -> torch.Tensor:
        """(B, 6 * n_cameras, S, S) float32; each item is one array (single-camera models) or {camera: array}."""
        return torch.stack([self.item_pixel_values(item, f"images[{i}]") for i, item in enumerate(images)])

    def item_pixel_values(self, item: np.ndarray | Mapping[str, np.ndarray], name: str = "images[0]") -> torch.Tensor:
        """(6 * n_cameras, S, S) float32 for one item (the normalization is element-wise, so a batch of items
        gets exactly these values)."""
        if isinstance(item, Mapping):
            missing = [c for c in self.cameras if c not in item]
            if missing:
                raise ContractError(f"{name} lacks camera(s) {missing}; the model reads {self.cameras}, "
                                    f"got {sorted(item)}")
            per_cam = [(item[c], f"{name}[{c!r}]") for c in self.cameras]
        else:
            if len(self.cameras) != 1:
                raise ContractError(f"{name} is a single image but the model reads cameras {self.cameras}; "
                                    "pass a dict {camera: uint8 (H, W, 3)}")
            per_cam = [(item, name)]
        tensors = [self.image_processor.preprocess([img], [n])[0] for img, n in per_cam]  # (6, S, S) each
        return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)

    # ---- actions ----------------------------------------------------------------------------------------
    def _action_chunks(self, actions: np.ndarray | torch.Tensor, batch: int) -> np.ndarray:
        """(B, K, action_dim) float32 from (B, action_dim) or (B, K, action_dim), checked."""
        acts = np.asarray(actions.detach().cpu() if isinstance(actions, torch.Tensor) else actions, np.float32)
        if acts.ndim == 2:
            acts = acts[:, None]
        if acts.ndim != 3 or acts.shape[0] != batch or acts.shape[2] != self.action_dim:
            raise ContractError(f"actions must be ({batch}, {self.action_dim}) or ({batch}, K, "
                                f"{self.action_dim}), got {np.shape(actions)}")
        if not np.all(np.isfinite(acts)):
            raise ContractError("actions contain NaN/inf")
        if acts.shape[1] != self.action_chunk:  # the policy decodes exactly action_chunk actions
            raise ContractError(f"actions have chunk length {acts.shape[1]}; this model predicts chunks of "
                                f"{self.action_chunk} (set model.action_chunk={acts.shape[1]} or give "
                                f"{self.action_chunk}-step windows)")
        return acts

    def _proprio(self, proprio: Any, batch: int) -> torch.Tensor:
        """(B, proprio_dim) float32, checked."""
        if proprio is None:
            raise ContractError(f"this model reads proprio ({self.proprio_dim} dims); pass proprio=(B, P)")
        p = torch.as_tensor(np.asarray(proprio, np.float32)).reshape(batch, -1)
        if p.shape[1] != self.proprio_dim:
            raise ContractError(f"proprio has {p.shape[1]} dims, the model expects {self.proprio_dim}")
        return p

    # ---- one sample: what the loader's workers run (OpenVLA's RLDSBatchTransform) ---------------------------
    def encode(self, item: np.ndarray | Mapping[str, np.ndarray], instruction: str, actions: np.ndarray | None = None,
               proprio: torch.Tensor | None = None, *, name: str = "images[0]") -> dict[str, torch.Tensor]:
        """One sample's model inputs, unpadded: `input_ids` (L,), `pixel_values` (6 * n_cameras, S, S); with
        `actions` (K, 7) (checked by the caller) also `labels` (L,) and `actions`; `proprio` (P,) when given.

        Autoregressive training: prompt + K*7 action ids + EOS, labels -100 on the prompt. Parallel decoding:
        prompt + K*7 slots holding the pad id (attended), labels = the action ids at the slots."""
        prompt = self.prompt_ids(instruction)
        action_ids = self.action_tokenizer.encode(actions).reshape(-1).tolist() if actions is not None else None
        labels = None
        if self.decoding == "parallel":
            n_slots = self.action_chunk * self.action_dim
            ids = prompt + [self.pad_token_id] * n_slots
            if action_ids is not None:
                labels = [IGNORE_INDEX] * len(prompt) + action_ids
        elif action_ids is not None:
            ids = prompt + action_ids + [self.eos_token_id]
            labels = [IGNORE_INDEX] * len(prompt) + action_ids + [self.eos_token_id]
        else:
            ids = prompt
        out = {"input_ids": torch.tensor(ids, dtype=torch.long), "pixel_values": self.item_pixel_values(item, name)}
        if labels is not None:
            out["labels"] = torch.tensor(labels, dtype=torch.long)
            out["actions"] = torch.from_numpy(np.ascontiguousarray(actions, np.float32))
        if proprio is not None:
            out["proprio"] = proprio
        return out

    def transform(self, sample: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """A data loader sample (`images` {cam: (H, W, 3) or history (T, H, W, 3)}, `instruction`, normalized
        `action` (7,) or chunk (K, 7), `proprio` (P,) or (T, P)) -> its unpadded model inputs (`encode`); the
        latest frame of a history is used. `RLDSLoader(..., transform=processor.transform)` runs it in the
        loader's workers, so the training thread only pads (`collator()`)."""
        cams = {c: (np.asarray(v)[-1] if np.ndim(v) == 4 else v) for c, v in sample["images"].items()}
        item = cams if len(self.cameras) > 1 else cams.get(self.cameras[0], next(iter(cams.values())))
        actions = self._action_chunks(np.asarray(sample["action"], np.float32)[None], 1)[0]
        proprio = None
        if self.use_proprio:
            last = np.asarray(sample["proprio"], np.float32).reshape(-1, self.proprio_dim)[-1]
            proprio = self._proprio(last[None], 1)[0]
        return self.encode(item, sample["instruction"], actions, proprio)

    def collator(self, *, training: bool = True) -> PaddedCollator:
        """Pads and stacks `encode` outputs: on the right for training, on the left for inference."""
        return PaddedCollator(self.pad_token_id, "right" if training else "left", self.llm_max_length)

    # ---- a batch ----------------------------------------------------------------------------------------
    def __call__(
        self,
        images: Sequence[np.ndarray | Mapping[str, np.ndarray]],
        instructions: Sequence[str],
        actions: np.ndarray | torch.Tensor | None = None,
        proprio: np.ndarray | torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Model inputs for a batch. `actions`/`proprio` are normalized (the data loader's output)."""
        if isinstance(instructions, str):
            raise TypeError("instructions must be a list of strings (one per image), got a single str")
        if len(images) != len(instructions):
            raise ValueError(f"{len(images)} images but {len(instructions)} instructions")
        if len(images) == 0:
            raise ValueError("empty batch")
        batch = len(images)
        acts = self._action_chunks(actions, batch) if actions is not None else None
        props = self._proprio(proprio, batch) if self.use_proprio else None
        samples = [self.encode(item, instructions[i], acts[i] if acts is not None else None,
                               props[i] if props is not None else None, name=f"images[{i}]")
                   for i, item in enumerate(images)]
        return self.collator(training=acts is not None)(samples)

    def collate(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Training batch from data loader samples: `transform` each, then pad (`collator()`)."""
        return self.collator()([self.transform(s) for s in samples])


def load_tokenizer(path: str | Path):
    """The tokenizer saved in a checkpoint directory, or None when it has no tokenizer files."""
    path = Path(path)
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
