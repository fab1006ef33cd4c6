"""OpenVLA / OpenVLA-OFT conventions for LIBERO, against the published eval scripts.

A fixed LIBERO observation (tests/fixtures/libero/observation.npz: libero_spatial task 0, initial state 0, after
the wait steps, as rendered; `make_observation.py` beside it regenerates it) goes through our pipeline
(`LiberoPolicyAdapter` -> `VLAPolicy` -> `env_actions`) and through the steps OpenVLA's
`experiments/robot/libero/run_libero_eval.py` takes (openvla/openvla c8f03f48: `libero_utils.get_libero_image`,
`resize_image`, `openvla_utils.get_vla_action` with `crop_and_resize`, `robot_utils.normalize_gripper_action`,
`invert_gripper_action`; moojink/openvla-oft 213c5ff8 for the wrist image and the 8-D state), restated below
with the same TensorFlow calls. Pixels must be identical, the prompt the same string, actions equal.
No MuJoCo here: this module loads TensorFlow.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim_envs.libero.conventions import (
    LiberoConventions,
    LiberoPolicyAdapter,
    center_crop,
    env_actions,
    policy_observation,
    policy_state,
    preset_for,
    quat_to_axis_angle,
    raw_observation,
    resolve,
)

FIXTURE = Path(__file__).parent / "fixtures" / "libero" / "observation.npz"
tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def libero_obs() -> dict:
    d = np.load(FIXTURE)
    return {k: d[k] for k in d.files}


# ---- the reference's steps, restated from the published scripts -------------------------------------------------
def ref_get_libero_image(obs, key="agentview_image", resize_size=224):
    img = obs[key][::-1, ::-1]  # "IMPORTANT: rotate 180 degrees to match train preprocessing"
    img = tf.image.encode_jpeg(img)  # resize_image: JPEG round trip as the RLDS builder, then lanczos3
    img = tf.io.decode_image(img, expand_animations=False, dtype=tf.uint8)
    img = tf.image.resize(img, (resize_size, resize_size), method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8).numpy()


def ref_center_crop(image, crop_scale=0.9):
    image = tf.image.convert_image_dtype(tf.convert_to_tensor(np.array(image)), tf.float32)[None]
    side = tf.reshape(tf.clip_by_value(tf.sqrt(crop_scale), 0, 1), shape=(1,))
    off = (1 - side) / 2
    boxes = tf.stack([off, off, off + side, off + side], axis=1)
    image = tf.image.crop_and_resize(image, boxes, tf.range(1), (224, 224))[0]
    image = tf.clip_by_value(image, 0, 1)
    return tf.image.convert_image_dtype(image, tf.uint8, saturate=True).numpy()


def ref_quat2axisangle(quat):
    quat = np.array(quat, dtype=np.float64)
    quat[3] = min(1.0, max(-1.0, quat[3]))
    den = np.sqrt(1.0 - quat[3] * quat[3])
    if math.isclose(den, 0.0):
        return np.zeros(3)
    return (quat[:3] * 2.0 * math.acos(quat[3])) / den


def ref_unnormalize(normalized, stats):  # predict_action's un-normalization (no clip of the gripper)
    q01, q99, mask = (np.asarray(stats["action"][k]) for k in ("q01", "q99", "mask"))
    return np.where(mask, 0.5 * (normalized + 1) * (q99 - q01) + q01, normalized)


def ref_postprocess(action):
    action = np.array(action, dtype=np.float64)
    action[..., -1] = 2 * (action[..., -1] - 0.0) / (1.0 - 0.0) - 1  # normalize_gripper_action
    action[..., -1] = np.sign(action[..., -1])  # binarize=True
    action[..., -1] = action[..., -1] * -1.0  # invert_gripper_action (model_family == "openvla")
    return action


# ---- tests --------------------------------------------------------------------------------------------------------
def _raw(obs):
    return raw_observation(obs, str(obs["task_language"]))


def test_openvla_pixels_are_the_reference_pixels(libero_obs):
    conv = resolve(LiberoConventions(preset="openvla"))
    seen = policy_observation(_raw(libero_obs), conv)
    expected = ref_center_crop(ref_get_libero_image(libero_obs))
    assert list(seen.images) == ["primary"] and seen.images["primary"].shape == (224, 224, 3)
    np.testing.assert_array_equal(seen.images["primary"], expected)
    assert seen.proprio.shape == (0,)  # OpenVLA reads no proprio
    # each option matters on this frame: without the crop, the rotation or the JPEG/Lanczos resize it differs
    for change in ({"center_crop": False}, {"rotate_180": False}, {"resize": "none"}):
        other = policy_observation(_raw(libero_obs), resolve(LiberoConventions(preset="openvla", **change)))
        assert other.images["primary"].shape != expected.shape or np.abs(
            other.images["primary"].astype(int) - expected).mean() > 1.0, change
    no_crop = policy_observation(_raw(libero_obs), resolve(LiberoConventions(preset="openvla", center_crop=False)))
    np.testing.assert_array_equal(no_crop.images["primary"], ref_get_libero_image(libero_obs))


def test_center_crop_is_tensorflows_crop_and_resize():
    rng = np.random.default_rng(0)
    for shape in ((224, 224, 3), (256, 256, 3), (97, 131, 3)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_array_equal(center_crop(img, 224), ref_center_crop(img))


def test_openvla_oft_cameras_and_state(libero_obs):
    conv = resolve(LiberoConventions(preset="openvla_oft"))
    seen = policy_observation(_raw(libero_obs), conv)
    assert list(seen.images) == ["primary", "wrist"]
    np.testing.assert_array_equal(seen.images["wrist"],
                                  ref_center_crop(ref_get_libero_image(libero_obs, "robot0_eye_in_hand_image")))
    expected = np.concatenate([libero_obs["robot0_eef_pos"], ref_quat2axisangle(libero_obs["robot0_eef_quat"]),
                               libero_obs["robot0_gripper_qpos"]])
    # the contract carries proprio as float32: the only difference from the reference's float64 state
    np.testing.assert_allclose(seen.proprio, expected, rtol=2e-7, atol=1e-7)
    # OFT's own sample LIBERO observation (sample_libero_spatial_observation.pkl) has axis-angle x = +3.1409; this
    # state has w = -2.6e-4, where the raw conversion keeps +pi and the antipodal one flips the sign
    assert libero_obs["robot0_eef_quat"][3] < 0 and 3.1 < seen.proprio[3] < 3.2
    flipped = policy_state(_raw(libero_obs).proprio, "oft8", rotation="antipodal")
    assert -3.2 < flipped[3] < -3.1


def test_quaternion_conversion_options():
    q = np.array([np.sin(0.3), 0.0, 0.0, np.cos(0.3)])  # 0.6 rad about x
    np.testing.assert_allclose(quat_to_axis_angle(q), [0.6, 0, 0], atol=1e-12)
    np.testing.assert_allclose(quat_to_axis_angle(-q), ref_quat2axisangle(-q))  # raw: 2*pi - 0.6 about -x
    np.testing.assert_allclose(quat_to_axis_angle(-q, "antipodal"), [0.6, 0, 0], atol=1e-12)
    assert np.all(quat_to_axis_angle([0, 0, 0, 1.0]) == 0)
    with pytest.raises(ValueError, match="rotation"):
        quat_to_axis_angle(q, "flip")


def test_gripper_polarity_binarized_as_the_reference_over_every_bin():
    """Our policy clips the gripper to [0, 1] (the contract: 1 = open); the reference does not clip. After its
    2g - 1, sign and inversion (-1 open / +1 close) the two agree on every one of the 255 bin centers."""
    edges = np.linspace(-1, 1, 256)
    centers = (edges[:-1] + edges[1:]) / 2
    raw = np.zeros((len(centers), 7))
    raw[:, 6] = centers
    ours = np.zeros_like(raw)
    ours[:, 6] = np.clip(centers, 0, 1)
    np.testing.assert_array_equal(env_actions(ours, "binarize"), ref_postprocess(raw))
    open_, closed = np.zeros(7), np.zeros(7)
    open_[6], closed[6] = 1.0, 0.0
    assert env_actions(open_, "binarize")[6] == -1.0 and env_actions(closed, "binarize")[6] == 1.0
    assert env_actions(np.full(7, 0.25), "continuous")[6] == 0.5  # 1 - 2g, no sign
    with pytest.raises(ValueError, match="gripper"):
        env_actions(open_, "flipped")


def _libero_stats(rng, proprio=False):
    from vla.core.statistics import ArrayStatistics, DatasetStatistics

    action = np.concatenate([rng.normal(0, 0.3, (500, 6)), rng.integers(0, 2, (500, 1))], 1)
    extra = {}
    if proprio:
        state = np.concatenate([rng.normal([-0.2, 0.0, 1.17], 0.05, (500, 3)), rng.normal([3.14, 0, -0.09], 0.02, (500, 3)),
                                rng.normal([0.03, -0.03], 0.005, (500, 2))], 1)
        extra["proprio"] = ArrayStatistics.compute(state)
    return DatasetStatistics(action=ArrayStatistics.compute(action, mask=[True] * 6 + [False]), **extra).to_dict()


def test_openvla_action_through_our_pipeline_is_the_reference_action(libero_obs):
    """A tiny VLA at 224 px: the model input (prompt and pixel_values) our pipeline builds equals the one the
    reference would build from its own preprocessed pixels, and the executed action equals the reference's
    post-processing of the same model output."""
    import torch

    from vla.model.policy import VLAPolicy
    from vla.model.presets import build_model
    from vla.model.prompt import build_prompt

    rng = np.random.default_rng(0)
    model, processor = build_model("tiny", seed=0, image_size=224)
    stats = {"libero_spatial_no_noops": _libero_stats(rng), "bridge_orig": _libero_stats(rng)}
    policy = VLAPolicy(model, processor, unnorm_key="libero_spatial_no_noops", norm_stats=stats)
    conv = resolve(LiberoConventions(), policy)
    assert conv.preset == "openvla" and preset_for(policy) == "openvla"
    adapter = LiberoPolicyAdapter(policy, conv)
    raw = _raw(libero_obs)

    task_label = str(libero_obs["task_language"])
    assert build_prompt(raw.instruction) == f"In: What action should the robot take to {task_label.lower()}?\nOut:"
    batch = policy.prepare([policy_observation(raw, conv)])
    ref_batch = processor([ref_center_crop(ref_get_libero_image(libero_obs))], [task_label])
    assert torch.equal(batch["input_ids"], ref_batch["input_ids"])
    assert torch.equal(batch["pixel_values"], ref_batch["pixel_values"])

    with torch.inference_mode():
        normalized = model.predict_normalized(ref_batch["input_ids"], ref_batch["pixel_values"],
                                              ref_batch["attention_mask"])[0, 0]
    expected = ref_postprocess(ref_unnormalize(normalized, stats["libero_spatial_no_noops"]))
    executed = env_actions(adapter.act(raw), conv.gripper)
    np.testing.assert_allclose(executed, expected, rtol=1e-6, atol=1e-7)
    assert executed[6] in (-1.0, 1.0)


def test_openvla_oft_inputs_two_cameras_and_normalized_state(libero_obs):
    """An OFT-shaped tiny VLA (primary + wrist, 8-D proprio, chunks of 8): `auto` picks the OFT preset, the
    wrist image follows the primary one in pixel_values (OFT concatenates them on channels), and the proprio is
    OFT's `normalize_proprio` of the reference state."""
    import torch

    from vla.model.policy import VLAPolicy
    from vla.model.presets import build_model

    rng = np.random.default_rng(1)
    model, processor = build_model("tiny", seed=0, image_size=224, cameras=["primary", "wrist"], use_proprio=True,
                                   proprio_dim=8, decoding="parallel", action_chunk=8)
    stats = {"libero_spatial_no_noops": _libero_stats(rng, proprio=True)}
    policy = VLAPolicy(model, processor, norm_stats=stats)
    conv = resolve(LiberoConventions(), policy)
    assert (conv.preset, conv.state, conv.cameras) == ("openvla_oft", "oft8", ("primary", "wrist"))
    batch = policy.prepare([policy_observation(_raw(libero_obs), conv)])
    ref_images = [ref_center_crop(ref_get_libero_image(libero_obs, k))
                  for k in ("agentview_image", "robot0_eye_in_hand_image")]
    per_camera = [processor.image_processor.preprocess([img])[0] for img in ref_images]
    assert torch.equal(batch["pixel_values"][0], torch.cat(per_camera, dim=0))
    state = np.concatenate([libero_obs["robot0_eef_pos"], ref_quat2axisangle(libero_obs["robot0_eef_quat"]),
                            libero_obs["robot0_gripper_qpos"]])
    p = stats["libero_spatial_no_noops"]["proprio"]
    q01, q99 = np.asarray(p["q01"]), np.asarray(p["q99"])
    ref_norm = np.clip(2 * (state - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)  # normalize_proprio (BOUNDS_Q99)
    # float32 proprio in the contract: |error| <= 2 * 1.2e-7 / (q99 - q01) on the narrow axis-angle range
    np.testing.assert_allclose(batch["proprio"][0].numpy(), ref_norm, atol=5e-5)
    chunk = LiberoPolicyAdapter(policy, conv).act(_raw(libero_obs))
    assert chunk.shape == (8, 7) and set(np.unique(env_actions(chunk, conv.gripper)[:, 6])) <= {-1.0, 1.0}


def test_resolve_presets_and_overrides():
    assert preset_for(None) == "native"
    native = resolve(LiberoConventions())
    assert (native.resize, native.center_crop, native.gripper) == ("none", False, "continuous")
    c = resolve(LiberoConventions(preset="openvla", center_crop=False, cameras=["primary", "wrist"], execute_steps=4))
    assert (c.preset, c.center_crop, c.cameras, c.execute_steps, c.resize) == (
        "openvla", False, ("primary", "wrist"), 4, "reference")
    for bad in ({"preset": "oft"}, {"resize": "pil"}, {"cameras": ["wrist"]}, {"state": "joint"},
                {"execute_steps": 0}):
        with pytest.raises(ValueError, match="libero.conventions"):
            LiberoConventions(**bad)
