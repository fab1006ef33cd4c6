"""OpenVLA-style vision-language-action models: contracts, data, model, training and inference.

`import vla` is cheap: it pulls in numpy only. Heavy dependencies (torch, transformers, tensorflow) are
imported by the submodules that need them, and `vla` never imports `sim_envs`, `world_model` or
`robot_bridge`.
"""

from vla.core.types import (
    ACTION_DIM,
    Action,
    ContractError,
    Observation,
    Policy,
    validate_action,
)
from vla.core.statistics import ArrayStatistics, DatasetStatistics

__all__ = [
    "ACTION_DIM",
    "Action",
    "ArrayStatistics",
    "ContractError",
    "DatasetStatistics",
    "Observation",
    "Policy",
    "validate_action",
]
__version__ = "0.1.0"
