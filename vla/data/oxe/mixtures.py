"""Dataset mixtures: named ones (OpenVLA's weights) and user-defined ones from hydra config.

A mixture is a list of (dataset name, weight). As in the reference (`make_interleaved_dataset` with
`balance_weights=True`), a dataset is sampled with probability proportional to
`weight * num_transitions`, so the weights are relative per-transition rates, not dataset shares.
A dataset listed twice keeps its first weight (the reference skips duplicates too).

Unlike the reference, which logs and skips a dataset whose action encoding is not end-effector delta,
resolving a mixture fails on it: a silently smaller mixture is a different experiment.

User-defined mixtures (hydra, `configs/mixture/*.yaml`):

    name: null                  # or a key of MIXTURES
    data_root: /data/oxe        # holds <tfds_name>/<version>/ for every dataset
    datasets:
      - {name: bridge_orig, weight: 1.0}
      - {name: my_sim_data, weight: 2.0, path: outputs/data/my_sim_data/1.0.0}   # any RLDSWriter output
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

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
    if isinstance(e, MixtureEntry):
        return e.name, float(e.weight)
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


@dataclass
class MixtureEntry:
    """One dataset of a user-defined mixture. `path` overrides `<data_root>/<tfds_name>/<version>`."""

    name: str = "???"
    weight: float = 1.0
    path: Optional[str] = None


@dataclass
class ResolvedDataset:
    name: str
    weight: float
    dataset_dir: Path
    spec: DatasetSpec


@dataclass
class MixtureConfig:
    """Hydra schema of the `mixture` config group: a named mixture or an explicit dataset list."""

    name: Optional[str] = None
    data_root: str = "data"
    datasets: list[MixtureEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.name is None and not self.datasets:
            raise ValueError("a mixture config needs `name` (one of MIXTURES) or a non-empty `datasets` list")
        if self.name is not None and self.datasets:
            raise ValueError("a mixture config takes `name` or `datasets`, not both")

    @classmethod
    def from_config(cls, cfg: Any) -> "MixtureConfig":
        """From a hydra/OmegaConf node or a plain dict, with type checks (a typo'd key is an error)."""
        from omegaconf import OmegaConf

        plain = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
        d = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(cls), plain), resolve=True)
        return cls(name=d["name"], data_root=d["data_root"], datasets=[MixtureEntry(**e) for e in d["datasets"]])

    def resolve(self) -> list[ResolvedDataset]:
        """Each dataset with its directory and spec (directories must exist)."""
        if self.name is not None:
            pairs = [(n, w, None) for n, w in resolve_mixture(self.name)]
        else:
            pairs = [(e.name, e.weight, e.path) for e in self.datasets]
            by_name = [(n, w) for n, w, p in pairs if p is None]
            if by_name:
                resolve_mixture(by_name)  # validates registered names and weights
        out = []
        for name, weight, path in pairs:
            if path is not None:
                dataset_dir = Path(os.path.expanduser(path))
                spec = spec_for_directory(dataset_dir, name)
            else:
                spec = get_dataset_spec(name)
                dataset_dir = spec.find_dir(os.path.expanduser(self.data_root))
            out.append(ResolvedDataset(name=name, weight=float(weight), dataset_dir=dataset_dir, spec=spec))
        return out
