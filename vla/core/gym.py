"""The gym observation layout: the env-side twin of `vla.Observation`, and its one converter.

Every gymnasium env that a `Policy` acts in (the MuJoCo tasks of `sim_envs`, SquareWorld of `world_model`,
the learned simulator's own env) returns observations in this layout:

- `obs`: a dict `{camera_name: uint8 (H, W, 3), ..., "proprio": float32 (P,)}`; camera names are the
  contract's (`primary`, optional `wrist`), `proprio` may be absent for robots that expose no state;
- `info["instruction"]`: the episode's natural-language instruction (str); envs put it in the `info` of
  `reset` and of every `step`.

`observation_from_gym` is the only place that turns this into an `Observation`; callers never build one
from an env dict by hand, so a change of layout has one home.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from vla.core.types import ContractError, Observation

#: Key of the proprio vector in a gym observation dict (every other key is a camera).
PROPRIO_KEY = "proprio"
#: Key of the instruction in a gym `info` dict.
INSTRUCTION_KEY = "instruction"


def observation_from_gym(
    obs: Mapping[str, Any],
    info: Mapping[str, Any] | None = None,
    *,
    cameras: Sequence[str] | None = None,
    instruction: str | None = None,
    timestamp: float = 0.0,
) -> Observation:
    """`Observation` from a gym observation dict and its `info`.

    Args:
        obs: `{camera: HxWx3 uint8, "proprio": (P,)}`.
        info: the step's info; its `instruction` is used unless `instruction` is given.
        cameras: keep only these cameras (None: every key except `proprio`); a camera missing from `obs`
            raises `ContractError` naming what the env has.
        instruction: overrides / completes `info["instruction"]` (e.g. the instruction the episode was reset with).
        timestamp: seconds, for watchdogs and recorders.
    """
    if not isinstance(obs, Mapping):
        raise ContractError(f"a gym observation must be a dict camera -> image plus 'proprio', got {type(obs).__name__}")
    if cameras is None:
        images = {k: v for k, v in obs.items() if k != PROPRIO_KEY}
    else:
        missing = [c for c in cameras if c not in obs]
        if missing:
            raise ContractError(f"the env observation has no camera {missing}; it has {sorted(k for k in obs if k != PROPRIO_KEY)}")
        images = {c: obs[c] for c in cameras}
    if instruction is None:
        instruction = str((info or {}).get(INSTRUCTION_KEY, ""))
    proprio = obs.get(PROPRIO_KEY, np.zeros(0, np.float32))
    return Observation(images=dict(images), proprio=proprio, instruction=instruction, timestamp=float(timestamp))
