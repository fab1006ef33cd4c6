"""Per-dataset standardization functions for Open X-Embodiment, LIBERO, DROID and our own RLDS data.

One function per source dataset, registered by name in `TRANSFORMS` (the registry in
`vla.data.oxe.configs` refers to them by that name). Each is a NumPy port of the function OpenVLA uses for
that dataset (`prismatic/vla/datasets/rlds/oxe/transforms.py`, checked against the reference at
c8f03f48), including its quirks; where the reference is wrong the quirk is kept (published checkpoints
were trained on it) and documented next to the code.

Input: the episode's `steps`, a nested dict of arrays stacked over time, exactly as the reader returns it
(`RLDSReader.episodes()` or `tfds.as_numpy` with the steps stacked): `observation/<key>` (T, ...),
`action` (T, A) or a dict of (T, ...) arrays, `language_instruction` (T,) bytes for flat-style datasets,
`reward`, `discount`, `is_first`, `is_last`, `is_terminal`. The function must not modify its input
(it receives a copy of the dict structure; arrays are shared, so never write into them).

Output: the same structure with
    action                   float32 (T', 7): dx, dy, dz, droll, dpitch, dyaw, gripper absolute (1 = open, 0 = closed)
    language_instruction     (T',) bytes or str
    observation/<key>        new keys the dataset's `state_obs_keys` name (proprio parts)
where T' <= T when the reference drops steps (bridge_orig drops the first and the last step). Every
array of the episode must keep the same length T' (slice them together with `slice_tree`).
`DatasetSpec.standardize` then assembles the common episode: images by `image_keys`, proprio by
concatenating `state_obs_keys` (None -> one zero column), the instruction, the metadata.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from vla.data.oxe.transform_utils import (
    as_2d,
    as_f32,
    binarize_gripper,
    decode_zlib_float32,
    invert_gripper,
    quat_to_euler_xyz,
    rel2abs_gripper,
    slice_tree,
)

Transform = Callable[[dict], dict]

#: name -> standardization function. Add yours with `@register_transform("my_dataset")`.
TRANSFORMS: dict[str, Transform] = {}


def register_transform(name: str) -> Callable[[Transform], Transform]:
    """Decorator: register a standardization function under `name` (refuses to replace an existing one)."""

    def deco(fn: Transform) -> Transform:
        if name in TRANSFORMS and TRANSFORMS[name] is not fn:
            raise ValueError(f"a standardization transform named {name!r} is already registered ({TRANSFORMS[name].__qualname__})")
        TRANSFORMS[name] = fn
        return fn

    return deco


def _concat(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate([as_f32(as_2d(p)) for p in parts], axis=-1).astype(np.float32)


def _col(x: np.ndarray) -> np.ndarray:
    """(T,) or (T, 1) -> (T, 1)."""
    return as_2d(x)


def _instruction_from_observation(traj: dict) -> None:
    """Google-converted datasets keep the instruction in the observation."""
    traj["language_instruction"] = traj["observation"]["natural_language_instruction"]


# === Our own data (written by vla.data.rlds_writer.RLDSWriter) ===

@register_transform("vla_episodes")
def vla_episodes_transform(traj: dict) -> dict:
    """Identity: our writer stores the common 7-D action (gripper absolute) and `state` as proprio."""
    traj["action"] = as_f32(traj["action"])
    return traj


# === Bridge V2 (original release, flat style) ===

@register_transform("bridge_orig")
def bridge_orig_transform(traj: dict) -> dict:
    """Bridge V2 as released by the project (also the `bridge_dataset` directory name).

    As the reference: drop the first step (its action is all zero), binarize the gripper, then relabel the
    movement as the reached state difference `state[t+1, :6] - state[t, :6]` and drop the last step. A
    T-step episode gives T - 2 steps. Proprio = EEF xyz+rpy (6) ++ pad (1) ++ gripper state (1).
    """
    traj = slice_tree(traj, slice(1, None))
    action = as_f32(traj["action"])
    action = _concat(action[:, :6], binarize_gripper(action[:, -1])[:, None])
    state = as_f32(traj["observation"]["state"])
    movement = state[1:, :6] - state[:-1, :6]
    traj = slice_tree(traj, slice(None, -1))
    traj["action"] = _concat(movement, action[:-1, -1:])
    state = state[:-1]
    traj["observation"]["EEF_state"] = state[:, :6]
    traj["observation"]["gripper_state"] = state[:, -1:]
    return traj


# === Google-converted datasets (dict actions, instruction in the observation) ===

@register_transform("fractal20220817_data")
def rt1_transform(traj: dict) -> dict:
    """RT-1: relative gripper (+1 close / -1 open) scanned to absolute; base motion and terminate dropped."""
    a = traj["action"]
    gripper = rel2abs_gripper(np.asarray(a["gripper_closedness_action"])[:, 0])
    traj["action"] = _concat(a["world_vector"], a["rotation_delta"], gripper[:, None])
    _instruction_from_observation(traj)
    return traj


@register_transform("kuka")
def kuka_transform(traj: dict) -> dict:
    """As RT-1; the proprio fields are stored zlib-compressed and decoded here (xyz+quat 7, gripper 1)."""
    a = traj["action"]
    gripper = rel2abs_gripper(np.asarray(a["gripper_closedness_action"])[:, 0])
    traj["action"] = _concat(a["world_vector"], a["rotation_delta"], gripper[:, None])
    obs = traj["observation"]
    key = "clip_function_input/base_pose_tool_reached"
    obs[key] = decode_zlib_float32(obs[key], 7)
    obs["gripper_closed"] = decode_zlib_float32(obs["gripper_closed"], 1)
    _instruction_from_observation(traj)
    return traj


@register_transform("taco_play")
def taco_play_transform(traj: dict) -> dict:
    """taco_play exactly as the reference, including its proprio bug.

    `robot_obs` is tcp xyz (3), tcp euler (3), gripper width (1), arm joints (7), gripper action (1). The
    reference takes `robot_obs[:, 7:8]` (the first arm joint) as the gripper state instead of index 6.
    OpenVLA's released checkpoints were trained on this, so it is the default; `taco_play_fixed_proprio`
    uses the gripper width. The gripper action (+1 open / -1 close) is clipped to [0, 1] (no inversion).
    """
    obs = traj["observation"]
    robot_obs = as_f32(obs["robot_obs"])
    obs["state_eef"] = robot_obs[:, :6]
    obs["state_gripper"] = robot_obs[:, 7:8]
    rel = as_f32(traj["action"]["rel_actions_world"])
    traj["action"] = _concat(rel[:, :6], np.clip(rel[:, -1:], 0, 1))
    _instruction_from_observation(traj)
    return traj


@register_transform("taco_play_fixed_proprio")
def taco_play_fixed_proprio_transform(traj: dict) -> dict:
    """taco_play with the gripper width (`robot_obs[:, 6]`) as gripper state; actions as the reference."""
    traj = taco_play_transform(traj)
    traj["observation"]["state_gripper"] = as_f32(traj["observation"]["robot_obs"])[:, 6:7]
    return traj


@register_transform("jaco_play")
def jaco_play_transform(traj: dict) -> dict:
    """jaco_play: translation only (rotation zero), relative gripper scanned to absolute."""
    obs = traj["observation"]
    pos = as_f32(obs["end_effector_cartesian_pos"])
    obs["state_eef"] = pos[:, :6]
    obs["state_gripper"] = pos[:, -1:]
    a = traj["action"]
    gripper = rel2abs_gripper(np.asarray(a["gripper_closedness_action"])[:, 0])
    wv = as_f32(a["world_vector"])
    traj["action"] = _concat(wv, np.zeros_like(wv), gripper[:, None])
    _instruction_from_observation(traj)
    return traj


@register_transform("berkeley_cable_routing")
def berkeley_cable_routing_transform(traj: dict) -> dict:
    """Cable routing: the gripper holds the cable all along, so the gripper action is 0 (closed)."""
    a = traj["action"]
    wv = as_f32(a["world_vector"])
    traj["action"] = _concat(wv, a["rotation_delta"], np.zeros_like(wv[:, :1]))
    _instruction_from_observation(traj)
    return traj


@register_transform("roboturk")
def roboturk_transform(traj: dict) -> dict:
    """roboturk: absolute gripper (1 = closed), clipped to [0, 1] and inverted."""
    a = traj["action"]
    gripper = invert_gripper(np.clip(_col(a["gripper_closedness_action"]), 0, 1))
    traj["action"] = _concat(a["world_vector"], a["rotation_delta"], gripper)
    _instruction_from_observation(traj)
    return traj


@register_transform("viola")
def viola_transform(traj: dict) -> dict:
    """viola: absolute gripper (1 = closed, -1 = open), clipped to [0, 1] and inverted."""
    a = traj["action"]
    gripper = invert_gripper(np.clip(_col(a["gripper_closedness_action"]), 0, 1))
    traj["action"] = _concat(a["world_vector"], a["rotation_delta"], gripper)
    _instruction_from_observation(traj)
    return traj


@register_transform("berkeley_autolab_ur5")
def berkeley_autolab_ur5_transform(traj: dict) -> dict:
    """UR5: relative gripper (+1 close / -1 open) scanned to absolute; proprio = robot_state[6:14]."""
    obs = traj["observation"]
    obs["state"] = as_f32(obs["robot_state"])[:, 6:14]
    a = traj["action"]
    gripper = rel2abs_gripper(np.asarray(a["gripper_closedness_action"]).reshape(-1))
    traj["action"] = _concat(a["world_vector"], a["rotation_delta"], gripper[:, None])
    _instruction_from_observation(traj)
    return traj


@register_transform("toto")
def toto_transform(traj: dict) -> dict:
    """toto: boolean `open_gripper` is already absolute (1 = open)."""
    a = traj["action"]
    traj["action"] = _concat(a["world_vector"], a["rotation_delta"], _col(a["open_gripper"]).astype(np.float32))
    _instruction_from_observation(traj)
    return traj


@register_transform("bc_z")
def bc_z_transform(traj: dict) -> dict:
    """BC-Z: first future residual step; `target_close` (1 = close) inverted."""
    a = traj["action"]
    close = as_f32(np.asarray(a["future/target_close"])[:, :1])
    traj["action"] = _concat(
        as_f32(a["future/xyz_residual"])[:, :3], as_f32(a["future/axis_angle_residual"])[:, :3], invert_gripper(close)
    )
    _instruction_from_observation(traj)
    return traj


# === Externally converted datasets (flat 7-/8-D actions, step-level instruction) ===

@register_transform("stanford_hydra_dataset_converted_externally_to_rlds")
def stanford_hydra_transform(traj: dict) -> dict:
    """Hydra: gripper 1 = closed, inverted. Proprio = state xyz (0:3) ++ euler (7:10) ++ pad ++ gripper (-3)."""
    a = as_f32(traj["action"])
    traj["action"] = _concat(a[:, :6], invert_gripper(a[:, -1:]))
    obs = traj["observation"]
    state = as_f32(obs["state"])
    obs["eef_state"] = _concat(state[:, :3], state[:, 7:10])
    obs["gripper_state"] = state[:, -3:-2]
    return traj


def _clip_invert_last(traj: dict) -> dict:
    """Flat action whose last dim is a gripper in [-1, 1] with +1 = close: clip to [0, 1] and invert."""
    a = as_f32(traj["action"])
    traj["action"] = _concat(a[:, :6], invert_gripper(np.clip(a[:, -1:], 0, 1)))
    return traj


@register_transform("austin_buds_dataset_converted_externally_to_rlds")
def austin_buds_transform(traj: dict) -> dict:
    """BUDS: gripper clipped and inverted; proprio = first 8 state dims (joints 7 + gripper 1)."""
    traj = _clip_invert_last(traj)
    traj["observation"]["state"] = as_f32(traj["observation"]["state"])[:, :8]
    return traj


@register_transform("nyu_franka_play_dataset_converted_externally_to_rlds")
def nyu_franka_play_transform(traj: dict) -> dict:
    """NYU Franka play: 15-D action, EEF delta at [-8:-2], gripper at -2 (1 = open) clipped."""
    a = as_f32(traj["action"])
    traj["action"] = _concat(a[:, -8:-2], np.clip(a[:, -2:-1], 0, 1))
    traj["observation"]["eef_state"] = as_f32(traj["observation"]["state"])[:, -6:]
    return traj


@register_transform("furniture_bench_dataset_converted_externally_to_rlds")
def furniture_bench_transform(traj: dict) -> dict:
    """FurnitureBench: 8-D action with a quaternion delta, turned into euler xyz; gripper clipped + inverted."""
    a = as_f32(traj["action"])
    traj["action"] = _concat(a[:, :3], quat_to_euler_xyz(a[:, 3:7]), invert_gripper(np.clip(a[:, -1:], 0, 1)))
    state = as_f32(traj["observation"]["state"])
    traj["observation"]["state"] = _concat(state[:, :7], state[:, -1:])
    return traj


@register_transform("ucsd_kitchen_dataset_converted_externally_to_rlds")
def ucsd_kitchen_transform(traj: dict) -> dict:
    """UCSD kitchen: 8-D action, the last dim (terminate) dropped; gripper already absolute."""
    traj["action"] = as_f32(traj["action"])[:, :-1]
    traj["observation"]["joint_state"] = as_f32(traj["observation"]["state"])[:, :7]
    return traj


@register_transform("austin_sailor_dataset_converted_externally_to_rlds")
def austin_sailor_transform(traj: dict) -> dict:
    """SAILOR: gripper clipped and inverted."""
    return _clip_invert_last(traj)


@register_transform("austin_sirius_dataset_converted_externally_to_rlds")
def austin_sirius_transform(traj: dict) -> dict:
    """Sirius: gripper clipped and inverted."""
    return _clip_invert_last(traj)


@register_transform("dlr_edan_shared_control_converted_externally_to_rlds")
def dlr_edan_shared_control_transform(traj: dict) -> dict:
    """DLR EDAN: gripper 1 = closed, inverted (no clipping, as the reference)."""
    a = as_f32(traj["action"])
    traj["action"] = _concat(a[:, :6], invert_gripper(a[:, -1:]))
    return traj


@register_transform("iamlab_cmu_pickup_insert_converted_externally_to_rlds")
def iamlab_pick_insert_transform(traj: dict) -> dict:
    """IAM lab pick-insert: quaternion delta to euler xyz; gripper at index 7 taken as is."""
    a = as_f32(traj["action"])
    traj["action"] = _concat(a[:, :3], quat_to_euler_xyz(a[:, 3:7]), a[:, 7:8])
    state = as_f32(traj["observation"]["state"])
    traj["observation"]["joint_state"] = state[:, :7]
    traj["observation"]["gripper_state"] = state[:, 7:8]
    return traj


@register_transform("utaustin_mutex")
def utaustin_mutex_transform(traj: dict) -> dict:
    """MUTEX: gripper clipped and inverted; proprio = first 8 state dims."""
    traj = _clip_invert_last(traj)
    traj["observation"]["state"] = as_f32(traj["observation"]["state"])[:, :8]
    return traj


@register_transform("berkeley_fanuc_manipulation")
def berkeley_fanuc_transform(traj: dict) -> dict:
    """Fanuc: 6-D action without gripper; the gripper action is the inverted gripper state (1 = closed)."""
    state = as_f32(traj["observation"]["state"])
    traj["observation"]["joint_state"] = state[:, :6]
    traj["observation"]["gripper_state"] = state[:, 6:7]
    traj["action"] = _concat(as_f32(traj["action"]), invert_gripper(state[:, 6:7]))
    return traj


@register_transform("cmu_stretch")
def cmu_stretch_transform(traj: dict) -> dict:
    """CMU Stretch: 8-D action, the last dim dropped; proprio = xyz ++ zero rotation ++ pad ++ gripper."""
    state = as_f32(traj["observation"]["state"])
    traj["observation"]["eef_state"] = _concat(state[:, :3], np.zeros_like(state[:, :3]))
    traj["observation"]["gripper_state"] = state[:, -1:]
    traj["action"] = as_f32(traj["action"])[:, :-1]
    return traj


@register_transform("fmb_dataset")
def fmb_transform(traj: dict) -> dict:
    """FMB: action already 7-D EEF delta + absolute gripper; proprio = eef_pose ++ gripper pose."""
    obs = traj["observation"]
    obs["proprio"] = _concat(obs["eef_pose"], _col(obs["state_gripper_pose"]))
    traj["action"] = as_f32(traj["action"])
    return traj


@register_transform("dobbe")
def dobbe_transform(traj: dict) -> dict:
    """Dobb-E: action already in the common layout; proprio = state."""
    traj["observation"]["proprio"] = as_f32(traj["observation"]["state"])
    traj["action"] = as_f32(traj["action"])
    return traj


# === DROID ===

@register_transform("droid")
def droid_transform(traj: dict) -> dict:
    """DROID: float64 `action_dict` -> float32; gripper_position (1 = closed) inverted.

    action = cartesian_velocity (6) ++ (1 - gripper_position); the top-level `action` (joint-space) is
    ignored. Proprio = cartesian_position (6) ++ gripper_position (1). The reference also swaps the two
    exterior cameras at random per trajectory (unseeded); we keep `exterior_image_1_left` as primary so
    loading is deterministic (see docs/oxe.md).
    """
    ad = traj["action_dict"]
    traj["action"] = _concat(ad["cartesian_velocity"], invert_gripper(_col(ad["gripper_position"])))
    obs = traj["observation"]
    obs["proprio"] = _concat(obs["cartesian_position"], _col(obs["gripper_position"]))
    return traj


# === LIBERO (OpenVLA's modified `*_no_noops` RLDS sets) ===

@register_transform("libero")
def libero_transform(traj: dict) -> dict:
    """LIBERO: gripper -1 open / +1 close -> 1 - clip(g, 0, 1) (continuous: 0.4 -> 0.6).

    Proprio = state[:6] (EEF xyz + axis-angle) ++ pad ++ state[-2:] (the two finger positions) = 9-D.
    """
    a = as_f32(traj["action"])
    traj["action"] = _concat(a[:, :6], invert_gripper(np.clip(a[:, -1:], 0, 1)))
    state = as_f32(traj["observation"]["state"])
    traj["observation"]["EEF_state"] = state[:, :6]
    traj["observation"]["gripper_state"] = state[:, -2:]
    return traj
