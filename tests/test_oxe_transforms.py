"""Contract test over every registered dataset: a synthetic episode in the dataset's raw feature layout
(key names, nesting and shapes of its published features.json, values random) standardizes to a valid
7-D contract action and a proprio of the spec's size, keeps all steps aligned, and never modifies its
input. Datasets checked value by value on disk live in test_oxe_standardize.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from vla.core.types import validate_action
from vla.data.oxe import get_dataset_spec, list_datasets

T = 6
IMG = ("img",)  # marker: an encoded image column
TXT = ("txt",)  # marker: a text column
GOOGLE = {"world_vector": (3,), "rotation_delta": (3,), "terminate_episode": (3,)}

# dataset -> (observation {key: shape | IMG | TXT}, action shape or {key: shape}, step-level text keys)
RAW: dict[str, tuple[dict, object, tuple[str, ...]]] = {
    "fractal20220817_data": ({"image": IMG, "base_pose_tool_reached": (7,), "gripper_closed": (1,),
                              "natural_language_instruction": TXT}, {**GOOGLE, "gripper_closedness_action": (1,),
                                                                     "base_displacement_vector": (2,)}, ()),
    "kuka": ({"image": IMG, "clip_function_input/base_pose_tool_reached": (7,), "gripper_closed": (1,),
              "natural_language_instruction": TXT}, {**GOOGLE, "gripper_closedness_action": (1,)}, ()),
    "bridge_orig": ({"image_0": IMG, "image_1": IMG, "state": (7,)}, (7,), ("language_instruction",)),
    "taco_play": ({"rgb_static": IMG, "rgb_gripper": IMG, "robot_obs": (15,), "natural_language_instruction": TXT},
                  {"rel_actions_world": (7,), "actions": (7,), "terminate_episode": ()}, ()),
    "jaco_play": ({"image": IMG, "image_wrist": IMG, "end_effector_cartesian_pos": (7,),
                   "natural_language_instruction": TXT},
                  {"world_vector": (3,), "gripper_closedness_action": (1,), "terminate_episode": (3,)}, ()),
    "berkeley_cable_routing": ({"image": IMG, "wrist45_image": IMG, "top_image": IMG, "robot_state": (7,),
                                "natural_language_instruction": TXT}, {**GOOGLE, "terminate_episode": ()}, ()),
    "roboturk": ({"front_rgb": IMG, "natural_language_instruction": TXT}, {**GOOGLE, "gripper_closedness_action": (1,)}, ()),
    "viola": ({"agentview_rgb": IMG, "eye_in_hand_rgb": IMG, "joint_states": (7,), "gripper_states": (1,),
               "ee_states": (16,), "natural_language_instruction": TXT}, {**GOOGLE, "gripper_closedness_action": ()}, ()),
    "berkeley_autolab_ur5": ({"image": IMG, "hand_image": IMG, "robot_state": (15,), "natural_language_instruction": TXT},
                             {**GOOGLE, "gripper_closedness_action": ()}, ()),
    "toto": ({"image": IMG, "state": (7,), "natural_language_instruction": TXT}, {**GOOGLE, "open_gripper": "bool"}, ()),
    "stanford_hydra_dataset_converted_externally_to_rlds": ({"image": IMG, "wrist_image": IMG, "state": (27,)}, (7,),
                                                            ("language_instruction",)),
    "austin_buds_dataset_converted_externally_to_rlds": ({"image": IMG, "wrist_image": IMG, "state": (24,)}, (7,),
                                                         ("language_instruction",)),
    "nyu_franka_play_dataset_converted_externally_to_rlds": ({"image": IMG, "image_additional_view": IMG, "state": (13,)},
                                                             (15,), ("language_instruction",)),
    "furniture_bench_dataset_converted_externally_to_rlds": ({"image": IMG, "wrist_image": IMG, "state": (35,)}, (8,),
                                                             ("language_instruction",)),
    "ucsd_kitchen_dataset_converted_externally_to_rlds": ({"image": IMG, "state": (21,)}, (8,), ("language_instruction",)),
    "austin_sailor_dataset_converted_externally_to_rlds": ({"image": IMG, "wrist_image": IMG, "state": (8,)}, (7,),
                                                           ("language_instruction",)),
    "austin_sirius_dataset_converted_externally_to_rlds": ({"image": IMG, "wrist_image": IMG, "state": (8,)}, (7,),
                                                           ("language_instruction",)),
    "dlr_edan_shared_control_converted_externally_to_rlds": ({"image": IMG, "state": (7,)}, (7,), ("language_instruction",)),
    "iamlab_cmu_pickup_insert_converted_externally_to_rlds": ({"image": IMG, "wrist_image": IMG, "state": (20,)}, (8,),
                                                              ("language_instruction",)),
    "utaustin_mutex": ({"image": IMG, "wrist_image": IMG, "state": (24,)}, (7,), ("language_instruction",)),
    "berkeley_fanuc_manipulation": ({"image": IMG, "wrist_image": IMG, "state": (13,), "end_effector_state": (7,)}, (6,),
                                    ("language_instruction",)),
    "cmu_stretch": ({"image": IMG, "state": (4,)}, (8,), ("language_instruction",)),
    "bc_z": ({"image": IMG, "present/xyz": (3,), "present/axis_angle": (3,), "present/sensed_close": (1,),
              "natural_language_instruction": TXT},
             {"future/xyz_residual": (30,), "future/axis_angle_residual": (30,), "future/target_close": (10,)}, ()),
    "fmb_dataset": ({"image_side_1": IMG, "image_side_2": IMG, "image_wrist_1": IMG, "eef_pose": (7,),
                     "state_gripper_pose": ()}, (7,), ("language_instruction",)),
    "dobbe": ({"wrist_image": IMG, "state": (7,)}, (7,), ("language_instruction",)),
    "droid": ({"exterior_image_1_left": IMG, "exterior_image_2_left": IMG, "wrist_image_left": IMG,
               "cartesian_position": (6,), "gripper_position": (1,), "joint_position": (7,)}, (7,),
              ("language_instruction", "language_instruction_2", "language_instruction_3")),
    "libero_spatial_no_noops": ({"image": IMG, "wrist_image": IMG, "state": (8,), "joint_state": (7,)}, (7,),
                                ("language_instruction",)),
    "vla_episodes": ({"image": IMG, "wrist_image": IMG, "state": (8,)}, (7,), ("language_instruction",)),
}
RAW["bridge_dataset"] = RAW["bridge_orig"]
RAW["taco_play_fixed_proprio"] = RAW["taco_play"]
for _suite in ("object", "goal", "10"):
    RAW[f"libero_{_suite}_no_noops"] = RAW["libero_spatial_no_noops"]
DROID_ACTION_DICT = {"cartesian_position": (6,), "cartesian_velocity": (6,), "gripper_position": (1,),
                     "gripper_velocity": (1,), "joint_position": (7,), "joint_velocity": (7,)}


def _column(rng, shape, *, gripper_like=False, dtype=np.float32):
    if shape is IMG:
        return np.array([b"\xff\xd8jpeg%d" % i for i in range(T)], dtype=object)
    if shape is TXT:
        return np.array([b"stack the cups"] * T, dtype=object)
    if shape == "bool":
        return rng.integers(0, 2, T).astype(bool)
    if gripper_like:  # grippers / states in [0, 1]: valid for every raw gripper convention
        return rng.integers(0, 2, (T,) + shape).astype(dtype)
    return rng.uniform(0, 1, (T,) + shape).astype(dtype)


def raw_episode(name: str, seed: int = 0) -> dict:
    obs_schema, act_schema, text_keys = RAW[name]
    rng = np.random.default_rng(seed)
    obs = {k: _column(rng, s) for k, s in obs_schema.items()}
    if isinstance(act_schema, dict):
        action = {k: _column(rng, s, gripper_like=("gripper" in k or "close" in k)) for k, s in act_schema.items()}
    else:
        action = rng.normal(0, 0.05, (T,) + act_schema).astype(np.float32)
        action[:, 6:] = rng.integers(0, 2, (T, act_schema[0] - 6))  # gripper-ish tail in {0, 1}
    if name == "taco_play" or name == "taco_play_fixed_proprio":
        action["rel_actions_world"][:, 6] = rng.choice([-1.0, 1.0], T)
    steps = {"observation": obs, "action": action, "reward": np.zeros(T, np.float32),
             "discount": np.ones(T, np.float32), "is_first": np.arange(T) == 0,
             "is_last": np.arange(T) == T - 1, "is_terminal": np.arange(T) == T - 1}
    for k in text_keys:
        steps[k] = np.array([b"stack the cups"] * T, dtype=object)
    if name == "droid":
        steps["action_dict"] = {k: _column(rng, s, gripper_like=k.startswith("gripper"), dtype=np.float64)
                                for k, s in DROID_ACTION_DICT.items()}
        obs["cartesian_position"] = obs["cartesian_position"].astype(np.float64)
    return {"steps": steps, "episode_metadata": {"file_path": b"/x"}}


EEF_DATASETS = [n for n in list_datasets() if get_dataset_spec(n, require_eef_delta=False).action_encoding == "eef_delta"]


def test_the_table_covers_every_registered_eef_dataset():
    assert sorted(RAW) == sorted(EEF_DATASETS)


@pytest.mark.parametrize("name", EEF_DATASETS)
def test_standardize_contract(name):
    spec = get_dataset_spec(name)
    ep = raw_episode(name)
    before = copy.deepcopy(ep)
    std = spec.standardize(ep)
    t = std["action"].shape[0]
    assert t == (T - 2 if spec.transform.__name__ == "bridge_orig_transform" else T)
    validate_action(std["action"])  # (T, 7) float32, finite, gripper absolute in [0, 1]
    assert std["action"].dtype == np.float32 and std["proprio"].dtype == np.float32
    assert std["proprio"].shape[0] == t and np.all(np.isfinite(std["proprio"]))
    if spec.proprio_dim is not None:
        assert std["proprio"].shape[1] == spec.proprio_dim
    assert set(std["images"]) == set(spec.cameras)
    for frames in std["images"].values():
        assert len(frames) == t
    assert std["instruction"] == "stack the cups"
    assert std["reward"].shape == (t,)
    # the reader's episode is left untouched (same keys, same values)
    assert _flat(ep) == _flat(before)


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = np.asarray(v).tobytes() if not isinstance(v, bytes) else v
    return out
