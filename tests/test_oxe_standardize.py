"""Standardization of every raw schema family, read from disk with our TF-free reader, and what the loader
makes of the LIBERO and DROID layouts (upright frames; DROID's cameras, unlabeled episodes, no-op steps).

Google dict actions (fractal; kuka with zlib-encoded proprio), LIBERO (upright frames, -1/+1 gripper) and
DROID (float64 action_dict) are tiny datasets written with TFDS in the real feature layout
(tests/oxe_raw_data.py); bridge is the real published data. Expected values are worked out by hand from
the reference's behaviour (shared/facts/oxe_rlds.md), independently of the implementation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from oxe_raw_data import (
    DROID_GRIPPER_POSITION,
    FRACTAL_GRIPPER_ABS,
    INSTRUCTION,
    LIBERO_GRIPPER_STD,
    upright_frame,
    write_droid,
    write_raw_datasets,
)
from vla.core.types import validate_action
from vla.data.config import DataConfig, DatasetEntry
from vla.data.loader import RLDSLoader, resolve_sources
from vla.data.oxe import (
    DROID_FILTER_Q01,
    DROID_FILTER_Q99,
    get_dataset_spec,
    motionless_actions,
    spec_for_directory,
    steps_with_motion,
)
from vla.data.rlds_reader import RLDSReader, decode_image


@pytest.fixture(scope="session")
def raw_dirs(tmp_path_factory):
    return write_raw_datasets(tmp_path_factory.getbasetemp() / "oxe_raw")


def _episodes(path, **kw):
    return list(RLDSReader(path).episodes("train", **kw))


def test_fractal_dict_actions_relative_gripper(raw_dirs):
    spec = get_dataset_spec("fractal20220817_data")
    eps = _episodes(raw_dirs["fractal20220817_data"])
    assert len(eps) == len(FRACTAL_GRIPPER_ABS)
    for ep, grip in zip(eps, FRACTAL_GRIPPER_ABS):
        std = spec.standardize(ep)
        a, o = ep["steps"]["action"], ep["steps"]["observation"]
        t = len(grip)
        expected = np.concatenate([a["world_vector"], a["rotation_delta"], np.array(grip, np.float32)[:, None]], 1)
        np.testing.assert_array_equal(std["action"], expected)  # base motion and terminate_episode dropped
        assert std["action"].dtype == np.float32 and std["action"].shape == (t, 7)
        np.testing.assert_array_equal(std["proprio"], np.concatenate([o["base_pose_tool_reached"], o["gripper_closed"]], 1))
        assert std["instruction"] == INSTRUCTION
        assert std["images"]["primary"].shape == (t,) and "wrist" not in std["images"]  # encoded, not decoded
        validate_action(std["action"])


def test_kuka_zlib_proprio_is_decoded(raw_dirs):
    spec = get_dataset_spec("kuka")
    eps = _episodes(raw_dirs["kuka"])
    for ep, grip in zip(eps, FRACTAL_GRIPPER_ABS[:2]):
        std = spec.standardize(ep)
        o = ep["steps"]["observation"]
        assert std["proprio"].shape == (len(grip), 8)
        np.testing.assert_array_equal(std["proprio"][:, :7], o["clip_function_input/base_pose_tool_reached"])
        np.testing.assert_array_equal(std["proprio"][:, 7], [i % 2 for i in range(len(grip))])
        np.testing.assert_array_equal(std["action"][:, 6], grip)
        assert std["instruction"] == "pick anything"


def test_kuka_as_the_reference_reads_it_with_skip_decoding(raw_dirs):
    """The reference reads kuka with SkipDecoding: the proprio arrives as zlib bytes and must give the same result."""
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(raw_dirs["kuka"]))
    ds = builder.as_dataset(split="train", decoders={"steps": tfds.decode.SkipDecoding()})
    raw_eps = list(tfds.as_numpy(ds))
    spec = get_dataset_spec("kuka")
    ours = _episodes(raw_dirs["kuka"])
    assert raw_eps[0]["steps"]["observation"]["gripper_closed"].dtype == object  # compressed bytes
    for raw, ep in zip(raw_eps, ours):
        a, b = spec.standardize(raw, images=False), spec.standardize(ep, images=False)
        np.testing.assert_array_equal(a["proprio"], b["proprio"])
        np.testing.assert_array_equal(a["action"], b["action"])


def test_libero_gripper_proprio_and_upright_frames(raw_dirs):
    spec = get_dataset_spec("libero_spatial_no_noops")
    assert not spec.rotate_images_180
    assert spec.image_keys == {"primary": "image", "secondary": None, "wrist": "wrist_image"}
    for ep in _episodes(raw_dirs["libero_spatial_no_noops"], decode_images=True):
        std = spec.standardize(ep)
        raw = ep["steps"]["action"]
        np.testing.assert_array_equal(std["action"][:, :6], raw[:, :6])
        np.testing.assert_allclose(std["action"][:, 6], LIBERO_GRIPPER_STD, atol=1e-7)  # 1 - clip(g, 0, 1)
        state = ep["steps"]["observation"]["state"]
        assert std["proprio"].shape == (len(raw), 9)
        np.testing.assert_array_equal(std["proprio"], np.concatenate([state[:, :6], np.zeros((len(raw), 1)), state[:, 6:8]], 1))
        # Frames are stored upright (OpenVLA's conversion rotated them when writing) and come out as stored.
        frames = std["images"]["primary"]
        for t, frame in enumerate(frames):
            assert frame[:4, :4].mean() > 200 and frame[-4:, -4:].mean() < 100
            assert np.abs(frame.astype(int) - upright_frame(t).astype(int)).mean() < 8  # JPEG
        assert std["images"]["wrist"].shape == (len(raw), 16, 16, 3)
        assert std["metadata"]["file_path"].startswith(b"/demo_")
        assert std["instruction"] == INSTRUCTION


def test_libero_frames_reach_training_upright(raw_dirs, tmp_path):
    """The loader delivers LIBERO frames as OpenVLA's pipeline does: as stored, upright, not rotated again."""
    cfg = DataConfig(datasets=[DatasetEntry(path=str(raw_dirs["libero_spatial_no_noops"]))], image_size=16,
                     cameras=["primary"], num_workers=0, statistics_cache=str(tmp_path))
    samples = list(RLDSLoader(cfg, train=False))
    assert len(samples) == 2 * len(LIBERO_GRIPPER_STD) and samples[0]["dataset"] == "libero_spatial_no_noops"
    for s in samples:
        frame = s["images"]["primary"]
        assert frame[:4, :4].mean() > 200 and frame[-4:, -4:].mean() < 100, "the bright block is top-left"
        assert np.abs(frame.astype(int) - upright_frame(s["step"]).astype(int)).mean() < 8  # JPEG


def test_droid_float64_action_dict(raw_dirs):
    spec = get_dataset_spec("droid")
    eps = _episodes(raw_dirs["droid"])
    assert ep_dtype(eps[0]) == np.float64
    for ep in eps:
        std = spec.standardize(ep)
        ad, o = ep["steps"]["action_dict"], ep["steps"]["observation"]
        assert std["action"].dtype == np.float32
        np.testing.assert_array_equal(std["action"][:, :6], ad["cartesian_velocity"].astype(np.float32))
        # TFDS stored the float64 as float32; 1 - x is taken in float64 then cast, as the reference does.
        np.testing.assert_allclose(ad["gripper_position"][:, 0], DROID_GRIPPER_POSITION, atol=1e-7)
        np.testing.assert_array_equal(std["action"][:, 6], (1.0 - ad["gripper_position"][:, 0]).astype(np.float32))
        np.testing.assert_array_equal(
            std["proprio"], np.concatenate([o["cartesian_position"], o["gripper_position"]], 1).astype(np.float32))
        assert set(std["images"]) == {"primary", "secondary", "wrist"}
        np.testing.assert_array_equal(std["images"]["primary"], o["exterior_image_1_left"])  # no random camera swap
        np.testing.assert_array_equal(std["images"]["secondary"], o["exterior_image_2_left"])
        assert not np.allclose(std["action"], ep["steps"]["action"])  # the top-level joint-space action is ignored
        assert np.all(std["action"][1, :6] == 0) and spec.filter_zero_actions  # zero frames kept here, loader filters
        assert motionless_actions(std["action"], std["action"], "exact").tolist() == [False, True, False, False]


# --- DROID through the loader: a third (unlabeled) episode; step 1 of every episode has zero motion ---
@pytest.fixture(scope="module")
def droid_dir(tmp_path_factory):
    return write_droid(tmp_path_factory.mktemp("droid_unlabeled"), unlabeled_episodes=1)


def _droid_cfg(droid_dir, tmp_path, **kw) -> DataConfig:
    base = dict(datasets=[DatasetEntry(path=str(droid_dir))], image_size=16, cameras=["primary"], num_workers=0,
                statistics_cache=str(tmp_path))
    return DataConfig(**{**base, **kw})


def _steps_by_episode(samples) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s in samples:
        out.setdefault(s["episode_id"], []).append(s["step"])
    return out


def test_droid_secondary_exterior_camera_is_selectable(droid_dir, tmp_path):
    cfg = _droid_cfg(droid_dir, tmp_path, cameras=["primary", "secondary", "wrist"], zero_action_filter="off")
    samples = list(RLDSLoader(cfg, train=False))
    raw = list(RLDSReader(droid_dir).episodes("train", decode_images=True))
    assert len(samples) == 2 * len(DROID_GRIPPER_POSITION)  # the unlabeled episode is skipped
    for s in samples:
        obs = raw[int(s["episode_id"])]["steps"]["observation"]
        assert set(s["images"]) == {"primary", "secondary", "wrist"}
        for cam, key in (("primary", "exterior_image_1_left"), ("secondary", "exterior_image_2_left"),
                         ("wrist", "wrist_image_left")):
            np.testing.assert_array_equal(s["images"][cam], obs[key][s["step"]])
    sample = next(iter(RLDSLoader(_droid_cfg(droid_dir, tmp_path, cameras=["secondary"]), train=False)))
    assert set(sample["images"]) == {"secondary"}
    with pytest.raises(ValueError, match=r"distinct names from \[primary, secondary, wrist\], got \['top'\]"):
        _droid_cfg(droid_dir, tmp_path, cameras=["top"])


def test_droid_unlabeled_episodes_are_skipped_as_in_training(droid_dir, tmp_path):
    """OpenVLA trains with skip_unlabeled=True: an episode with no instruction on any step is left out."""
    by_episode = _steps_by_episode(RLDSLoader(_droid_cfg(droid_dir, tmp_path, zero_action_filter="off"), train=False))
    assert sorted(by_episode) == ["0", "1"]
    kept = list(RLDSLoader(_droid_cfg(droid_dir, tmp_path, zero_action_filter="off", skip_unlabeled=False), train=False))
    assert sorted(_steps_by_episode(kept)) == ["0", "1", "2"]
    assert {s["instruction"] for s in kept if s["episode_id"] == "2"} == {""}
    assert resolve_sources(_droid_cfg(droid_dir, tmp_path))[0].statistics.num_trajectories == 3  # stats: all, as the reference
    only_unlabeled = _droid_cfg(droid_dir, tmp_path, split="train[2:]")
    with pytest.raises(ValueError, match="no episode has any step to sample.*skip_unlabeled=false"):
        list(RLDSLoader(only_unlabeled, train=False))
    with pytest.raises(ValueError, match="no episode has any step to sample"):
        next(iter(RLDSLoader(only_unlabeled)))


def test_droid_zero_action_filter_modes(droid_dir, tmp_path):
    every = list(range(len(DROID_GRIPPER_POSITION)))
    # reference: OpenVLA's test against the normalized zero of its fixed DROID statistics; on data with other
    # statistics (this one) no action lands on that point, so the zero-motion step 1 stays, as in the reference
    for mode, steps in (("reference", every), ("off", every), ("exact", [0, 2, 3])):
        by_episode = _steps_by_episode(RLDSLoader(_droid_cfg(droid_dir, tmp_path, zero_action_filter=mode), train=False))
        assert by_episode == {"0": steps, "1": steps}, mode
    # normalized with the statistics the reference's filter assumes, the reference test drops step 1 only
    cfg = _droid_cfg(droid_dir, tmp_path)
    (source,) = resolve_sources(cfg)
    action = replace(source.statistics.action, q01=np.r_[DROID_FILTER_Q01, 0.0], q99=np.r_[DROID_FILTER_Q99, 1.0])
    droid_stats = replace(source, statistics=replace(source.statistics, action=action))
    by_episode = _steps_by_episode(RLDSLoader(cfg, train=False, sources=[droid_stats]))
    assert by_episode == {"0": [0, 2, 3], "1": [0, 2, 3]}
    # with action chunks a step is dropped only when every action of its chunk is a no-op
    windows = _droid_cfg(droid_dir, tmp_path, zero_action_filter="exact", window={"action_chunk": 2})
    assert _steps_by_episode(RLDSLoader(windows, train=False)) == {"0": every, "1": every}
    assert steps_with_motion(np.array([False, True, True, False, True]), 2).tolist() == [0, 2, 3]
    assert steps_with_motion(np.array([False, True, True, False, True]), 1).tolist() == [0, 3]
    with pytest.raises(ValueError, match=r"zero_action_filter='droid'; allowed: \['reference', 'exact', 'off'\]"):
        _droid_cfg(droid_dir, tmp_path, zero_action_filter="droid")


def ep_dtype(ep):
    return ep["steps"]["action_dict"]["cartesian_velocity"].dtype


def test_real_bridge_data(bridge_dataset_dir):
    """bridge_orig as the reference: drop step 0, binarize the gripper, relabel movement from the states, drop the last."""
    spec = get_dataset_spec("bridge_dataset")
    eps = _episodes(bridge_dataset_dir, decode_images=True)
    assert len(eps) == 25
    for ep in eps:
        std = spec.standardize(ep)
        state, action = ep["steps"]["observation"]["state"], ep["steps"]["action"]
        t = len(state)
        assert std["action"].shape == (t - 2, 7) and std["proprio"].shape == (t - 2, 8)
        expected_move = state[2:, :6] - state[1:-1, :6]
        np.testing.assert_allclose(std["action"][:, :6], expected_move, atol=1e-7)
        np.testing.assert_array_equal(std["action"][:, 6], _binarized_bridge_gripper(action[:, 6]))
        np.testing.assert_array_equal(std["proprio"][:, :6], state[1:-1, :6])
        np.testing.assert_array_equal(std["proprio"][:, 6], 0.0)
        np.testing.assert_array_equal(std["proprio"][:, 7], state[1:-1, 6])
        np.testing.assert_array_equal(std["images"]["primary"], ep["steps"]["observation"]["image_0"][1:-1])
        assert std["instruction"] == ep["steps"]["language_instruction"][1].decode()
        validate_action(std["action"])


def _binarized_bridge_gripper(raw):
    """The reference rule, spelled out: after dropping step 0, a value > 0.95 is open (1), < 0.05 closed (0),
    one in between takes the first decided value after it (the raw last value if none); the last step is dropped."""
    g = raw[1:]
    out = []
    for i in range(len(g) - 1):
        later = [v for v in g[i:] if v > 0.95 or v < 0.05]
        out.append(float(later[0] > 0.95) if later else g[-1])
    return np.array(out, np.float32)


def test_real_bridge_data_has_in_between_gripper_values(bridge_dataset_dir):
    raw = np.concatenate([ep["steps"]["action"][1:, 6] for ep in _episodes(bridge_dataset_dir)])
    assert np.any((raw > 0.05) & (raw < 0.95)), "the binarization above is exercised on real values"


def test_spec_for_directory_finds_registered_and_our_own_data(raw_dirs, bridge_dataset_dir, tmp_path):
    assert spec_for_directory(raw_dirs["kuka"]).name == "kuka"
    assert spec_for_directory(bridge_dataset_dir).name == "bridge_dataset"
    from vla.core.episode import Episode, EpisodeMetadata
    from vla.data.rlds_writer import RLDSWriter

    rng = np.random.default_rng(0)
    with RLDSWriter(tmp_path, "sim_pick", cameras=("primary",), image_size=(16, 16), state_dim=4) as w:
        for e in range(2):
            act = rng.uniform(-0.1, 0.1, (5, 7)).astype(np.float32)
            act[:, 6] = [1, 1, 0, 0, 1]
            w.write(Episode(images={"primary": rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)},
                            state=rng.normal(size=(5, 4)), action=act, instruction="lift the cube",
                            metadata=EpisodeMetadata(episode_id=f"ep{e}", success=True, seed=e)))
    spec = spec_for_directory(tmp_path / "sim_pick" / "1.0.0")
    assert spec.name == "sim_pick" and spec.transform is get_dataset_spec("vla_episodes").transform
    ep = next(RLDSReader(tmp_path / "sim_pick" / "1.0.0").episodes())
    std = spec.standardize(ep)
    np.testing.assert_array_equal(std["action"], ep["steps"]["action"])  # identity
    np.testing.assert_array_equal(std["proprio"], ep["steps"]["observation"]["state"])
    assert set(std["images"]) == {"primary"} and std["instruction"] == "lift the cube"
    assert std["metadata"]["episode_id"] == b"ep0"
