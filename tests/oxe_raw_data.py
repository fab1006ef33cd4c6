"""Tiny RLDS datasets written with TFDS in the exact raw schemas of real Open X-Embodiment datasets.

Feature names, nesting, dtypes and encodings follow the published features.json of each dataset
(fractal20220817_data 0.1.0, kuka 0.1.0 with its zlib-encoded proprio, libero_*_no_noops 1.0.0,
droid 1.0.0 with float64 `action_dict`); images are shrunk to 16x16 and episodes to a few steps. Values are
chosen so that the expected standardized outputs can be written down by hand in the tests.

`write_raw_datasets(root)` writes them all once into `root/<name>/<version>` (a marker file makes repeated
calls from several test modules free), so TensorFlow is only imported by the first caller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

IMG = 16

# Relative gripper sequences (+1 close / -1 open) for the Google-style sets and the absolute gripper the
# reference's scan gives (worked out by hand in the comments).
FRACTAL_GRIPPER_REL = [
    [0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 0.0],  # first event closes -> starts open: 1 1 0 0 0 1 1
    [0.05, -0.05, 0.0],                    # |x| <= 0.1 only: no event -> all open
    [0.0, 0.0, -1.0, 0.0, 0.8],            # first event opens -> starts closed: 0 0 1 1 0
]
FRACTAL_GRIPPER_ABS = [[1, 1, 0, 0, 0, 1, 1], [1, 1, 1], [0, 0, 1, 1, 0]]
LIBERO_GRIPPER_RAW = [-1.0, -1.0, 0.4, 1.0, 1.0, -0.2]
LIBERO_GRIPPER_STD = [1.0, 1.0, 0.6, 0.0, 0.0, 1.0]
INSTRUCTION = "pick up the red block"


def _image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 255, (IMG, IMG, 3), dtype=np.uint8)


def upright_frame(t: int) -> np.ndarray:
    """A frame with a bright block in the top-left corner (so a 180-degree rotation is visible)."""
    img = np.full((IMG, IMG, 3), 30, np.uint8)
    img[: IMG // 4, : IMG // 4] = 250
    img[IMG // 2, :, 1] = (10 * t) % 255
    return img


def _write(root: Path, name: str, version: str, observation: dict, action: Any, episodes: list[dict], *,
           step_metadata: dict | None = None, episode_metadata: dict | None = None, shard_size: int = 2) -> Path:
    import tensorflow_datasets as tfds
    from tensorflow_datasets.rlds import rlds_base

    dataset_dir = root / name / version
    dataset_dir.mkdir(parents=True, exist_ok=True)
    config = rlds_base.DatasetConfig(
        name=name,
        observation_info=tfds.features.FeaturesDict(observation),
        action_info=action,
        reward_info=tfds.features.Scalar(dtype=np.float32),
        discount_info=tfds.features.Scalar(dtype=np.float32),
        step_metadata_info=step_metadata,
        episode_metadata_info=episode_metadata,
    )
    identity = tfds.core.DatasetIdentity(name=name, version=tfds.core.Version(version),
                                         data_dir=os.fspath(dataset_dir), module_name="tests.oxe_raw_data")
    writer = tfds.core.SequentialWriter(rlds_base.build_info(config, identity), max_examples_per_shard=shard_size,
                                        overwrite=True)
    writer.initialize_splits(["train"])
    writer.add_examples({"train": episodes})
    writer.close_all()
    return dataset_dir


def _flags(i: int, t: int) -> dict:
    return {"reward": np.float32(i == t - 1), "discount": np.float32(1.0), "is_first": i == 0,
            "is_last": i == t - 1, "is_terminal": i == t - 1}


def _google_action_features(tfds):
    T = tfds.features.Tensor
    return tfds.features.FeaturesDict({
        "base_displacement_vector": T(shape=(2,), dtype=np.float32),
        "base_displacement_vertical_rotation": T(shape=(1,), dtype=np.float32),
        "gripper_closedness_action": T(shape=(1,), dtype=np.float32),
        "rotation_delta": T(shape=(3,), dtype=np.float32),
        "terminate_episode": T(shape=(3,), dtype=np.int32),
        "world_vector": T(shape=(3,), dtype=np.float32),
    })


def _google_action(rng: np.random.Generator, g: float) -> dict:
    rot = rng.normal(0, 0.1, 3).astype(np.float32)
    rot[2] = 0.0  # a constant dim: normalizes to 0
    return {
        "base_displacement_vector": rng.normal(size=2).astype(np.float32),
        "base_displacement_vertical_rotation": rng.normal(size=1).astype(np.float32),
        "gripper_closedness_action": np.array([g], np.float32),
        "rotation_delta": rot,
        "terminate_episode": np.array([0, 1, 0], np.int32),
        "world_vector": rng.normal(0, 0.05, 3).astype(np.float32),
    }


def write_fractal(root: Path, seed: int = 0) -> Path:
    """fractal20220817_data 0.1.0 schema: dict action, instruction and 7+1 proprio in the observation."""
    import tensorflow_datasets as tfds

    T = tfds.features.Tensor
    rng = np.random.default_rng(seed)
    observation = {
        "base_pose_tool_reached": T(shape=(7,), dtype=np.float32),
        "gripper_closed": T(shape=(1,), dtype=np.float32),
        "height_to_bottom": T(shape=(1,), dtype=np.float32),
        "image": tfds.features.Image(shape=(IMG, IMG, 3), dtype=np.uint8, encoding_format="jpeg"),
        "natural_language_embedding": T(shape=(512,), dtype=np.float32),
        "natural_language_instruction": tfds.features.Text(),
        "vector_to_go": T(shape=(3,), dtype=np.float32),
        "workspace_bounds": T(shape=(3, 3), dtype=np.float32),
    }
    episodes = []
    for grip in FRACTAL_GRIPPER_REL:
        steps = []
        for i, g in enumerate(grip):
            steps.append({
                "observation": {
                    "base_pose_tool_reached": rng.normal(size=7).astype(np.float32),
                    "gripper_closed": np.array([float(g > 0)], np.float32),
                    "height_to_bottom": rng.normal(size=1).astype(np.float32),
                    "image": _image(rng),
                    "natural_language_embedding": np.zeros(512, np.float32),
                    "natural_language_instruction": INSTRUCTION,
                    "vector_to_go": rng.normal(size=3).astype(np.float32),
                    "workspace_bounds": np.zeros((3, 3), np.float32),
                },
                "action": _google_action(rng, g),
                **_flags(i, len(grip)),
            })
        episodes.append({"steps": steps})
    return _write(root, "fractal20220817_data", "0.1.0", observation, _google_action_features(tfds), episodes)


def write_kuka(root: Path, seed: int = 1) -> Path:
    """kuka 0.1.0 schema: like fractal, proprio under `clip_function_input/...`, zlib-encoded tensors."""
    import tensorflow_datasets as tfds

    T = tfds.features.Tensor
    Z = tfds.features.Encoding.ZLIB
    rng = np.random.default_rng(seed)
    observation = {
        "clip_function_input/base_pose_tool_reached": T(shape=(7,), dtype=np.float32, encoding=Z),
        "clip_function_input/workspace_bounds": T(shape=(3, 3), dtype=np.float32, encoding=Z),
        "gripper_closed": T(shape=(1,), dtype=np.float32, encoding=Z),
        "gripper_closedness_commanded": T(shape=(1,), dtype=np.float32, encoding=Z),
        "height_to_bottom": T(shape=(1,), dtype=np.float32, encoding=Z),
        "image": tfds.features.Image(shape=(IMG, IMG, 3), dtype=np.uint8, encoding_format="jpeg"),
        "natural_language_embedding": T(shape=(512,), dtype=np.float32),
        "natural_language_instruction": tfds.features.Text(),
        "task_id": T(shape=(1,), dtype=np.float32, encoding=Z),
    }
    episodes = []
    for grip in FRACTAL_GRIPPER_REL[:2]:
        steps = []
        for i, g in enumerate(grip):
            steps.append({
                "observation": {
                    "clip_function_input/base_pose_tool_reached": rng.normal(size=7).astype(np.float32),
                    "clip_function_input/workspace_bounds": np.zeros((3, 3), np.float32),
                    "gripper_closed": np.array([float(i % 2)], np.float32),
                    "gripper_closedness_commanded": np.array([g], np.float32),
                    "height_to_bottom": np.zeros(1, np.float32),
                    "image": _image(rng),
                    "natural_language_embedding": np.zeros(512, np.float32),
                    "natural_language_instruction": "pick anything",
                    "task_id": np.zeros(1, np.float32),
                },
                "action": _google_action(rng, g),
                **_flags(i, len(grip)),
            })
        episodes.append({"steps": steps})
    return _write(root, "kuka", "0.1.0", observation, _google_action_features(tfds), episodes)


def _libero_state(rng: np.random.Generator) -> np.ndarray:
    """LIBERO's 8-D state at its real magnitudes: EEF xyz (z near 1.1 m), axis-angle near (3.1, 0, 0), the two
    finger positions near +-0.035, each spread over a few hundredths (the range matters for float rounding)."""
    centre = np.array([-0.1, 0.05, 1.1, 3.1, 0.05, -0.1, 0.035, -0.035])
    spread = np.array([0.05, 0.05, 0.05, 0.01, 0.01, 0.01, 0.004, 0.004])
    return (centre + spread * rng.normal(size=8)).astype(np.float32)


def write_libero(root: Path, name: str = "libero_spatial_no_noops", seed: int = 2) -> Path:
    """OpenVLA's regenerated LIBERO RLDS schema: flat 7-D action (gripper -1 open / +1 close), 8-D state,
    frames stored upright (robosuite renders them upside down; OpenVLA's conversion rotated them by 180
    degrees when writing, see experiments/robot/libero/regenerate_libero_dataset.py)."""
    import tensorflow_datasets as tfds

    T = tfds.features.Tensor
    rng = np.random.default_rng(seed)
    observation = {
        "image": tfds.features.Image(shape=(IMG, IMG, 3), dtype=np.uint8, encoding_format="jpeg"),
        "wrist_image": tfds.features.Image(shape=(IMG, IMG, 3), dtype=np.uint8, encoding_format="jpeg"),
        "state": T(shape=(8,), dtype=np.float32),
        "joint_state": T(shape=(7,), dtype=np.float32),
    }
    episodes = []
    for e in range(2):
        t = len(LIBERO_GRIPPER_RAW)
        steps = []
        for i, g in enumerate(LIBERO_GRIPPER_RAW):
            action = rng.normal(0, 0.3, 7).astype(np.float32)
            action[6] = g
            steps.append({
                "observation": {
                    "image": upright_frame(i),
                    "wrist_image": _image(rng),
                    "state": _libero_state(rng),
                    "joint_state": rng.normal(size=7).astype(np.float32),
                },
                "action": action,
                "language_instruction": INSTRUCTION,
                **_flags(i, t),
            })
        episodes.append({"steps": steps, "episode_metadata": {"file_path": f"/demo_{e}.hdf5"}})
    return _write(root, name, "1.0.0", observation, T(shape=(7,), dtype=np.float32), episodes,
                  step_metadata={"language_instruction": tfds.features.Text()},
                  episode_metadata={"episode_metadata": tfds.features.FeaturesDict({"file_path": tfds.features.Text()})})


DROID_GRIPPER_POSITION = [0.0, 0.25, 1.0, 0.9]


def write_droid(root: Path, seed: int = 3, unlabeled_episodes: int = 0) -> Path:
    """droid 1.0.0 schema: float64 `action_dict` and proprio, three cameras, three instructions; two labeled
    episodes, then `unlabeled_episodes` whose instructions are all empty (as many real DROID episodes)."""
    import tensorflow_datasets as tfds

    T = tfds.features.Tensor
    rng = np.random.default_rng(seed)

    def cam():
        return tfds.features.Image(shape=(IMG, IMG, 3), dtype=np.uint8, encoding_format="jpeg")

    observation = {
        "cartesian_position": T(shape=(6,), dtype=np.float64),
        "exterior_image_1_left": cam(),
        "exterior_image_2_left": cam(),
        "gripper_position": T(shape=(1,), dtype=np.float64),
        "joint_position": T(shape=(7,), dtype=np.float64),
        "wrist_image_left": cam(),
    }
    action_dict = tfds.features.FeaturesDict({
        "cartesian_position": T(shape=(6,), dtype=np.float64),
        "cartesian_velocity": T(shape=(6,), dtype=np.float64),
        "gripper_position": T(shape=(1,), dtype=np.float64),
        "gripper_velocity": T(shape=(1,), dtype=np.float64),
        "joint_position": T(shape=(7,), dtype=np.float64),
        "joint_velocity": T(shape=(7,), dtype=np.float64),
    })
    episodes = []
    for e in range(2 + unlabeled_episodes):
        steps = []
        t = len(DROID_GRIPPER_POSITION)
        for i, g in enumerate(DROID_GRIPPER_POSITION):
            velocity = rng.normal(0, 0.3, 6)
            if i == 1:
                velocity[:] = 0.0  # a zero-action frame (the reference's DROID filter drops those)
            steps.append({
                "observation": {
                    "cartesian_position": rng.normal(size=6),
                    "exterior_image_1_left": _image(rng),
                    "exterior_image_2_left": _image(rng),
                    "gripper_position": np.array([g * 0.5]),
                    "joint_position": rng.normal(size=7),
                    "wrist_image_left": _image(rng),
                },
                "action": rng.normal(size=7),
                "action_dict": {
                    "cartesian_position": rng.normal(size=6),
                    "cartesian_velocity": velocity,
                    "gripper_position": np.array([g]),
                    "gripper_velocity": rng.normal(size=1),
                    "joint_position": rng.normal(size=7),
                    "joint_velocity": rng.normal(size=7),
                },
                "language_instruction": INSTRUCTION if e < 2 else "",
                "language_instruction_2": "",
                "language_instruction_3": "",
                **_flags(i, t),
            })
        episodes.append({"steps": steps, "episode_metadata": {"file_path": f"/droid/{e}.h5",
                                                               "recording_folderpath": f"/droid/{e}"}})
    text = tfds.features.Text
    return _write(root, "droid", "1.0.0", observation, T(shape=(7,), dtype=np.float64), episodes,
                  step_metadata={"action_dict": action_dict, "language_instruction": text(),
                                 "language_instruction_2": text(), "language_instruction_3": text()},
                  episode_metadata={"episode_metadata": tfds.features.FeaturesDict(
                      {"file_path": text(), "recording_folderpath": text()})})


def write_raw_datasets(root: Path) -> dict[str, Path]:
    """All raw-schema datasets under `root` (written once; later calls return the existing directories)."""
    root = Path(root)
    dirs = {
        "fractal20220817_data": root / "fractal20220817_data" / "0.1.0",
        "kuka": root / "kuka" / "0.1.0",
        "libero_spatial_no_noops": root / "libero_spatial_no_noops" / "1.0.0",
        "droid": root / "droid" / "1.0.0",
    }
    marker = root / ".complete"
    if not marker.exists():
        write_fractal(root)
        write_kuka(root)
        write_libero(root)
        write_droid(root)
        marker.write_text("ok")
    return dirs
