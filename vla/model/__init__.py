"""The OpenVLA-style model: config, modeling, processor, action tokenizer, presets, import, policy.

Light to import: the heavy modules (torch, transformers) load on first use of a name below.

    from vla.model import VLAPolicy, build_model, import_openvla
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "VLAConfig": "vla.model.configuration_vla",
    "VLAForActionPrediction": "vla.model.modeling_vla",
    "VLAProcessor": "vla.model.processing_vla",
    "VLAImageProcessor": "vla.model.image_processing",
    "ActionTokenizer": "vla.model.action_tokenizer",
    "ModelConfig": "vla.model.schema",
    "build_model": "vla.model.presets",
    "build_preset": "vla.model.presets",
    "import_openvla": "vla.model.convert_openvla",
    "CheckpointMismatchError": "vla.model.convert_openvla",
    "VLAPolicy": "vla.model.policy",
    "load_checkpoint": "vla.model.policy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vla.model' has no attribute {name!r}")
