"""Episodes for the world model: read RLDS, resize frames, split by episode, normalize, cut windows.

The world model needs, per step, every camera's frame, the proprio, the action and the success label
(the RLDS reward: 1 where the task is solved after that step's action). Episodes are read once with the
TensorFlow-free `vla.data.rlds_reader.RLDSReader` (or taken as `vla.core.episode.Episode` objects), frames
are resized to the model's internal resolution and kept in memory (a 100-episode sim set at 64 px and two
cameras is ~70 MB). The dynamics then trains on latents encoded once per frame, which is what makes CPU
training take minutes; windows over those latents are cut here (`sample_windows`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from vla.core.episode import CAMERA_TO_FEATURE, Episode, EpisodeMetadata
from vla.core.statistics import ArrayStatistics, DatasetStatistics

logger = logging.getLogger(__name__)


@dataclass
class WMEpisode:
    """One episode at the model's resolution. T steps; frames[c] uint8 (T, S, S, 3)."""

    frames: dict[str, np.ndarray]
    proprio: np.ndarray  # (T, P) float32, raw units
    action: np.ndarray  # (T, 7) float32, raw units
    success: np.ndarray  # (T,) float32: solved after the action of step t
    instruction: str
    metadata: EpisodeMetadata
    source_size: tuple[int, int] = (0, 0)  # (H, W) of the frames on disk
    # Observation features appended to `proprio` (WorldModelConfig.state_features), name -> size, in order: the
    # robot's own proprio is proprio[:, :P - sum(sizes)].
    feature_dims: dict[str, int] = field(default_factory=dict)
    latents: np.ndarray | None = field(default=None, repr=False)  # (T, N, D) normalized, filled by the model
    latents_key: object = field(default=None, repr=False, compare=False)  # which model filled them
    norm_proprio: np.ndarray | None = field(default=None, repr=False)  # (T, P) in [-1, 1], filled by the model
    norm_action: np.ndarray | None = field(default=None, repr=False)  # (T, 7), filled by the model

    def __len__(self) -> int:
        return int(self.action.shape[0])


class DataMismatchError(ValueError):
    """The episodes do not match what the checkpoint was trained on (cameras, proprio size)."""


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (T, H, W, 3) frames to (T, size, size, 3) with area/bilinear filtering (torch)."""
    import torch
    import torch.nn.functional as F

    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    mode = "area" if frames.shape[1] > size else "bilinear"
    y = F.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def _missing_feature(name: str, where: str, have: Sequence[str]) -> DataMismatchError:
    return DataMismatchError(
        f"{where} has no observation feature {name!r} (it has {sorted(have)}), which world_model.state_features "
        f"asks for; collect the data with `vla-collect ... {name}=true` (object_state) or drop it from state_features")


def with_features(state: np.ndarray, extras: dict[str, np.ndarray], features: Sequence[str],
                  where: str) -> tuple[np.ndarray, dict[str, int]]:
    """(proprio with the named per-step features appended, their sizes): the state the world model predicts."""
    parts, dims = [np.asarray(state, np.float32).reshape(len(state), -1)], {}
    for name in features:
        if name not in extras:
            raise _missing_feature(name, where, list(extras))
        v = np.asarray(extras[name], np.float32).reshape(len(state), -1)
        parts.append(v)
        dims[name] = int(v.shape[1])
    return np.concatenate(parts, 1), dims


def from_episode(ep: Episode, cameras: Sequence[str], size: int, state_features: Sequence[str] = ()) -> WMEpisode:
    """Convert an in-memory `Episode` (e.g. fresh from a collector) to a `WMEpisode`."""
    missing = [c for c in cameras if c not in ep.images]
    if missing:
        raise DataMismatchError(
            f"episode {ep.metadata.episode_id!r} has cameras {sorted(ep.images)}, the world model needs {list(cameras)} "
            f"(missing {missing}); train a model with world_model.cameras={sorted(ep.images)} or use data with these cameras"
        )
    reward = np.asarray(ep.reward, np.float32)
    success = (reward > 0).astype(np.float32)
    proprio, dims = with_features(ep.state, ep.extra_state or {}, state_features,
                                  f"episode {ep.metadata.episode_id!r}")
    action = ep.executed_action if ep.executed_action is not None else ep.action
    return WMEpisode(
        frames={c: resize_frames(ep.images[c], size) for c in cameras},
        proprio=proprio, action=np.asarray(action, np.float32), success=success,
        instruction=ep.instruction, metadata=ep.metadata, source_size=tuple(ep.images[cameras[0]].shape[1:3]),
        feature_dims=dims,
    )


def _text(v) -> str:
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0] if v.size else b""
    return v.decode() if isinstance(v, (bytes, np.bytes_)) else str(v)


def read_rlds(dataset_dir: str | Path, cameras: Sequence[str], size: int, *, split: str = "train",
              max_episodes: int = 0, state_features: Sequence[str] = ()) -> list[WMEpisode]:
    """Read an RLDS dataset written by `RLDSWriter` (or any flat-style one) into `WMEpisode`s."""
    from vla.data.rlds_reader import RLDSReader

    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "features.json").is_file():
        raise FileNotFoundError(
            f"{dataset_dir} is not an RLDS dataset directory (no features.json); pass <root>/<name>/<version>, "
            "e.g. the directory vla-collect printed"
        )
    reader = RLDSReader(dataset_dir)
    out: list[WMEpisode] = []
    for raw in reader.episodes(split=split, decode_images=True):
        steps = raw["steps"]
        obs = steps["observation"]
        frames = {}
        for c in cameras:
            key = CAMERA_TO_FEATURE.get(c, c)
            if key not in obs:
                have = sorted(k for k in obs if k not in ("state",))
                raise DataMismatchError(
                    f"{dataset_dir}: camera {c!r} (feature {key!r}) is not in the data, which has {have}; "
                    f"the world model was configured for cameras {list(cameras)}"
                )
            frames[c] = np.asarray(obs[key])
        t = len(steps["action"])
        reward = np.asarray(steps.get("reward", np.zeros(t)), np.float32).reshape(t)
        meta = EpisodeMetadata.from_features(raw.get("episode_metadata", {}) or {})
        if not np.any(reward > 0) and meta.success:
            reward[-1] = 1.0
        state = np.asarray(obs.get("state", np.zeros((t, 0))), np.float32).reshape(t, -1)
        state, dims = with_features(state, obs, state_features, str(dataset_dir))
        out.append(WMEpisode(
            frames={c: resize_frames(f, size) for c, f in frames.items()},
            # A dynamics model needs what the arm did: DART-perturbed demonstrations label `action` with the expert's
            # clean action and record the executed one as `executed_action`.
            proprio=state, action=np.asarray(steps.get("executed_action", steps["action"]), np.float32), success=(reward > 0).astype(np.float32),
            instruction=_text(steps["language_instruction"][0]) if t else "", metadata=meta,
            source_size=tuple(frames[cameras[0]].shape[1:3]), feature_dims=dims,
        ))
        if max_episodes and len(out) >= max_episodes:
            break
    if not out:
        raise ValueError(f"{dataset_dir} split {split!r} holds no episodes")
    logger.info("read %d episodes (%d steps) from %s", len(out), sum(len(e) for e in out), dataset_dir)
    return out


def load_episodes(sources: Iterable, cameras: Sequence[str], size: int, *, split: str = "train",
                  max_episodes: int = 0, state_features: Sequence[str] = ()) -> list[WMEpisode]:
    """Episodes from dataset directories and/or `Episode` objects, at the model's resolution; `state_features`
    (observation feature names) are appended to each step's proprio."""
    out: list[WMEpisode] = []
    for src in sources:
        if isinstance(src, Episode):
            out.append(from_episode(src, cameras, size, state_features))
        elif isinstance(src, WMEpisode):
            if list(src.feature_dims) != list(state_features):
                raise DataMismatchError(f"episode {src.metadata.episode_id!r} carries state features "
                                        f"{list(src.feature_dims)}, expected {list(state_features)}")
            out.append(src)
        else:
            out.extend(read_rlds(src, cameras, size, split=split, max_episodes=max_episodes,
                                 state_features=state_features))
        if max_episodes and len(out) >= max_episodes:
            return out[:max_episodes]
    return out


def split_episodes(episodes: list[WMEpisode], *, val_fraction: float, holdout_seeds: Sequence[int] = (),
                   holdout_seed_fraction: float = 0.0, seed: int = 0) -> tuple[list[int], list[int]]:
    """Episode-level split. Episodes whose DR seed is held out go to validation only.

    Returns (train indices, val indices). Held-out seeds: the ones listed, plus `holdout_seed_fraction` of
    the distinct seeds; the rest of validation is a random `val_fraction` of the remaining episodes.
    """
    rng = np.random.default_rng(seed)
    seeds = sorted({e.metadata.seed for e in episodes})
    held = set(int(s) for s in holdout_seeds)
    if holdout_seed_fraction > 0 and len(seeds) > 1:
        k = max(1, int(round(holdout_seed_fraction * len(seeds))))
        held |= set(rng.choice(seeds, size=k, replace=False).tolist())
    val = [i for i, e in enumerate(episodes) if e.metadata.seed in held]
    rest = [i for i in range(len(episodes)) if i not in set(val)]
    rng.shuffle(rest)
    n_val = int(round(val_fraction * len(rest))) if len(episodes) > 1 else 0
    if val_fraction > 0 and n_val == 0 and len(rest) > 1:
        n_val = 1
    val = sorted(val + rest[:n_val])
    train = sorted(rest[n_val:])
    if not train:
        raise ValueError(f"no training episodes left after the split ({len(episodes)} episodes, {len(val)} held out); "
                         "lower data.val_fraction / holdout settings or add data")
    return train, val


def compute_statistics(episodes: list[WMEpisode]) -> DatasetStatistics:
    """Action and proprio statistics (OpenVLA layout; gripper not normalized) of the training episodes."""
    actions = np.concatenate([e.action for e in episodes])
    mask = np.ones(7, bool)
    mask[6] = False
    proprio = np.concatenate([e.proprio for e in episodes])
    return DatasetStatistics(
        action=ArrayStatistics.compute(actions, mask=mask),
        proprio=ArrayStatistics.compute(proprio) if proprio.shape[1] else None,
        num_transitions=int(actions.shape[0]), num_trajectories=len(episodes),
    )


def window_indices(length: int, start: int, count: int) -> np.ndarray:
    """Step indices start..start+count-1 clamped to [0, length-1] (history before step 0 repeats step 0)."""
    return np.clip(np.arange(start, start + count), 0, length - 1)


def sample_windows(episodes: list[WMEpisode], batch_size: int, history: int, rollout: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A batch of windows over encoded episodes for the dynamics.

    Each window has `history + rollout` steps: `history` context steps (the first ones may repeat step 0, as
    at the start of an imagined rollout) followed by `rollout` steps to predict autoregressively. The target
    of position i is step i+1, valid while it exists in the episode.

    Returns dict of arrays: latents (B, L+1, N, D) normalized, proprio (B, L+1, P) normalized,
    action (B, L+1, 7) normalized, success (B, L+1), valid (B, L+1) bool (step exists and is not a repeat),
    with L = history + rollout; position L is only a target.
    """
    L = history + rollout
    out = {k: [] for k in ("latents", "proprio", "action", "success", "valid")}
    lengths = np.array([len(e) for e in episodes])
    probs = lengths / lengths.sum()
    for _ in range(batch_size):
        e = episodes[rng.choice(len(episodes), p=probs)]
        t = len(e)
        start = int(rng.integers(-(history - 1), max(t - 1, 1)))
        raw = np.arange(start, start + L + 1)
        idx = window_indices(t, start, L + 1)
        out["latents"].append(e.latents[idx])
        out["proprio"].append(e.norm_proprio[idx])
        out["action"].append(e.norm_action[idx])
        out["success"].append(e.success[idx])
        out["valid"].append((raw >= 0) & (raw <= t - 1))
    return {k: np.stack(v) for k, v in out.items()}
