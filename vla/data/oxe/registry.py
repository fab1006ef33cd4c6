"""The dataset registry: one `DatasetSpec` per RLDS dataset, looked up by name.

A spec says where the cameras are, how fast the robot is controlled, how proprio is laid out and which
standardization function (`vla.data.oxe.transforms`) turns a raw episode into the common one:

    {"images": {"primary": arr, "wrist": arr},   # the spec's cameras (`primary`, `secondary`, `wrist`) as the
                                                 # reader gave them: encoded bytes (T,) or uint8 (T,H,W,3)
     "proprio": float32 (T, P),                  # concatenation of `state_obs_keys`, None -> a zero column
     "action": float32 (T, 7),                   # dx, dy, dz, droll, dpitch, dyaw, gripper absolute (1 = open)
     "instruction": str,                         # the first non-empty step instruction ("": unlabeled)
     "reward": float32 (T,),                     # when the dataset has one
     "metadata": dict}                           # the raw episode_metadata (absent -> {})

Frame decoding (the loader) applies `rotate_images_180`. Only end-effector-delta datasets can be
standardized: a spec with another `action_encoding` is registered (so its name resolves and the error is
precise) but `get_dataset_spec` / `standardize` refuse it and explain how to register a converter.

Example:
    from vla.data.oxe import get_dataset_spec
    spec = get_dataset_spec("fractal20220817_data")
    for ep in RLDSReader(spec.find_dir("/data/oxe")).episodes():
        std = spec.standardize(ep)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from vla.core.types import ACTION_DIM, CAMERA_NAMES as CAMERAS, ContractError
from vla.data.oxe.transform_utils import as_2d, copy_tree, to_str

logger = logging.getLogger(__name__)

#: Action encodings known to the registry; only EEF_DELTA can be standardized to the 7-D contract action.
EEF_DELTA = "eef_delta"
ACTION_ENCODINGS = (EEF_DELTA, "eef_r6", "eef_absolute", "joint_pos", "joint_pos_bimanual")


class UnsupportedActionEncodingError(ValueError):
    """The dataset's actions are not end-effector deltas, so they cannot become the 7-D contract action."""


@dataclass(frozen=True)
class DatasetSpec:
    """How to read and standardize one RLDS dataset.

    Attributes:
        name: registry name (OpenVLA's dataset name, which is also the `unnorm_key` of its statistics).
        image_keys: camera -> raw key under `steps/observation` (None: the dataset has no such camera).
        control_hz: control frequency of the recorded actions.
        state_obs_keys: proprio layout: observation keys (raw or made by the transform) concatenated in
            order, each None adding one zero column (the reference's padding).
        proprio_dim: P of the standardized proprio (None: whatever the data has, e.g. our own datasets).
        transform: the registered per-dataset standardization function (see `vla.data.oxe.transforms`).
        rotate_images_180: frames are stored upside down, so the loader rotates them when decoding. No
            registered dataset sets it: OpenVLA's `libero_*_no_noops` store upright frames (its conversion
            rotated robosuite's renders when writing). Set it for a copy written from raw robosuite frames.
        action_encoding: one of `ACTION_ENCODINGS`; only "eef_delta" is standardizable.
        action_normalization_mask: per action dim, whether BOUNDS_Q99 normalizes it (not the gripper).
        tfds_name: directory name of the dataset under a data root (default: `name`).
        version: version directory (None: the only / highest one present).
        filter_zero_actions: the reference drops no-op frames of this dataset (DROID); how the loader tests
            for them is `data.zero_action_filter` (see `motionless_actions`).
        optional_cameras: cameras that may be absent from a dataset (our writer's wrist camera).
        notes: what differs from the raw data or from the reference.
    """

    name: str
    image_keys: Mapping[str, str | None]
    control_hz: float
    state_obs_keys: tuple[str | None, ...]
    proprio_dim: int | None
    transform: Callable[[dict], dict] | None
    rotate_images_180: bool = False
    action_encoding: str = EEF_DELTA
    action_normalization_mask: tuple[bool, ...] = (True,) * 6 + (False,)
    tfds_name: str | None = None
    version: str | None = None
    filter_zero_actions: bool = False
    optional_cameras: tuple[str, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        unknown = [c for c in self.image_keys if c not in CAMERAS]
        if unknown:
            raise ValueError(f"DatasetSpec {self.name!r}: image_keys has unknown cameras {unknown}; allowed {list(CAMERAS)}")
        if self.action_encoding not in ACTION_ENCODINGS:
            raise ValueError(
                f"DatasetSpec {self.name!r}: action_encoding {self.action_encoding!r} is not one of {list(ACTION_ENCODINGS)}"
            )
        if self.action_encoding == EEF_DELTA:
            if self.transform is None:
                raise ValueError(f"DatasetSpec {self.name!r}: an eef_delta dataset needs a standardization transform")
            if not self.image_keys.get("primary"):
                raise ValueError(f"DatasetSpec {self.name!r}: needs a primary camera key in image_keys")
        if len(self.action_normalization_mask) != ACTION_DIM:
            raise ValueError(f"DatasetSpec {self.name!r}: action_normalization_mask must have {ACTION_DIM} entries")
        object.__setattr__(self, "image_keys", dict(self.image_keys))
        object.__setattr__(self, "state_obs_keys", tuple(self.state_obs_keys))

    @property
    def directory_name(self) -> str:
        return self.tfds_name or self.name

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(c for c in CAMERAS if self.image_keys.get(c))

    def check_supported(self) -> None:
        """Raise `UnsupportedActionEncodingError` unless this dataset's actions are end-effector deltas."""
        if self.action_encoding != EEF_DELTA:
            raise UnsupportedActionEncodingError(
                f"dataset {self.name!r} stores {self.action_encoding!r} actions, not end-effector deltas; the 7-D "
                "action contract (dxyz, drpy, gripper) cannot be derived from it by re-labelling. Register a "
                "converter that computes EEF deltas (e.g. with forward kinematics):\n"
                "    from dataclasses import replace\n"
                "    from vla.data.oxe import get_dataset_spec, register_dataset\n"
                f"    spec = get_dataset_spec({self.name!r}, require_eef_delta=False)\n"
                "    register_dataset(replace(spec, transform=my_converter, action_encoding='eef_delta'), overwrite=True)\n"
                "where my_converter(steps) sets steps['action'] to float32 (T, 7) (see vla/data/oxe/transforms.py)."
            )

    def standardize(self, episode: Mapping[str, Any], *, images: bool = True) -> dict[str, Any]:
        """Raw reader episode (`{"steps": {...}, "episode_metadata": {...}}`) -> the common episode above.

        images=False skips the cameras (statistics read episodes without their image features).
        """
        self.check_supported()
        if "steps" not in episode:
            raise ContractError(f"{self.name}: an episode must have 'steps'; got keys {sorted(episode)}")
        steps = copy_tree(episode["steps"])
        try:
            traj = self.transform(steps)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            obs_keys = sorted(episode["steps"].get("observation", {}))
            act = episode["steps"].get("action")
            act_desc = f"dict {sorted(act)}" if isinstance(act, Mapping) else f"array {np.shape(act)}"
            raise ContractError(
                f"{self.name}: the standardization function failed on this episode ({type(e).__name__}: {e}). "
                f"The episode has observation keys {obs_keys} and action {act_desc}. Is the dataset directory the "
                f"one this spec is for (see features.json), or does the dataset need its own spec?"
            ) from e
        action = np.asarray(traj["action"], dtype=np.float32)
        t = action.shape[0]
        if action.ndim != 2 or action.shape[1] != ACTION_DIM:
            raise ContractError(
                f"{self.name}: standardized action must be (T, 7) (xyz and rpy deltas, gripper), got {action.shape}. "
                "Map the robot's actions to that layout in the dataset's transform: for a LeRobot dataset "
                "lerobot.action_space / lerobot.action_transform (docs/data.md), for an RLDS dataset its "
                "DatasetSpec.transform (docs/oxe.md)")
        obs = traj.get("observation", {})
        frames = {}
        for cam in self.cameras if images else ():
            key = self.image_keys[cam]
            if key not in obs and cam in self.optional_cameras:
                continue
            if key not in obs:
                raise ContractError(
                    f"{self.name}: image key {key!r} (camera {cam!r}) not in the episode's observation keys "
                    f"{sorted(obs)}; fix image_keys in the dataset spec"
                )
            frames[cam] = obs[key]
        proprio = self._proprio(obs, t)
        instruction = _first_instruction(traj.get("language_instruction"), t)
        out = {"images": frames, "proprio": proprio, "action": action, "instruction": instruction,
               "metadata": dict(episode.get("episode_metadata", {}) or {})}
        if "reward" in traj:
            reward = np.asarray(traj["reward"], dtype=np.float32).reshape(-1)
            if reward.shape[0] != t:
                raise ContractError(f"{self.name}: reward has {reward.shape[0]} steps, the actions {t}; a transform "
                                    "that drops steps must slice every array (see transform_utils.slice_tree)")
            out["reward"] = reward
        return out

    def _proprio(self, obs: Mapping[str, Any], t: int) -> np.ndarray:
        parts = []
        for key in self.state_obs_keys:
            if key is None:
                parts.append(np.zeros((t, 1), np.float32))
                continue
            if key not in obs:
                raise ContractError(
                    f"{self.name}: proprio key {key!r} not in observation keys {sorted(obs)}; fix state_obs_keys"
                )
            v = as_2d(np.asarray(obs[key], dtype=np.float32))
            if v.shape[0] != t:
                raise ContractError(f"{self.name}: proprio key {key!r} has {v.shape[0]} steps, the actions {t}")
            parts.append(v)
        proprio = np.concatenate(parts, axis=1) if parts else np.zeros((t, 0), np.float32)
        if self.proprio_dim is not None and proprio.shape[1] != self.proprio_dim:
            raise ContractError(f"{self.name}: proprio has {proprio.shape[1]} dims, the spec says {self.proprio_dim}")
        return proprio

    def find_dir(self, data_root: str | os.PathLike) -> Path:
        """`<data_root>/<tfds_name>/<version>`; with no version set, the only or highest version present."""
        base = Path(data_root) / self.directory_name
        if self.version is not None:
            path = base / self.version
        else:
            versions = sorted((p for p in base.glob("*") if (p / "dataset_info.json").is_file()),
                              key=lambda p: _version_key(p.name)) if base.is_dir() else []
            if not versions:
                raise FileNotFoundError(
                    f"no RLDS dataset for {self.name!r} under {base} (expected {base}/<version>/dataset_info.json). "
                    "Point data_root at the directory that holds your local OXE copies, or give the dataset's path."
                )
            path = versions[-1]
        if not (path / "dataset_info.json").is_file():
            raise FileNotFoundError(f"{path} is not a TFDS dataset directory (no dataset_info.json) for {self.name!r}")
        return path


#: OpenVLA's DROID filter compares normalized actions with the normalized zero of these fixed q01/q99 of the
#: six motion dims (the full DROID release), whatever statistics the data was normalized with
#: (prismatic/vla/datasets/rlds/oxe/utils/droid_utils.py `zero_action_filter`).
DROID_FILTER_Q01 = (-0.7776297926902771, -0.5803514122962952, -0.5795090794563293, -0.6464047729969025,
                    -0.7041108310222626, -0.8895104378461838)
DROID_FILTER_Q99 = (0.7597932070493698, 0.5726242214441299, 0.7351000607013702, 0.6705610305070877,
                    0.6464948207139969, 0.8897542208433151)
#: `data.zero_action_filter` choices, applied to datasets whose spec sets `filter_zero_actions` (DROID).
ZERO_ACTION_FILTERS = ("reference", "exact", "off")


def motionless_actions(action: np.ndarray, normalized: np.ndarray, mode: str) -> np.ndarray:
    """Which actions count as "no motion" for the zero-action filter: (T, 7) standardized actions and the
    same actions normalized -> (T,) bool.

    Modes (`ZERO_ACTION_FILTERS`):
        reference: OpenVLA's test: all six normalized motion dims within 1e-5 of the normalized zero of the
            fixed DROID statistics (float32, as the reference). A zero action passes it only when the data was
            normalized with those very statistics (the full DROID release); on other data (a DROID subset, a
            fine-tuning set in DROID's layout) zero-motion frames are kept, as the reference keeps them.
        exact: all six standardized motion dims exactly zero: the frames the reference means to drop, on any
            statistics.
        off: no action is motionless (every frame is kept).
    """
    if mode not in ZERO_ACTION_FILTERS:
        raise ValueError(f"zero-action filter {mode!r} is not one of {list(ZERO_ACTION_FILTERS)}")
    if mode == "off":
        return np.zeros(np.shape(action)[0], bool)
    if mode == "exact":
        return np.all(np.asarray(action)[:, :6] == 0, axis=1)
    q01, q99 = np.float32(DROID_FILTER_Q01), np.float32(DROID_FILTER_Q99)
    zero = np.float32(2) * (np.float32(0) - q01) / (q99 - q01 + np.float32(1e-8)) - np.float32(1)
    return np.all(np.abs(np.asarray(normalized, np.float32)[:, :6] - zero) <= 1e-5, axis=1)


def steps_with_motion(motionless: np.ndarray, chunk: int = 1) -> np.ndarray:
    """Indices of the steps the zero-action filter keeps: step t is dropped when every action of its chunk
    t .. t+chunk-1 (those inside the episode; padding is not looked at) is motionless, as the reference
    filters each frame by its action chunk."""
    still = np.asarray(motionless, bool)
    n = still.shape[0]
    # moving[t] = any action in t .. min(t + chunk, n) - 1 has motion (a running count of moving actions)
    moving = np.concatenate([[0], np.cumsum(~still)])
    ends = np.minimum(np.arange(n) + chunk, n)
    return np.flatnonzero(moving[ends] - moving[:n] > 0)


def _first_instruction(instr: Any, t: int) -> str:
    """The episode's instruction: its first non-empty step instruction, "" when no step has one (such an
    episode is what the reference's `skip_unlabeled` drops: no step with a non-empty instruction)."""
    if instr is None or t == 0:
        return ""
    for value in np.asarray(instr).reshape(-1):
        text = to_str(value)
        if text:
            return text
    return ""


def _version_key(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in v.split("."))


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, overwrite: bool = False) -> DatasetSpec:
    """Add `spec` to the registry (fails if the name is taken, unless overwrite=True)."""
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(f"dataset {spec.name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[spec.name] = spec
    return spec


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


def get_dataset_spec(name: str, *, require_eef_delta: bool = True) -> DatasetSpec:
    """The spec registered as `name`; KeyError with close names if unknown.

    With require_eef_delta (default) a dataset whose actions are not end-effector deltas raises
    `UnsupportedActionEncodingError` explaining how to register a converter.
    """
    spec = _REGISTRY.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"did you mean {close}?" if close else f"registered datasets: {list_datasets()}"
        raise KeyError(
            f"unknown dataset {name!r}; {hint} Register your own with vla.data.oxe.register_dataset "
            "(see docs/oxe.md)."
        )
    if require_eef_delta:
        spec.check_supported()
    return spec


def spec_for_directory(dataset_dir: str | os.PathLike, name: str | None = None) -> DatasetSpec:
    """The spec for a dataset directory: by `name`, else by the dataset's own name, else our generic spec.

    A directory written by `RLDSWriter` (flat style with `observation/image`, `observation/state` and a
    7-D `action`) gets the generic `vla_episodes` spec under its own name, so its statistics are keyed by it.
    """
    dataset_dir = Path(dataset_dir)
    info_name = _dataset_name(dataset_dir)
    for candidate in (name, info_name):
        if candidate and candidate in _REGISTRY:
            return get_dataset_spec(candidate)
    if _is_vla_episodes_layout(dataset_dir):
        from vla.data.rlds_writer import read_control_rate

        generic = get_dataset_spec("vla_episodes")
        return dataclasses.replace(generic, name=name or info_name or dataset_dir.parent.name,
                                   control_hz=read_control_rate(dataset_dir) or generic.control_hz)
    # Unknown and not our layout: the KeyError lists close names.
    return get_dataset_spec(name or info_name or dataset_dir.parent.name)


def _dataset_name(dataset_dir: Path) -> str | None:
    info = dataset_dir / "dataset_info.json"
    if info.is_file():
        return json.loads(info.read_text()).get("name")
    return None


def _is_vla_episodes_layout(dataset_dir: Path) -> bool:
    path = dataset_dir / "features.json"
    if not path.is_file():
        return False
    try:
        steps = json.loads(path.read_text())["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]
        obs = steps["observation"]["featuresDict"]["features"]
        action_dims = steps["action"]["tensor"]["shape"]["dimensions"]
    except (KeyError, TypeError):
        return False
    return "image" in obs and "state" in obs and [int(d) for d in action_dims] == [ACTION_DIM]

