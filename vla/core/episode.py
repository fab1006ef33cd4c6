"""The episode schema on disk (RLDS, TFDS layout, flat style) and its in-memory form.

On disk, one TFDS example per episode:
    steps/observation/image          uint8 (H, W, 3) JPEG      camera `primary`
    steps/observation/wrist_image    uint8 (H, W, 3) JPEG      camera `wrist` (optional)
    steps/observation/state          float32 (P,)              proprio
    steps/action                     float32 (7,)              dxyz, drpy, gripper absolute (1 = open)
    steps/language_instruction       string
    steps/reward, steps/discount     float32
    steps/is_first, is_last, is_terminal   bool
    episode_metadata/episode_id      string
    episode_metadata/success         bool
    episode_metadata/seed            int64
    episode_metadata/randomization   string (JSON of the sampled domain-randomization parameters)
    episode_metadata/task            string (task / env id, "" when unknown)

Writers (`vla.data.rlds_writer`) take `Episode` objects; readers return the TFDS-style nested dict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.core.types import ACTION_DIM, ContractError, validate_action

#: camera name in `Observation.images` -> feature key under `steps/observation` on disk.
CAMERA_TO_FEATURE = {"primary": "image", "wrist": "wrist_image"}
FEATURE_TO_CAMERA = {v: k for k, v in CAMERA_TO_FEATURE.items()}


@dataclass
class EpisodeMetadata:
    episode_id: str
    success: bool = False
    seed: int = -1
    randomization: dict[str, Any] = field(default_factory=dict)
    task: str = ""

    def to_features(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "success": bool(self.success),
            "seed": int(self.seed),
            "randomization": json.dumps(self.randomization, sort_keys=True),
            "task": self.task,
        }

    @classmethod
    def from_features(cls, d: dict[str, Any]) -> "EpisodeMetadata":
        def s(v):
            return v.decode() if isinstance(v, (bytes, np.bytes_)) else str(v)

        rnd = d.get("randomization", "{}")
        return cls(
            episode_id=s(d.get("episode_id", "")),
            success=bool(d.get("success", False)),
            seed=int(d.get("seed", -1)),
            randomization=json.loads(s(rnd) or "{}"),
            task=s(d.get("task", "")),
        )


@dataclass
class Episode:
    """One episode in memory, T steps. Images are decoded uint8 (T, H, W, 3) per camera."""

    images: dict[str, np.ndarray]
    state: np.ndarray  # (T, P) float32
    action: np.ndarray  # (T, 7) float32
    instruction: str
    metadata: EpisodeMetadata
    reward: np.ndarray | None = None  # (T,) float32; default: 1 on the last step of a successful episode
    is_terminal_last: bool | None = None  # default: success (a failed episode is truncated, not terminal)
    # (T, 7) what the robot actually executed when it differs from the `action` label (DART-style perturbed
    # demonstrations: the label is the expert's clean action); written as the step field `executed_action`.
    executed_action: np.ndarray | None = None
    # further per-step float observation features, name -> (T, n) (RLDSWriter's `extra_state`)
    extra_state: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.state = np.asarray(self.state, dtype=np.float32)
        self.action = validate_action(self.action, name="Episode.action")
        if self.action.ndim != 2:
            self.action = self.action[None]
        t = self.action.shape[0]
        if "primary" not in self.images:
            raise ContractError(f"Episode.images needs a 'primary' camera, has {sorted(self.images)}")
        for name, imgs in self.images.items():
            if imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[0] != t or imgs.shape[-1] != 3:
                raise ContractError(f"Episode.images[{name!r}] must be uint8 ({t}, H, W, 3), got {imgs.dtype} {imgs.shape}")
        if self.state.ndim != 2 or self.state.shape[0] != t:
            raise ContractError(f"Episode.state must be ({t}, P), got {self.state.shape}")
        if not np.all(np.isfinite(self.state)):
            raise ContractError("Episode.state has non-finite values")
        if self.reward is None:
            self.reward = np.zeros(t, np.float32)
            if self.metadata.success:
                self.reward[-1] = 1.0
        self.reward = np.asarray(self.reward, np.float32).reshape(t)
        if self.is_terminal_last is None:
            self.is_terminal_last = bool(self.metadata.success)
        if self.executed_action is not None:
            self.executed_action = validate_action(self.executed_action, name="Episode.executed_action")
            if self.executed_action.shape != self.action.shape:
                raise ContractError(f"Episode.executed_action must be {self.action.shape} like action, "
                                    f"got {self.executed_action.shape}")

    def __len__(self) -> int:
        return int(self.action.shape[0])

    def steps(self) -> list[dict[str, Any]]:
        """Steps as RLDS step dicts (flat style), ready for a TFDS writer."""
        t = len(self)
        out = []
        for i in range(t):
            obs = {CAMERA_TO_FEATURE[c]: self.images[c][i] for c in self.images}
            obs["state"] = self.state[i]
            out.append({
                "observation": obs,
                "action": self.action[i],
                "language_instruction": self.instruction,
                "reward": np.float32(self.reward[i]),
                "discount": np.float32(1.0),
                "is_first": i == 0,
                "is_last": i == t - 1,
                "is_terminal": bool(i == t - 1 and self.is_terminal_last),
            })
            if self.executed_action is not None:
                out[-1]["executed_action"] = self.executed_action[i]
        return out



