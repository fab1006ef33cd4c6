"""world_model's policy kind for the shared spec grammar, and the context its commands build policies with.

The grammar and the other kinds are `vla.policy`'s (`vla.policy.registry`); this module adds

    servo[:gain=0.6,bias=0.0]    SquareWorld's pixel-based visual servo (`world_model.toy.VisualServoPolicy`)

so `wm-eval policies=[servo,'servo:gain=0.5,noise=0.02',random,noop]` and `wm-viz policy=servo` read like
every other command's specs. Importing `world_model` registers it (the package `__init__` imports this module).
"""

from __future__ import annotations

import numpy as np

from vla.core.types import Policy
from vla.policy import PolicyContext, PolicyOptions, register_policy

#: (low, high) of `random` without `scale=`: +-0.05 m translation, no rotation. wm-eval reaches its env only
#: through a gymnasium id, so it cannot ask a task for its bounds; these are SquareWorld's action range.
RANDOM_BOUNDS = (np.array([-0.05] * 3 + [0.0] * 3, np.float32), np.array([0.05] * 3 + [0.0] * 3, np.float32))


@register_policy("servo", options=("gain", "bias"),
                 summary="SquareWorld visual servo acting from pixels (world_model.toy); gain scales its approach "
                         "speed, bias adds a constant drift (m per step)")
def _servo(opts: PolicyOptions, ctx: PolicyContext) -> Policy:
    from world_model.toy import VisualServoPolicy  # gymnasium only when a servo is asked for

    return VisualServoPolicy(gain=opts.float("gain", 0.6), bias=opts.float("bias", 0.0), seed=ctx.seed)


def policy_context(seed: int = 0) -> PolicyContext:
    """The context wm-eval, wm-viz and the benches build policies with (`random` gets `RANDOM_BOUNDS`)."""
    return PolicyContext(seed=seed, action_bounds=RANDOM_BOUNDS)
