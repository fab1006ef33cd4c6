"""Dataset mixtures: named ones (OpenVLA's weights) and user-defined ones from hydra config.

A mixture is a list of (dataset name, weight). As in the reference (`make_interleaved_dataset` with
`balance_weights=True`), a dataset is sampled with probability proportional to
`weight * num_transitions`, so the weights are relative per-transition rates, not dataset shares.
A dataset listed twice keeps its first weight (the reference skips duplicates too).

Unlike the reference, which logs and skips a dataset whose action encoding is not end-effector delta,
resolving a mixture fails on it: a silently smaller mixture is a different experiment.

User-defined mixtures come from the hydra `data` group (`vla.data.config.DataConfig`):

    data:
      data_root: /data/oxe        # holds <tfds_name>/<version>/ for every registered name
      datasets:
        - {name: bridge_orig, weight: 1.0}
        - {path: outputs/data/my_sim_data/1.0.0, weight: 2.0}   # any RLDSWriter output
    # or: data.mixture=oxe_magic_soup_plus_minus

`resolve_datasets(cfg.data.mixture or cfg.data.datasets, data_root=cfg.data.data_root)` turns either into
directories and specs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from vla.data.oxe.registry import DatasetSpec, get_dataset_spec, spec_for_directory

logger = logging.getLogger(__name__)

# Weights copied from OpenVLA's prismatic/vla/datasets/rlds/oxe/mixtures.py.
MIXTURES: dict[str, list[tuple[str, float]]] = {
    "bridge": [("bridge_orig", 1.0)],
    "bridge_rt_1": [("bridge_orig", 1.0), ("fractal20220817_data", 1.0)],
    # OpenVLA 7B's training mixture.
    "oxe_magic_soup_plus_minus": [
        ("fractal20220817_data", 1.0),
        ("kuka", 0.8341046294),
        ("bridge_orig", 1.0),
        ("taco_play", 2.0),
        ("jaco_play", 1.0),
        ("berkeley_cable_routing", 1.0),
        ("roboturk", 2.0),
        ("viola", 2.0),
        ("berkeley_autolab_ur5", 2.0),
        ("toto", 1.0),
        ("stanford_hydra_dataset_converted_externally_to_rlds", 2.0),
        ("austin_buds_dataset_converted_externally_to_rlds", 1.0),
        ("nyu_franka_play_dataset_converted_externally_to_rlds", 3.0),
        ("furniture_bench_dataset_converted_externally_to_rlds", 0.1),
        ("ucsd_kitchen_dataset_converted_externally_to_rlds", 2.0),
        ("austin_sailor_dataset_converted_externally_to_rlds", 1.0),
        ("austin_sirius_dataset_converted_externally_to_rlds", 1.0),
        ("dlr_edan_shared_control_converted_externally_to_rlds", 1.0),
        ("iamlab_cmu_pickup_insert_converted_externally_to_rlds", 1.0),
        ("utaustin_mutex", 1.0),
        ("berkeley_fanuc_manipulation", 2.0),
        ("cmu_stretch", 1.0),
        ("bc_z", 0.2),
        ("fmb_dataset", 1.0),
        ("dobbe", 0.2),
    ],
    "droid": [("droid", 1.0)],
    "libero_spatial_no_noops": [("libero_spatial_no_noops", 1.0)],
    "libero_object_no_noops": [("libero_object_no_noops", 1.0)],
    "libero_goal_no_noops": [("libero_goal_no_noops", 1.0)],
    "libero_10_no_noops": [("libero_10_no_noops", 1.0)],
    "libero_mix": [
        ("libero_spatial_no_noops", 1.0),
        ("libero_object_no_noops", 1.0),
        ("libero_goal_no_noops", 1.0),
        ("libero_10_no_noops", 1.0),
    ],
}


def resolve_mixture(mixture: str | Sequence[Any], *, check_registered: bool = True) -> list[tuple[str, float]]:
    """A mixture name, a dataset name, or a list of (name, weight) / {name, weight} -> [(name, weight)].

    With check_registered, every name must be a registered end-effector-delta dataset (entries that come
    with a `path` are looked up by directory instead, see `MixtureConfig`).
    """
    if isinstance(mixture, str):
        if mixture in MIXTURES:
            entries = list(MIXTURES[mixture])
        else:
            try:
                get_dataset_spec(mixture)
            except KeyError:
                import difflib

                close = difflib.get_close_matches(mixture, list(MIXTURES), n=5, cutoff=0.5)
                raise KeyError(
                    f"{mixture!r} is neither a named mixture nor a registered dataset; "
                    f"mixtures: {sorted(MIXTURES)}" + (f"; did you mean {close}?" if close else "")
                ) from None
            entries = [(mixture, 1.0)]
    else:
        entries = [_entry(e) for e in mixture]
    if not entries:
        raise ValueError("a mixture needs at least one dataset")
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for name, weight in entries:
        if weight < 0 or not np.isfinite(weight):
            raise ValueError(f"mixture weight for {name!r} must be a finite number >= 0, got {weight}")
        if name in seen:
            logger.warning("mixture lists %r twice; keeping its first weight (as the reference does)", name)
            continue
        seen.add(name)
        if check_registered:
            get_dataset_spec(name)
        out.append((name, float(weight)))
    return out


def _entry(e: Any) -> tuple[str, float]:
    if isinstance(e, Mapping) or hasattr(e, "keys"):
        if "name" not in e:
            raise ValueError(f"a mixture entry needs a 'name' (and optionally 'weight'), got {dict(e)}")
        return str(e["name"]), float(e.get("weight", 1.0))
    if hasattr(e, "name") and hasattr(e, "weight"):  # e.g. vla.data.config.DatasetEntry
        return str(e.name), float(e.weight)
    if isinstance(e, str):
        return e, 1.0
    try:
        name, weight = e
    except (TypeError, ValueError):
        raise ValueError(f"a mixture entry must be a name, (name, weight) or {{name, weight}}, got {e!r}") from None
    return str(name), float(weight)


def sampling_weights(mixture: Sequence[tuple[str, float]], num_transitions: Mapping[str, int]) -> np.ndarray:
    """Per-dataset sampling probabilities: weight * num_transitions, normalized to sum to 1 (as the reference)."""
    missing = [n for n, _ in mixture if n not in num_transitions]
    if missing:
        raise KeyError(f"no transition count for {missing}; compute their statistics first (get_dataset_statistics)")
    w = np.array([weight * float(num_transitions[name]) for name, weight in mixture], dtype=np.float64)
    if w.sum() <= 0:
        raise ValueError(f"mixture weights x transitions sum to zero: {dict(zip([n for n, _ in mixture], w))}")
    return w / w.sum()


@dataclass(frozen=True)
class ResolvedDataset:
    """One dataset of a mixture, ready for the loader: its weight, directory and spec."""

    name: str
    weight: float
    dataset_dir: Path
    spec: DatasetSpec


def resolve_datasets(
    datasets: str | Sequence[Any], *, data_root: str | os.PathLike = "data"
) -> list[ResolvedDataset]:
    """A named mixture / dataset name, or hydra entries `{name?, path?, weight}`, -> datasets with dirs and specs.

    An entry with a `path` is read from that directory, with the spec of `name` when given, else of the
    dataset's own name, else (any `RLDSWriter` output) the generic `vla_episodes` spec under its name.
    An entry with only a `name` lives in `<data_root>/<tfds_name>/<version>`. Accepts the entries of
    `vla.data.config.DataConfig.datasets` (objects with `name`/`path`/`weight`) or plain dicts.
    """
    if isinstance(datasets, str):
        entries = [(name, weight, None) for name, weight in resolve_mixture(datasets)]
    else:
        entries = [_entry_with_path(e) for e in datasets]
    if not entries:
        raise ValueError("a mixture needs at least one dataset")
    by_name = [(n, w) for n, w, p in entries if p is None]
    if by_name:
        resolve_mixture(by_name)  # validates names (close-name suggestions), weights and encodings
    out: list[ResolvedDataset] = []
    for name, weight, path in entries:
        if path is not None:
            dataset_dir = Path(os.path.expanduser(os.fspath(path)))
            spec = spec_for_directory(dataset_dir, name)
        else:
            spec = get_dataset_spec(name)
            dataset_dir = spec.find_dir(os.path.expanduser(os.fspath(data_root)))
        if any(r.spec.name == spec.name for r in out):
            raise ValueError(f"dataset {spec.name!r} appears twice in the mixture; statistics are keyed by name, "
                             "so give each entry its own name")
        out.append(ResolvedDataset(name=spec.name, weight=float(weight), dataset_dir=dataset_dir, spec=spec))
    return out


def _entry_with_path(e: Any) -> tuple[str | None, float, str | None]:
    if isinstance(e, (str, tuple, list)):
        name, weight = _entry(e)
        return name, weight, None
    get = e.get if isinstance(e, Mapping) or hasattr(e, "keys") else (lambda k, d=None: getattr(e, k, d))
    name, path, weight = get("name", None), get("path", None), get("weight", 1.0)
    if name is None and path is None:
        raise ValueError(f"a mixture entry needs a `name` (registered dataset) or a `path`, got {e!r}")
    weight = 1.0 if weight is None else float(weight)
    if weight < 0 or not np.isfinite(weight):
        raise ValueError(f"mixture weight for {name or path!r} must be a finite number >= 0, got {weight}")
    return name, weight, path
