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
    DatasetSpec,
    UnsupportedActionEncodingError,
    get_dataset_spec,
    list_datasets,
    nonzero_motion_mask,
    register_dataset,
    spec_for_directory,
)
from vla.data.oxe.transforms import TRANSFORMS, register_transform

_register_all()

__all__ = [
    "ACTION_ENCODINGS",
    "DatasetSpec",
    "MIXTURES",
    "ResolvedDataset",
    "TRANSFORMS",
    "UnsupportedActionEncodingError",
    "get_dataset_spec",
    "list_datasets",
    "nonzero_motion_mask",
    "register_dataset",
    "register_transform",
    "resolve_datasets",
    "resolve_mixture",
    "sampling_weights",
    "spec_for_directory",
]
