"""Mixtures: OpenVLA's weights, weight x transitions sampling, user-defined lists from hydra config, and
resolution to directories and specs."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from oxe_raw_data import write_raw_datasets
from vla.data.oxe import (
    MIXTURES,
    UnsupportedActionEncodingError,
    get_dataset_spec,
    resolve_datasets,
    resolve_mixture,
    sampling_weights,
)
from vla.data.statistics import get_dataset_statistics


@pytest.fixture(scope="session")
def raw_dirs(tmp_path_factory):
    return write_raw_datasets(tmp_path_factory.getbasetemp() / "oxe_raw")


def test_magic_soup_plus_minus_weights():
    mix = dict(resolve_mixture("oxe_magic_soup_plus_minus"))
    assert len(mix) == 25 and "droid" not in mix and "language_table" not in mix
    assert mix["fractal20220817_data"] == 1.0 and mix["kuka"] == 0.8341046294
    assert mix["taco_play"] == mix["roboturk"] == mix["viola"] == mix["berkeley_autolab_ur5"] == 2.0
    assert mix["nyu_franka_play_dataset_converted_externally_to_rlds"] == 3.0
    assert mix["furniture_bench_dataset_converted_externally_to_rlds"] == 0.1
    assert mix["bc_z"] == mix["dobbe"] == 0.2
    assert sum(mix.values()) == pytest.approx(31.3341046294)


def test_named_and_single_dataset_mixtures():
    assert resolve_mixture("bridge") == [("bridge_orig", 1.0)]
    assert resolve_mixture("libero_goal_no_noops") == [("libero_goal_no_noops", 1.0)]
    assert [n for n, _ in resolve_mixture("libero_mix")] == [
        "libero_spatial_no_noops", "libero_object_no_noops", "libero_goal_no_noops", "libero_10_no_noops"]
    assert resolve_mixture("droid") == [("droid", 1.0)]
    assert resolve_mixture("toto") == [("toto", 1.0)]  # a registered dataset name is a one-dataset mixture
    for name in MIXTURES:
        resolve_mixture(name)  # every named mixture resolves to supported, registered datasets


def test_user_defined_mixture_from_hydra_config():
    cfg = OmegaConf.create("""
datasets:
  - {name: bridge_orig, weight: 1.0}
  - {name: kuka, weight: 0.5}
  - {name: bridge_orig, weight: 9.0}
  - libero_10_no_noops
""")
    assert resolve_mixture(cfg.datasets) == [("bridge_orig", 1.0), ("kuka", 0.5), ("libero_10_no_noops", 1.0)]


def test_mixture_errors():
    with pytest.raises(KeyError, match="oxe_magic_soup_plus_minus"):
        resolve_mixture("oxe_magic_soup_plus_minsu")
    with pytest.raises(KeyError, match=r"did you mean \['kuka'\]"):
        resolve_mixture([("kukaa", 1.0)])
    with pytest.raises(UnsupportedActionEncodingError, match="joint_pos"):
        resolve_mixture([("bridge_orig", 1.0), ("berkeley_mvp_converted_externally_to_rlds", 1.0)])
    with pytest.raises(ValueError, match="finite number >= 0"):
        resolve_mixture([("bridge_orig", -1.0)])
    with pytest.raises(ValueError, match="needs a 'name'"):
        resolve_mixture([{"weight": 1.0}])
    with pytest.raises(ValueError, match="at least one"):
        resolve_mixture([])


def test_sampling_weights_are_weight_times_transitions():
    mix = [("a", 1.0), ("b", 2.0), ("c", 0.5)]
    w = sampling_weights(mix, {"a": 100, "b": 10, "c": 400})
    np.testing.assert_allclose(w, np.array([100, 20, 200]) / 320)
    with pytest.raises(KeyError, match="no transition count for \\['c'\\]"):
        sampling_weights(mix, {"a": 1, "b": 1})


def test_resolve_datasets_to_directories_and_statistics(raw_dirs, tmp_path):
    root = raw_dirs["kuka"].parents[1]
    entries = OmegaConf.create([
        {"name": "kuka", "weight": 2.0},
        {"name": "fractal20220817_data", "weight": 1.0},
        {"path": str(raw_dirs["droid"]), "weight": 0.5},
    ])
    resolved = resolve_datasets(entries, data_root=root)
    assert [(r.name, r.weight, r.dataset_dir) for r in resolved] == [
        ("kuka", 2.0, raw_dirs["kuka"]),
        ("fractal20220817_data", 1.0, raw_dirs["fractal20220817_data"]),
        ("droid", 0.5, raw_dirs["droid"]),
    ]
    assert resolved[2].spec is get_dataset_spec("droid")
    counts = {r.name: get_dataset_statistics(r.dataset_dir, r.spec, cache_dir=tmp_path).num_transitions for r in resolved}
    assert counts == {"kuka": 10, "fractal20220817_data": 15, "droid": 8}
    w = sampling_weights([(r.name, r.weight) for r in resolved], counts)
    np.testing.assert_allclose(w, np.array([20, 15, 4]) / 39)

    with pytest.raises(FileNotFoundError, match="no RLDS dataset for 'bridge_orig'.*data_root"):
        resolve_datasets("bridge", data_root=root)
    with pytest.raises(ValueError, match="appears twice"):
        resolve_datasets([{"name": "kuka"}, {"path": str(raw_dirs["kuka"])}], data_root=root)
