"""The OXE registry: every spec is complete, names resolve (or suggest), non-EEF datasets are refused with a
fix, and the gripper/rotation helpers reproduce the reference's scans on hand-worked sequences."""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np
import pytest

from vla.core.types import ContractError
from vla.data.oxe import (
    MIXTURES,
    TRANSFORMS,
    DatasetSpec,
    UnsupportedActionEncodingError,
    get_dataset_spec,
    list_datasets,
    register_dataset,
    register_transform,
)
from vla.data.oxe.transform_utils import binarize_gripper, decode_zlib_float32, quat_to_euler_xyz, rel2abs_gripper

LIBERO = ["libero_spatial_no_noops", "libero_object_no_noops", "libero_goal_no_noops", "libero_10_no_noops"]


def test_registry_covers_the_openvla_mixture_libero_and_droid():
    soup = [name for name, _ in MIXTURES["oxe_magic_soup_plus_minus"]]
    assert len(soup) == 25
    registered = set(list_datasets())
    assert set(soup) <= registered
    assert set(LIBERO + ["droid", "vla_episodes", "bridge_dataset"]) <= registered


@pytest.mark.parametrize("name", [n for n, _ in MIXTURES["oxe_magic_soup_plus_minus"]] + LIBERO + ["droid", "vla_episodes"])
def test_every_spec_is_complete(name):
    spec = get_dataset_spec(name)
    assert spec.name == name
    assert spec.image_keys["primary"], "every dataset needs a primary camera"
    assert spec.control_hz > 0
    assert spec.transform in TRANSFORMS.values(), "standardization functions are registered by name"
    assert spec.action_normalization_mask == (True,) * 6 + (False,), "gripper stays unnormalized"
    if spec.proprio_dim is not None:
        assert spec.proprio_dim >= len(spec.state_obs_keys)
    assert not spec.rotate_images_180, "published datasets store upright frames (LIBERO's were rotated when written)"


def test_unknown_name_suggests_close_names():
    with pytest.raises(KeyError, match=r"did you mean \['bridge_orig'"):
        get_dataset_spec("bridge_orgi")
    with pytest.raises(KeyError, match="libero_spatial_no_noops"):
        get_dataset_spec("libero_spatial")


def test_non_eef_dataset_is_refused_with_a_fix():
    with pytest.raises(UnsupportedActionEncodingError) as e:
        get_dataset_spec("berkeley_rpt_converted_externally_to_rlds")
    msg = str(e.value)
    assert "joint_pos" in msg and "not end-effector deltas" in msg and "register_dataset" in msg
    spec = get_dataset_spec("berkeley_rpt_converted_externally_to_rlds", require_eef_delta=False)
    with pytest.raises(UnsupportedActionEncodingError):
        spec.standardize({"steps": {}})


def test_registering_a_converter_makes_a_non_eef_dataset_usable():
    name = "berkeley_rpt_converted_externally_to_rlds"
    original = get_dataset_spec(name, require_eef_delta=False)

    def to_eef(traj):  # a stand-in forward-kinematics converter
        traj["action"] = np.zeros((len(traj["is_first"]), 7), np.float32)
        return traj

    try:
        register_dataset(replace(original, transform=to_eef, action_encoding="eef_delta",
                                 image_keys={"primary": "hand_image", "wrist": None}), overwrite=True)
        std = get_dataset_spec(name).standardize(
            {"steps": {"is_first": np.array([True, False]), "observation": {"hand_image": np.array([b"a", b"b"], object)}}})
        assert std["action"].shape == (2, 7) and std["images"]["primary"].shape == (2,)
    finally:
        register_dataset(original, overwrite=True)


def test_register_dataset_refuses_silent_replacement():
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(get_dataset_spec("kuka"))
    with pytest.raises(ValueError, match="already registered"):
        register_transform("kuka")(lambda t: t)


def test_spec_validation_names_the_problem():
    with pytest.raises(ValueError, match="unknown cameras"):
        DatasetSpec(name="x", image_keys={"front": "image"}, control_hz=10, state_obs_keys=(), proprio_dim=None,
                    transform=TRANSFORMS["vla_episodes"])
    with pytest.raises(ValueError, match="action_encoding"):
        DatasetSpec(name="x", image_keys={"primary": "image"}, control_hz=10, state_obs_keys=(), proprio_dim=None,
                    transform=TRANSFORMS["vla_episodes"], action_encoding="joint_velocity")


# --- helpers: hand-worked sequences of the reference's scans -------------------------------------------

@pytest.mark.parametrize("rel, expected", [
    ([0, 0, 1, 0, 0, -1, 0], [1, 1, 0, 0, 0, 1, 1]),   # first event closes: the episode starts open
    ([0, 0, -1, 0, 0.8], [0, 0, 1, 1, 0]),              # first event opens: the episode starts closed
    ([0.05, -0.1, 0.1, 0], [1, 1, 1, 1]),                # |x| <= 0.1 is no event: all open
    ([1, 1, -1], [0, 0, 1]),
    ([], []),
])
def test_rel2abs_gripper(rel, expected):
    np.testing.assert_array_equal(rel2abs_gripper(np.array(rel, np.float32)), np.array(expected, np.float32))


@pytest.mark.parametrize("raw, expected", [
    ([1, 0.97, 0.5, 0.3, 0.01, 0.02, 0.6, 1.0], [1, 1, 0, 0, 0, 0, 1, 1]),  # in-between takes the next state
    ([1.0, 0.5, 0.5], [1, 0.5, 0.5]),                                      # trailing in-between keeps the last raw value
    ([0.0, 0.04, 0.96], [0, 0, 1]),
])
def test_binarize_gripper(raw, expected):
    np.testing.assert_allclose(binarize_gripper(np.array(raw, np.float32)), np.array(expected, np.float32))


def test_decode_zlib_accepts_raw_bytes_and_decoded_floats():
    values = np.arange(14, dtype=np.float32).reshape(2, 7)
    raw = np.array([zlib.compress(v.tobytes()) for v in values], dtype=object)  # what SkipDecoding / dlimp give
    np.testing.assert_array_equal(decode_zlib_float32(raw, 7), values)
    np.testing.assert_array_equal(decode_zlib_float32(values, 7), values)


def test_quat_to_euler_matches_scipy_extrinsic_xyz():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    euler = rng.uniform([-3, -1.4, -3], [3, 1.4, 3], size=(50, 3))
    quat = Rotation.from_euler("xyz", euler).as_quat()  # x, y, z, w
    np.testing.assert_allclose(quat_to_euler_xyz(quat), euler, atol=1e-5)
    # exact gimbal lock (pitch = +-90 deg) takes tensorflow_graphics' gimbal branch: yaw 0, roll carries the rest
    s = np.sin(np.pi / 4)
    np.testing.assert_allclose(quat_to_euler_xyz(np.array([[0, s, 0, s], [0, -s, 0, s]])),
                               [[0, np.pi / 2, 0], [0, -np.pi / 2, 0]], atol=1e-6)


# --- in-memory episodes in other raw schemas ---------------------------------------------------------

def _steps(t, observation, action, **extra):
    return {"steps": {"observation": observation, "action": action, "is_first": np.arange(t) == 0, **extra}}


def test_taco_play_keeps_the_reference_proprio_bug_and_offers_the_fix():
    t = 3
    robot_obs = np.tile(np.arange(15, dtype=np.float32), (t, 1))
    rel = np.array([[0.1] * 6 + [-1.0], [0.2] * 6 + [1.0], [0.0] * 6 + [1.0]], np.float32)
    ep = _steps(t, {"robot_obs": robot_obs, "rgb_static": np.array([b""] * t, object), "rgb_gripper": np.array([b""] * t, object),
                    "natural_language_instruction": np.array([b"open the drawer"] * t, object)},
                {"rel_actions_world": rel})
    ref = get_dataset_spec("taco_play").standardize(ep)
    np.testing.assert_array_equal(ref["proprio"][0], [0, 1, 2, 3, 4, 5, 0, 7])  # index 7 is a joint (reference bug)
    np.testing.assert_array_equal(ref["action"][:, 6], [0, 1, 1])             # clip(+-1, 0, 1): +1 is open
    assert ref["instruction"] == "open the drawer"
    fixed = get_dataset_spec("taco_play_fixed_proprio").standardize(ep)
    np.testing.assert_array_equal(fixed["proprio"][0], [0, 1, 2, 3, 4, 5, 0, 6])  # index 6: gripper width
    assert get_dataset_spec("taco_play_fixed_proprio").directory_name == "taco_play"


def test_berkeley_autolab_ur5_scalar_relative_gripper_and_state_slice():
    t = 4
    ep = _steps(t, {"robot_state": np.tile(np.arange(15, dtype=np.float32), (t, 1)), "image": np.array([b""] * t, object),
                    "hand_image": np.array([b""] * t, object),
                    "natural_language_instruction": np.array([b"x"] * t, object)},
                {"world_vector": np.ones((t, 3), np.float32), "rotation_delta": np.zeros((t, 3), np.float32),
                 "gripper_closedness_action": np.array([0, 1, 0, -1], np.float32)})
    std = get_dataset_spec("berkeley_autolab_ur5").standardize(ep)
    np.testing.assert_array_equal(std["action"][:, 6], [1, 0, 0, 1])
    np.testing.assert_array_equal(std["proprio"][0], np.arange(6, 14))


def test_furniture_bench_quaternion_action_becomes_euler():
    from scipy.spatial.transform import Rotation

    euler = np.array([[0.1, -0.2, 0.3], [0.0, 0.0, 0.5]])
    a = np.zeros((2, 8), np.float32)
    a[:, :3] = 0.01
    a[:, 3:7] = Rotation.from_euler("xyz", euler).as_quat()
    a[:, 7] = [1.0, -1.0]  # +1 = close
    ep = _steps(2, {"state": np.zeros((2, 35), np.float32), "image": np.array([b"", b""], object),
                    "wrist_image": np.array([b"", b""], object)}, a,
                language_instruction=np.array([b"assemble", b"assemble"], object))
    std = get_dataset_spec("furniture_bench_dataset_converted_externally_to_rlds").standardize(ep)
    np.testing.assert_allclose(std["action"][:, 3:6], euler, atol=1e-5)
    np.testing.assert_array_equal(std["action"][:, 6], [0, 1])
    assert std["proprio"].shape == (2, 8)


def test_wrong_dataset_or_image_key_is_named():
    t = 2
    libero_like = _steps(t, {"image": np.array([b""] * t, object), "state": np.zeros((t, 8), np.float32)},
                         np.zeros((t, 7), np.float32), language_instruction=np.array([b"a"] * t, object))
    with pytest.raises(ContractError, match=r"failed on this episode.*action array \(2, 7\)"):
        get_dataset_spec("fractal20220817_data").standardize(libero_like)
    spec = replace(get_dataset_spec("libero_goal_no_noops"), image_keys={"primary": "agentview_rgb", "wrist": None})
    with pytest.raises(ContractError, match="'agentview_rgb'.*fix image_keys"):
        spec.standardize(libero_like)


@pytest.mark.parametrize("t", [2, 3, 4])
def test_bridge_short_episodes_lose_first_and_last_step(t):
    state = np.arange(t * 7, dtype=np.float32).reshape(t, 7)
    action = np.ones((t, 7), np.float32)
    frames = {f"image_{k}": np.array([b"f%d-%d" % (k, i) for i in range(t)], object) for k in (0, 1)}
    ep = _steps(t, {"state": state, **frames}, action,
                language_instruction=np.array([b"wipe"] * t, object))
    std = get_dataset_spec("bridge_orig").standardize(ep)
    assert std["action"].shape == (t - 2, 7) and std["proprio"].shape == (t - 2, 8)
    assert list(std["images"]["primary"]) == [b"f0-%d" % i for i in range(1, t - 1)]
    assert list(std["images"]["secondary"]) == [b"f1-%d" % i for i in range(1, t - 1)]  # the reference's image_1
    np.testing.assert_array_equal(std["action"][:, :6], 7.0)  # state[t+1] - state[t] with rows 7 apart
    assert std["instruction"] == ("wipe" if t > 2 else "")
