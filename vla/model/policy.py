"""`VLAPolicy`: a saved VLA checkpoint as a `vla.Policy` (processor + model + statistics -> actions).

    policy = VLAPolicy.from_pretrained("checkpoints/openvla-7b", unnorm_key="bridge_orig", device="cuda",
                                       dtype="bfloat16")
    action = policy.act(observation)          # (7,) float32, or (K, 7) for chunked models
    actions = policy.act_batch(observations)  # one batched forward pass, left padding

The statistics are chosen when the policy is built: a missing or ambiguous `unnorm_key` fails then, listing
the keys the checkpoint carries. The gripper dimension is clipped to [0, 1] (the contract's absolute
gripper); everything else is OpenVLA's un-normalization.

Instructions: an empty (or all-whitespace) one raises. The checkpoint's statistics record the words of the
instructions it was trained on (`vla.data.statistics.instruction_vocabulary`); an instruction with other words
is still run (the byte-level tokenizer splits any word into pieces, so the prompt is never empty), but how the
model acts on it is untested, so `unknown_words="warn"` (default) logs one WARNING per distinct instruction
naming those words and the closest known ones, `"error"` raises ValueError instead and `"ignore"` says nothing.
Checkpoints without a vocabulary (released OpenVLA ones, runs before it existed) are not checked.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vla.core.statistics import DatasetStatistics, select_statistics
from vla.core.types import GRIPPER_INDEX, ContractError, Observation, Policy, validate_action
from vla.data.statistics import UNKNOWN_WORDS, VOCABULARY_KEY, drop_unknown_words, instruction_words

logger = logging.getLogger(__name__)

STATISTICS_FILE = "dataset_statistics.json"
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    """`auto`/None: bf16 on a GPU, fp32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r}; choose one of {sorted(_DTYPES)} or 'auto'")
    return _DTYPES[dtype]


def load_checkpoint(path: str | Path, *, device: str = "cpu", dtype: str | torch.dtype | None = None,
                    attn_implementation: str | None = None):
    """(model, processor) from a checkpoint directory; missing or mismatched tensors raise, naming them."""
    from vla.model.convert_openvla import CheckpointMismatchError
    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.processing_vla import VLAProcessor

    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint directory (no config.json)")
    cfg = json.loads((path / "config.json").read_text())
    if cfg.get("model_type") == "openvla":
        raise ValueError(f"{path} is a released OpenVLA checkpoint (model_type 'openvla'); convert it first: "
                         f"vla-import {path} <out_dir>")
    if not any(path.glob("*.safetensors")):
        raise FileNotFoundError(f"{path} has no *.safetensors weights")
    kwargs = {"dtype": resolve_dtype(dtype, device), "output_loading_info": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model, info = VLAForActionPrediction.from_pretrained(str(path), **kwargs)
    except RuntimeError:  # size mismatches raise without naming the tensors; load again to collect them
        model, info = VLAForActionPrediction.from_pretrained(str(path), ignore_mismatched_sizes=True, **kwargs)
    problems = []
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k) for k in info.get(kind) or [])
        if keys:
            problems.append(f"{kind.replace('_', ' ')} ({len(keys)}): {keys[:20]}")
    if problems:
        raise CheckpointMismatchError(f"checkpoint {path} does not fit its config: " + "; ".join(problems))
    return model.to(device).eval(), VLAProcessor.from_pretrained(path)


def checkpoint_statistics(model_config, path: Path | None) -> dict:
    """`norm_stats` from the config, completed by a `dataset_statistics.json` beside it (fine-tuning runs)."""
    stats = dict(model_config.norm_stats or {})
    if path is not None and (path / STATISTICS_FILE).is_file():
        for key, value in json.loads((path / STATISTICS_FILE).read_text()).items():
            stats.setdefault(key, value)
    return stats


def statistics_keys(path: str | Path) -> list[str]:
    """The `unnorm_key`s a checkpoint directory carries (config.json's norm_stats and dataset_statistics.json),
    read from the JSON files alone: a caller can pick a key before paying for the weights."""
    path = Path(path).expanduser()
    cfg = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    keys = set(cfg.get("norm_stats") or {})
    if (path / STATISTICS_FILE).is_file():
        keys |= set(json.loads((path / STATISTICS_FILE).read_text()))
    return sorted(keys)


class InstructionChecker:
    """Checks each distinct instruction once against the words a checkpoint was trained on (module docstring).

    `norm_stats`: the checkpoint's statistics, every entry (a model trained on a mixture knows the words of
    all its datasets); without a vocabulary in every entry there is nothing to check against.
    """

    def __init__(self, norm_stats: dict, unknown_words: str = "warn") -> None:
        if unknown_words not in UNKNOWN_WORDS:
            raise ValueError(f"unknown_words={unknown_words!r}; choose one of {list(UNKNOWN_WORDS)}")
        self.mode = unknown_words
        entries = [s.extra if isinstance(s, DatasetStatistics) else s for s in norm_stats.values()]
        vocabularies = [e.get(VOCABULARY_KEY) for e in entries if isinstance(e, dict)]
        self.words: frozenset[str] | None = None
        if vocabularies and all(isinstance(v, dict) and "words" in v for v in vocabularies):
            self.words = frozenset(w for v in vocabularies for w in v["words"])
        elif self.mode != "ignore":
            logger.info("this checkpoint records no instruction vocabulary (released OpenVLA checkpoints and runs "
                        "before it existed): instructions are not checked for words it was never trained on")
        self._seen: dict[str, str | None] = {}  # instruction -> problem message (None: fine)

    def check(self, instruction: str) -> str:
        """Warn about, raise on, ignore or drop words outside the vocabulary; each distinct string is judged once.
        Returns the instruction the model reads (`drop`: without those words)."""
        if instruction not in self._seen:
            self._seen[instruction] = self._problem(instruction)
            if self._seen[instruction] and self.mode in ("warn", "drop"):
                logger.warning("%s", self._seen[instruction])
        if self._seen[instruction] and self.mode == "error":
            raise ValueError(self._seen[instruction])
        if self._seen[instruction] and self.mode == "drop":
            kept = drop_unknown_words(instruction, self.words)
            if not kept:
                raise ValueError(f"{self._seen[instruction]}. With unknown_words=drop nothing of it is left to read")
            return kept
        return instruction

    def _problem(self, instruction: str) -> str | None:
        if self.words is None or self.mode == "ignore":
            return None
        unknown = [w for w in dict.fromkeys(instruction_words(instruction)) if w not in self.words]
        if not unknown:
            return None
        known = sorted(self.words)
        parts = []
        for w in unknown:
            close = difflib.get_close_matches(w, known, n=3, cutoff=0.6)
            near = f"closest known: {', '.join(map(repr, close))}" if close else "no close known word"
            parts.append(f"{w!r} ({near})")
        handling = ("they are dropped (unknown_words=drop): the model reads "
                    f"{drop_unknown_words(instruction, self.words)!r}" if self.mode == "drop" else
                    "the tokenizer splits unseen words into sub-word pieces, so the model still runs, but how it acts "
                    "on them is untested")
        return (f"instruction {instruction!r} has words the checkpoint never saw in its training instructions: "
                f"{'; '.join(parts)}; {handling}. Rephrase with known words ({len(known)} in the checkpoint's "
                "statistics, key instruction_vocabulary), or choose with the policy option unknown_words: warn "
                "(the default: this warning), error (refuse the instruction), ignore or drop (leave them out)")


class VLAPolicy(Policy):
    """Greedy actions from a VLA; batched over observations; chunks when the model predicts chunks."""

    def __init__(self, model, processor, *, unnorm_key: str | None = None, norm_stats: dict | None = None,
                 use_cache: bool = True, center_crop: bool = False, unknown_words: str = "warn") -> None:
        self.model = model.eval()
        self.processor = processor
        self.config = model.config
        stats = norm_stats if norm_stats is not None else dict(self.config.norm_stats or {})
        self._norm_stats = stats
        self._statistics = select_statistics(stats, unnorm_key)
        self.unnorm_key = unnorm_key or sorted(stats)[0]
        self.use_cache = use_cache
        self.center_crop = center_crop
        self.chunk_size = int(self.config.action_chunk)
        self.cameras = tuple(self.config.cameras)
        self._instruction = ""
        self.unknown_words = unknown_words
        self.instructions = InstructionChecker(stats, unknown_words)
        if processor.tokenizer is None:
            raise ValueError("the checkpoint has no tokenizer files; the policy needs them to read instructions")

    def with_unnorm_key(self, unnorm_key: str) -> "VLAPolicy":
        """The same model and processor (shared, not copied) un-normalizing with another statistics entry, e.g.
        one LIBERO suite after another; a missing key fails listing those the checkpoint carries."""
        return VLAPolicy(self.model, self.processor, unnorm_key=unnorm_key, norm_stats=self._norm_stats,
                         use_cache=self.use_cache, center_crop=self.center_crop, unknown_words=self.unknown_words)

    @classmethod
    def from_pretrained(cls, path: str | Path, unnorm_key: str | None = None, device: str = "cpu",
                        dtype: str | torch.dtype | None = None, attn_implementation: str | None = None,
                        **kwargs) -> "VLAPolicy":
        """Load a checkpoint directory (`save_pretrained` / `vla-train` / `vla-import` output)."""
        model, processor = load_checkpoint(path, device=device, dtype=dtype, attn_implementation=attn_implementation)
        stats = checkpoint_statistics(model.config, Path(path).expanduser())
        return cls(model, processor, unnorm_key=unnorm_key, norm_stats=stats, **kwargs)

    @property
    def statistics(self) -> DatasetStatistics:
        return self._statistics

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def reset(self, instruction: str) -> None:
        """The episode's instruction; "" leaves it to each observation's `instruction`."""
        self._instruction = instruction
        if instruction and instruction.strip():
            self.instructions.check(instruction)  # raises now rather than at the first action

    def act(self, observation: Observation) -> np.ndarray:
        return self.act_batch([observation])[0]

    def act_batch(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        if not observations:
            return []
        with torch.inference_mode():  # no autograd bookkeeping at all (a few % per call on small models)
            batch = self.prepare(observations)
            normalized = self.model.predict_normalized(batch["input_ids"], batch["pixel_values"],
                                                       batch["attention_mask"], batch.get("proprio"),
                                                       use_cache=self.use_cache)  # (B, K, 7) float64
        actions = self.unnormalize(normalized)
        out = []
        for a in actions:
            a = a[0] if self.chunk_size == 1 else a
            out.append(validate_action(a, name="VLAPolicy action"))
        return out

    def prepare(self, observations: Sequence[Observation]) -> dict[str, torch.Tensor]:
        """Processor inputs on the model's device (validates the observations against the model's cameras)."""
        images, instructions, proprio = [], [], []
        for i, obs in enumerate(observations):
            if not isinstance(obs, Observation):
                raise ContractError(f"observations[{i}] must be a vla.Observation, got {type(obs).__name__}")
            obs.validate(cameras=self.cameras)
            cams = {c: self._crop(obs.images[c]) for c in self.cameras}
            images.append(cams if len(self.cameras) > 1 else cams[self.cameras[0]])
            instruction = obs.instruction if (obs.instruction or "").strip() else self._instruction
            if not (instruction or "").strip():
                raise ContractError(
                    f"observations[{i}] has no instruction (Observation.instruction={obs.instruction!r}, "
                    f"reset({self._instruction!r})): the model needs a task description such as 'pick up the red "
                    "cube'; pass it to reset(instruction) or set Observation.instruction")
            instructions.append(self.instructions.check(instruction))
            if self.config.use_proprio:
                if self._statistics.proprio is None:
                    raise ValueError(f"statistics {self.unnorm_key!r} have no proprio entry; the model reads proprio")
                proprio.append(self._statistics.proprio.normalize(obs.proprio))
        batch = self.processor(images, instructions, proprio=np.stack(proprio) if proprio else None)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _crop(self, image: np.ndarray) -> np.ndarray:
        """OpenVLA's test-time center crop (0.9 of the area) for models trained with image augmentation."""
        if not self.center_crop:
            return image
        h, w = image.shape[:2]
        s = math.sqrt(0.9)
        ch, cw = max(1, round(h * s)), max(1, round(w * s))
        top, left = (h - ch) // 2, (w - cw) // 2
        return np.ascontiguousarray(image[top:top + ch, left:left + cw])

    def unnormalize(self, normalized: np.ndarray) -> np.ndarray:
        """(B, K, 7) normalized -> float32 contract actions (gripper clipped to [0, 1])."""
        a = self._statistics.action.unnormalize(normalized)
        a[..., GRIPPER_INDEX] = np.clip(a[..., GRIPPER_INDEX], 0.0, 1.0)
        return a
