"""Write `Episode` objects as an RLDS dataset (TFDS layout, flat style), one episode at a time.

Uses TFDS's own writer (`tfds.core.SequentialWriter`) and RLDS feature layout
(`tfds.rlds.rlds_base.build_info`), so the output loads unchanged with
`tfds.builder_from_directory(<root_dir>/<name>/<version>)`, with the reference OpenVLA/Octo pipelines and with
our TensorFlow-free `vla.data.rlds_reader.RLDSReader`. The on-disk schema is documented in
`vla.core.episode`.

Example:
    with RLDSWriter("outputs/data", "sim_pick", image_size=(224, 224), state_dim=8) as w:
        for ep in episodes:
            w.write(ep)
    # -> outputs/data/sim_pick/1.0.0 with dataset_info.json, features.json and several tfrecord shards

TensorFlow is imported when the writer is created (collection processes only; training never writes).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vla.core.episode import CAMERA_TO_FEATURE, Episode
from vla.core.types import ACTION_DIM, ContractError

logger = logging.getLogger(__name__)

_DESCRIPTIONS = {
    "image": "Primary camera RGB observation.",
    "wrist_image": "Wrist camera RGB observation.",
    "state": "Robot proprio state.",
    "action": "End-effector delta action: dx, dy, dz (m), droll, dpitch, dyaw (rad), gripper absolute (1 = open).",
    "executed_action": "The action actually executed (same layout as action) where it differs from the action label, "
                       "e.g. DART-perturbed expert demonstrations whose label is the expert's clean action.",
}


class RLDSWriter:
    """Writes episodes to `<root_dir>/<name>/<version>` through `tfds.core.SequentialWriter`.

    Args:
        root_dir: parent directory; the dataset lands in `<root_dir>/<name>/<version>`.
        name: dataset name (a valid TFDS name: lowercase letters, digits and underscores).
        cameras: camera names written (`primary` required; `wrist` optional), see `CAMERA_TO_FEATURE`.
        image_size: (H, W) of every frame.
        state_dim: proprio dimension P.
        episodes_per_shard: a shard is closed after this many episodes, so parallel readers have work.
        version: dataset version directory.
        overwrite: replace an existing dataset in the same directory (False: fail instead of clobbering).
        executed_action: add the step field `executed_action` (every episode must then carry
            `Episode.executed_action`): what was executed when the `action` label differs from it.
        action_gripper: how the gripper (the contract's absolute g in [0, 1], 1 = open) is stored: `absolute`
            (as is) or `libero` (1 - 2g: -1 open / +1 close, the layout of OpenVLA's `libero_*_no_noops`
            sets, which their registered transform inverts back).
        extra_state: further float32 observation features, name -> size, each episode giving them in
            `extra_state` (e.g. LIBERO's `joint_state`, 7).
        control_hz: the rate the actions were recorded at, kept beside the TFDS files (`control_hz.json`) so
            that training can refuse to fine-tune a base on data of another rate (`vla.train.compat`).
    """

    def __init__(
        self,
        root_dir: str | os.PathLike,
        name: str,
        *,
        cameras: Sequence[str] = ("primary", "wrist"),
        image_size: tuple[int, int] = (224, 224),
        state_dim: int = 8,
        episodes_per_shard: int = 50,
        version: str = "1.0.0",
        overwrite: bool = False,
        description: str = "",
        executed_action: bool = False,
        action_gripper: str = "absolute",
        extra_state: dict[str, int] | None = None,
        control_hz: float | None = None,
    ) -> None:
        unknown = [c for c in cameras if c not in CAMERA_TO_FEATURE]
        if unknown or "primary" not in cameras:
            raise ContractError(
                f"RLDSWriter cameras must include 'primary' and come from {sorted(CAMERA_TO_FEATURE)}, got {list(cameras)}"
            )
        if episodes_per_shard < 1:
            raise ValueError(f"episodes_per_shard must be >= 1, got {episodes_per_shard}")
        self.cameras = tuple(cameras)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.state_dim = int(state_dim)
        self.executed_action = bool(executed_action)
        if action_gripper not in ("absolute", "libero"):
            raise ValueError(f"action_gripper must be 'absolute' or 'libero', got {action_gripper!r}")
        self.action_gripper = action_gripper
        self.extra_state = {str(k): int(v) for k, v in (extra_state or {}).items()}
        self.dataset_dir = Path(root_dir) / name / version
        if (self.dataset_dir / "dataset_info.json").exists() and not overwrite:
            raise FileExistsError(
                f"{self.dataset_dir} already holds a dataset; pass overwrite=True to replace it or choose another name/version"
            )
        self.dataset_dir.mkdir(parents=True, exist_ok=True)
        write_control_rate(self.dataset_dir, control_hz)
        if overwrite:
            for old in self.dataset_dir.glob(f"{name}-*.tfrecord-*"):
                old.unlink()

        import tensorflow_datasets as tfds
        from tensorflow_datasets.rlds import rlds_base

        h, w = self.image_size
        observation = {
            CAMERA_TO_FEATURE[c]: tfds.features.Image(
                shape=(h, w, 3), dtype=np.uint8, encoding_format="jpeg", doc=_DESCRIPTIONS[CAMERA_TO_FEATURE[c]]
            )
            for c in self.cameras
        }
        observation["state"] = tfds.features.Tensor(shape=(self.state_dim,), dtype=np.float32, doc=_DESCRIPTIONS["state"])
        for key, size in self.extra_state.items():
            observation[key] = tfds.features.Tensor(shape=(size,), dtype=np.float32)
        action_doc = _DESCRIPTIONS["action"] if action_gripper == "absolute" else \
            _DESCRIPTIONS["action"].replace("gripper absolute (1 = open)", "gripper -1 open / +1 close (LIBERO)")
        config = rlds_base.DatasetConfig(
            name=name,
            overall_description=description or f"{name}: RLDS episodes written by vla.data.rlds_writer.",
            observation_info=tfds.features.FeaturesDict(observation),
            action_info=tfds.features.Tensor(shape=(ACTION_DIM,), dtype=np.float32, doc=action_doc),
            reward_info=tfds.features.Scalar(dtype=np.float32),
            discount_info=tfds.features.Scalar(dtype=np.float32),
            step_metadata_info={
                "language_instruction": tfds.features.Text(),
                **({"executed_action": tfds.features.Tensor(shape=(ACTION_DIM,), dtype=np.float32,
                                                            doc=_DESCRIPTIONS["executed_action"])}
                   if self.executed_action else {}),
            },
            episode_metadata_info={
                "episode_metadata": tfds.features.FeaturesDict({
                    "episode_id": tfds.features.Text(),
                    "success": tfds.features.Scalar(dtype=np.bool_),
                    "seed": tfds.features.Scalar(dtype=np.int64),
                    "randomization": tfds.features.Text(),
                    "task": tfds.features.Text(),
                })
            },
        )
        identity = tfds.core.DatasetIdentity(
            name=name,
            version=tfds.core.Version(version),
            data_dir=os.fspath(self.dataset_dir),
            module_name="vla.data.rlds_writer",
        )
        info = rlds_base.build_info(config, identity)
        self._writer = tfds.core.SequentialWriter(info, max_examples_per_shard=episodes_per_shard, overwrite=True)
        self._splits: set[str] = set()
        self._counts: dict[str, int] = {}
        self._closed = False

    def __enter__(self) -> "RLDSWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def write(self, episode: Episode, split: str = "train") -> None:
        """Append one episode to `split` (the shard is flushed to disk when it fills up)."""
        if self._closed:
            raise RuntimeError(f"RLDSWriter for {self.dataset_dir} is closed; create a new writer to add episodes")
        self._check(episode)
        if split not in self._splits:
            self._writer.initialize_splits([split])
            self._splits.add(split)
        steps = episode.steps()
        for i, step in enumerate(steps):
            if self.action_gripper == "libero":
                step["action"] = step["action"].copy()
                step["action"][-1] = 1.0 - 2.0 * step["action"][-1]
                if "executed_action" in step:
                    step["executed_action"] = step["executed_action"].copy()
                    step["executed_action"][-1] = 1.0 - 2.0 * step["executed_action"][-1]
            for key in self.extra_state:
                step["observation"][key] = np.asarray(episode.extra_state[key][i], np.float32)
        example = {
            "steps": steps,
            "episode_metadata": episode.metadata.to_features(),
        }
        self._writer.add_examples({split: [example]})
        self._counts[split] = self._counts.get(split, 0) + 1

    def close(self) -> Path:
        """Close all shards and write the final dataset_info.json; return the dataset directory."""
        if not self._closed:
            if self._splits:
                self._writer.close_all()
            else:
                logger.warning("RLDSWriter closed without any episode: nothing was written to %s", self.dataset_dir)
            self._closed = True
            logger.info("wrote %s episodes to %s", self._counts, self.dataset_dir)
        return self.dataset_dir

    def _check(self, episode: Episode) -> None:
        if not isinstance(episode, Episode):
            raise ContractError(f"RLDSWriter.write takes a vla.core.episode.Episode, got {type(episode).__name__}")
        missing = [c for c in self.cameras if c not in episode.images]
        extra = [c for c in episode.images if c not in self.cameras]
        if missing or extra:
            raise ContractError(
                f"episode {episode.metadata.episode_id!r} has cameras {sorted(episode.images)}, the writer expects "
                f"{list(self.cameras)}; create the writer with cameras={tuple(episode.images)}"
            )
        for cam in self.cameras:
            if tuple(episode.images[cam].shape[1:3]) != self.image_size:
                raise ContractError(
                    f"episode {episode.metadata.episode_id!r} camera {cam!r} frames are {episode.images[cam].shape[1:3]}, "
                    f"the writer expects image_size={self.image_size}"
                )
        if (episode.executed_action is not None) != self.executed_action:
            raise ContractError(
                f"episode {episode.metadata.episode_id!r} {'has' if episode.executed_action is not None else 'lacks'} "
                f"executed_action, the writer was created with executed_action={self.executed_action}"
            )
        missing_extra = [k for k in self.extra_state if k not in (episode.extra_state or {})]
        if missing_extra:
            raise ContractError(f"episode {episode.metadata.episode_id!r} lacks extra_state {missing_extra} the writer "
                                "was created with")
        if episode.state.shape[1] != self.state_dim:
            raise ContractError(
                f"episode {episode.metadata.episode_id!r} state has {episode.state.shape[1]} dims, the writer expects "
                f"state_dim={self.state_dim}"
            )


CONTROL_HZ_FILE = "control_hz.json"  # beside dataset_info.json: TFDS's DatasetInfo proto has no field for it


def write_control_rate(dataset_dir: Path, control_hz: float | None) -> None:
    """Record (or, with None, forget) the control rate of the dataset in `dataset_dir`."""
    path = Path(dataset_dir) / CONTROL_HZ_FILE
    if control_hz is None:
        path.unlink(missing_ok=True)
        return
    if not control_hz > 0:
        raise ValueError(f"control_hz must be > 0 (the rate the actions were recorded at), got {control_hz}")
    path.write_text(json.dumps({"control_hz": float(control_hz)}) + "\n")


def read_control_rate(dataset_dir: str | os.PathLike) -> float | None:
    """The control rate a writer recorded for the dataset in `dataset_dir`, None when it recorded none."""
    path = Path(dataset_dir) / CONTROL_HZ_FILE
    return float(json.loads(path.read_text())["control_hz"]) if path.is_file() else None

