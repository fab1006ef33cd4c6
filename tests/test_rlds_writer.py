"""RLDSWriter: episodes written through TFDS's SequentialWriter load unchanged with tfds.builder_from_directory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla.core.episode import EpisodeMetadata
from vla.core.types import ContractError
from vla.data.synthetic import make_episode

tfds = pytest.importorskip("tensorflow_datasets")


def _tfds_episodes(dataset_dir, split):
    builder = tfds.builder_from_directory(str(dataset_dir))
    return builder, [dict(e, steps=list(e["steps"])) for e in tfds.as_numpy(builder.as_dataset(split=split))]


def test_written_dataset_loads_with_tfds_unchanged(tiny_rlds_dataset):
    builder, episodes = _tfds_episodes(tiny_rlds_dataset, "train")
    assert builder.info.splits["train"].num_examples == 6
    assert builder.info.splits["train"].num_shards == 3  # episodes_per_shard=2: several shards
    assert builder.info.splits["val"].num_examples == 2
    assert set(builder.info.features["steps"]["observation"].keys()) == {"image", "wrist_image", "state"}

    for index, got in enumerate(episodes):
        expected = make_episode(index, num_steps=len(got["steps"]), image_size=(32, 32), state_dim=8)
        meta = EpisodeMetadata.from_features(got["episode_metadata"])
        assert meta == expected.metadata  # id, success, seed, randomization JSON, task round-trip
        steps = got["steps"]
        np.testing.assert_array_equal(np.stack([s["action"] for s in steps]), expected.action)
        np.testing.assert_array_equal(np.stack([s["observation"]["state"] for s in steps]), expected.state)
        assert {s["language_instruction"] for s in steps} == {expected.instruction.encode()}
        assert [bool(s["is_first"]) for s in steps] == [True] + [False] * (len(steps) - 1)
        assert [bool(s["is_last"]) for s in steps] == [False] * (len(steps) - 1) + [True]
        assert bool(steps[-1]["is_terminal"]) == expected.metadata.success
        np.testing.assert_array_equal([s["reward"] for s in steps], expected.reward)
        for cam, key in (("primary", "image"), ("wrist", "wrist_image")):
            frames = np.stack([s["observation"][key] for s in steps])
            assert frames.dtype == np.uint8 and frames.shape == expected.images[cam].shape
            # JPEG is lossy: close to the source, not equal
            assert np.abs(frames.astype(int) - expected.images[cam]).mean() < 12  # unrelated frames: ~80


def test_metadata_files(tiny_rlds_dataset):
    info = json.loads((tiny_rlds_dataset / "dataset_info.json").read_text())
    assert info["name"] == "tiny_sim" and info["version"] == "1.0.0"
    assert [s["shardLengths"] for s in info["splits"] if s["name"] == "train"] == [["2", "2", "2"]]
    feats = json.loads((tiny_rlds_dataset / "features.json").read_text())
    meta = feats["featuresDict"]["features"]["episode_metadata"]["featuresDict"]["features"]
    assert set(meta) == {"episode_id", "success", "seed", "randomization", "task"}


def test_writer_rejects_mismatching_episodes(tmp_path):
    from vla.data.rlds_writer import RLDSWriter

    with RLDSWriter(tmp_path, "bad", image_size=(16, 16), state_dim=8) as writer:
        with pytest.raises(ContractError, match="image_size"):
            writer.write(make_episode(0, image_size=(32, 32)))
        with pytest.raises(ContractError, match="state_dim"):
            writer.write(make_episode(0, image_size=(16, 16), state_dim=5))
        with pytest.raises(ContractError, match="cameras"):
            writer.write(make_episode(0, image_size=(16, 16), cameras=("primary",)))
        writer.write(make_episode(0, image_size=(16, 16), num_steps=3))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        RLDSWriter(tmp_path, "bad", image_size=(16, 16), state_dim=8)
    with pytest.raises(ContractError, match="primary"):
        RLDSWriter(tmp_path, "other", cameras=("wrist",))


def test_executed_action_round_trips_next_to_the_label(tmp_path):
    """Perturbed demonstrations keep the label in `action` and what ran in `executed_action` (step metadata);
    both the TFDS builder and our TF-free reader return it, and the writer refuses a mix."""
    import dataclasses

    from vla.data.rlds_reader import RLDSReader
    from vla.data.rlds_writer import RLDSWriter

    ep = make_episode(0, image_size=(16, 16), num_steps=4)
    executed = ep.action.copy()
    executed[:, :3] += 0.01
    perturbed = dataclasses.replace(ep, executed_action=executed)
    with RLDSWriter(tmp_path, "dart", image_size=(16, 16), state_dim=8, executed_action=True) as writer:
        with pytest.raises(ContractError, match="executed_action"):
            writer.write(ep)
        writer.write(perturbed)
    _, tf_eps = _tfds_episodes(tmp_path / "dart" / "1.0.0", "train")
    np.testing.assert_allclose(np.stack([s["executed_action"] for s in tf_eps[0]["steps"]]), executed)
    np.testing.assert_allclose(np.stack([s["action"] for s in tf_eps[0]["steps"]]), ep.action)
    (ours,) = list(RLDSReader(tmp_path / "dart" / "1.0.0").episodes())
    np.testing.assert_allclose(ours["steps"]["executed_action"], executed)
    with pytest.raises(ContractError, match="executed_action"):
        dataclasses.replace(ep, executed_action=executed[:2])
