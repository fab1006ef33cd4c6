"""Dataset statistics: values as the reference computes them, OpenVLA's JSON layout, the cache (hit, and
misses when the data or the standardization code change), split "all", normalization."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace

import numpy as np
import pytest

from oxe_raw_data import write_fractal, write_raw_datasets
from vla.core.statistics import DatasetStatistics
from vla.data import statistics as stats_mod
from vla.data.oxe import TRANSFORMS, UnsupportedActionEncodingError, get_dataset_spec
from vla.data.oxe.transform_utils import slice_tree
from vla.data.rlds_reader import RLDSReader
from vla.data.statistics import get_dataset_statistics


@pytest.fixture(scope="session")
def raw_dirs(tmp_path_factory):
    return write_raw_datasets(tmp_path_factory.getbasetemp() / "oxe_raw")


def _reference_stats(values: np.ndarray) -> dict:
    """What OpenVLA's get_dataset_statistics computes (numpy over the concatenated standardized arrays)."""
    return {"mean": values.mean(0), "std": values.std(0), "max": values.max(0), "min": values.min(0),
            "q01": np.quantile(values, 0.01, axis=0), "q99": np.quantile(values, 0.99, axis=0)}


def _standardized(dataset_dir, spec, split="train"):
    eps = [spec.standardize(ep, images=False) for ep in RLDSReader(dataset_dir).episodes(split)]
    return np.concatenate([e["action"] for e in eps]), np.concatenate([e["proprio"] for e in eps]), len(eps)


def test_bridge_statistics_match_the_reference_computation(bridge_dataset_dir, tmp_path, caplog):
    spec = get_dataset_spec("bridge_dataset")
    with caplog.at_level(logging.WARNING, logger="vla.data.statistics"):
        stats = get_dataset_statistics(bridge_dataset_dir, spec, cache_dir=tmp_path)
    assert "leave out split 'val'" in caplog.text  # listed in dataset_info.json, shard not shipped
    assert stats.extra["splits"] == ["train"]
    action, proprio, n = _standardized(bridge_dataset_dir, spec)
    assert (stats.num_trajectories, stats.num_transitions) == (25, 200) == (n, len(action))
    for name, value in _reference_stats(action).items():
        np.testing.assert_allclose(getattr(stats.action, name), value, rtol=1e-5, atol=1e-6, err_msg=name)
    for name, value in _reference_stats(proprio).items():
        np.testing.assert_allclose(getattr(stats.proprio, name), value, rtol=1e-5, atol=1e-6, err_msg=name)
    assert stats.action.mask.tolist() == [True] * 6 + [False]
    assert stats.proprio.mask.all()


def test_cache_layout_hit_and_invalidation(raw_dirs, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(raw_dirs["fractal20220817_data"].parent, data / "fractal20220817_data")
    dataset_dir = data / "fractal20220817_data" / "0.1.0"
    spec = get_dataset_spec("fractal20220817_data")
    cache = tmp_path / "cache"

    first = get_dataset_statistics(dataset_dir, spec, cache_dir=cache)
    files = list(cache.glob("dataset_statistics_fractal20220817_data_*.json"))
    assert len(files) == 1 and first.extra["cache_key"] in files[0].name
    on_disk = json.loads(files[0].read_text())
    assert {"action", "proprio", "num_transitions", "num_trajectories"} <= set(on_disk)  # OpenVLA norm_stats layout
    assert set(on_disk["action"]) == {"mean", "std", "max", "min", "q01", "q99", "mask"}
    assert on_disk["num_transitions"] == 7 + 3 + 5 and on_disk["num_trajectories"] == 3

    calls = []
    real_compute = stats_mod.compute_statistics
    monkeypatch.setattr(stats_mod, "compute_statistics", lambda *a, **k: calls.append(1) or real_compute(*a, **k))

    again = get_dataset_statistics(dataset_dir, spec, cache_dir=cache)
    assert calls == [] and again.to_dict() == first.to_dict()  # hit: nothing recomputed

    # Changed standardization code (same name, different function) -> a new key, recomputed.
    def rt1_without_gripper_scan(traj):
        a = traj["action"]
        traj["action"] = np.concatenate([a["world_vector"], a["rotation_delta"], a["gripper_closedness_action"]], 1)
        traj["language_instruction"] = traj["observation"]["natural_language_instruction"]
        return traj

    changed = get_dataset_statistics(dataset_dir, replace(spec, transform=rt1_without_gripper_scan), cache_dir=cache)
    assert calls == [1] and changed.extra["cache_key"] != first.extra["cache_key"]
    assert changed.action.min[6] == -1.0 and first.action.min[6] == 0.0

    # Changed data (rewritten with other values, same layout and sizes) -> a new key, recomputed.
    shutil.rmtree(data / "fractal20220817_data")
    write_fractal(data, seed=123)
    rewritten = get_dataset_statistics(dataset_dir, spec, cache_dir=cache)
    assert calls == [1, 1] and rewritten.extra["cache_key"] != first.extra["cache_key"]
    assert not np.allclose(rewritten.action.mean[:3], first.action.mean[:3])
    assert len(list(cache.glob("*.json"))) == 3


def test_statistics_of_every_raw_family(raw_dirs, tmp_path):
    for name, proprio_dim in [("kuka", 8), ("libero_spatial_no_noops", 9), ("droid", 7)]:
        spec = get_dataset_spec(name)
        stats = get_dataset_statistics(raw_dirs[name], name, cache_dir=tmp_path)  # a registered name works too
        action, proprio, n = _standardized(raw_dirs[name], spec)
        assert stats.num_trajectories == n and stats.num_transitions == len(action)
        assert stats.proprio.dim == proprio_dim
        np.testing.assert_allclose(stats.action.q99, _reference_stats(action)["q99"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.proprio.mean, proprio.mean(0), rtol=1e-5, atol=1e-6)


def test_normalization_as_the_reference(raw_dirs, tmp_path):
    spec = get_dataset_spec("fractal20220817_data")
    stats = get_dataset_statistics(raw_dirs["fractal20220817_data"], spec, cache_dir=tmp_path)
    action, _, _ = _standardized(raw_dirs["fractal20220817_data"], spec)
    norm = stats.action.normalize(action)
    q01, q99 = stats.action.q01, stats.action.q99
    expected = np.clip(2 * (action[:, :2] - q01[:2]) / (q99[:2] - q01[:2] + 1e-8) - 1, -1, 1)
    np.testing.assert_allclose(norm[:, :2], expected, atol=1e-6)
    np.testing.assert_array_equal(norm[:, 5], 0.0)  # rotation_delta z is constant in this data: min == max -> 0
    np.testing.assert_array_equal(norm[:, 6], action[:, 6])  # gripper untouched
    assert np.all(np.abs(norm) <= 1)
    restored = DatasetStatistics.from_dict(json.loads(json.dumps(stats.to_dict())))
    np.testing.assert_array_equal(restored.action.normalize(action), norm)


def test_loader_normalizes_in_float64_from_the_stored_statistics(raw_dirs, tmp_path):
    """LIBERO proprio as the loader hands it over equals the reference's `2 * (x - q01) / (q99 - q01) - 1`,
    computed in float64 from the statistics as stored (JSON), up to the final float32 rounding."""
    from vla.data.config import DataConfig, DatasetEntry
    from vla.data.loader import RLDSLoader

    path = raw_dirs["libero_spatial_no_noops"]
    cfg = DataConfig(datasets=[DatasetEntry(path=str(path))], image_size=16, cameras=["primary"], num_workers=0,
                     statistics_cache=str(tmp_path))
    ours = np.stack([s["proprio"] for s in RLDSLoader(cfg, train=False)])
    (stored,) = tmp_path.glob("dataset_statistics_libero_spatial_no_noops_*.json")
    p = json.loads(stored.read_text())["proprio"]
    q01, q99 = np.array(p["q01"]), np.array(p["q99"])  # float64, as the reference loads them
    _, proprio, _ = _standardized(path, get_dataset_spec("libero_spatial_no_noops"))
    x = proprio.astype(np.float64)
    expected = np.clip(2 * (x - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)
    expected[:, np.array(p["min"]) == np.array(p["max"])] = 0.0  # the zero pad column
    assert ours.dtype == np.float32 and ours.shape == expected.shape == (12, 9)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=6e-8)  # half a float32 ulp at 1
    # the data can tell: rounding x and q01 to float32 before subtracting misses by far more
    lo, hi = q01.astype(np.float32), q99.astype(np.float32)
    rounded = np.clip(2 * (proprio - lo) / (hi - lo + np.float32(1e-8)) - 1, -1, 1)
    assert np.abs(rounded[:, :6] - expected[:, :6]).max() > 1e-6


def test_statistics_refuse_non_eef_and_empty_data(tmp_path, raw_dirs):
    spec = get_dataset_spec("berkeley_rpt_converted_externally_to_rlds", require_eef_delta=False)
    with pytest.raises(UnsupportedActionEncodingError):
        get_dataset_statistics(raw_dirs["kuka"], spec, cache_dir=tmp_path)

    def drop_everything(traj):
        return slice_tree(TRANSFORMS["libero"](traj), slice(0, 0))

    empty = replace(get_dataset_spec("libero_spatial_no_noops"), transform=drop_everything)
    with pytest.raises(ValueError, match="no steps after standardization"):
        get_dataset_statistics(raw_dirs["libero_spatial_no_noops"], empty, cache_dir=tmp_path)
