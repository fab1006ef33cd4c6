"""Open X-Embodiment registry: dataset specs, per-dataset standardization, mixtures.

    from vla.data.oxe import get_dataset_spec, resolve_mixture
    spec = get_dataset_spec("bridge_orig")          # KeyError with close names when unknown
    std = spec.standardize(raw_episode)            # {"images", "proprio", "action" (T,7), "instruction", ...}
    resolve_mixture("oxe_magic_soup_plus_minus")   # [(dataset_name, weight), ...]

See docs/oxe.md for pointing the registry at local copies and adding datasets and mixtures.
"""

from vla.data.oxe.configs import register_all as _register_all
from vla.data.oxe.mixtures import MIXTURES, ResolvedDataset, resolve_datasets, resolve_mixture, sampling_weights
from vla.data.oxe.registry import (
    ACTION_ENCODINGS,
    DROID_FILTER_Q01,
    DROID_FILTER_Q99,
    ZERO_ACTION_FILTERS,
    DatasetSpec,
    UnsupportedActionEncodingError,
    get_dataset_spec,
    list_datasets,
    motionless_actions,
    register_dataset,
    spec_for_directory,
    steps_with_motion,
)
from vla.data.oxe.transforms import TRANSFORMS, register_transform

_register_all()

__all__ = [
    "ACTION_ENCODINGS",
    "DROID_FILTER_Q01",
    "DROID_FILTER_Q99",
    "DatasetSpec",
    "MIXTURES",
    "ResolvedDataset",
    "TRANSFORMS",
    "UnsupportedActionEncodingError",
    "get_dataset_spec",
    "list_datasets",
    "ZERO_ACTION_FILTERS",
    "motionless_actions",
    "register_dataset",
    "register_transform",
    "resolve_datasets",
    "resolve_mixture",
    "sampling_weights",
    "spec_for_directory",
    "steps_with_motion",
]
