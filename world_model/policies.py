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


class AutoencodedView(Policy):
    """`policy` seeing every camera frame through `model`'s autoencoder (encode -> decode, no dynamics).

    Run in the sim, it measures the decoder ceiling of a closed-loop comparison: where its success matches the
    policy's own, the frames the model draws are good enough for that policy, and any gap between imagined and
    sim success comes from the dynamics."""

    def __init__(self, model, policy: Policy) -> None:
        self.model, self.policy = model, policy
        self.chunk_size = getattr(policy, "chunk_size", 1)
        self.cameras = getattr(policy, "cameras", None)

    def reset(self, instruction: str) -> None:
        self.policy.reset(instruction)

    def act(self, observation) -> np.ndarray:
        import torch

        from vla.core.types import Observation
        from world_model.model import to_model_frames

        m = self.model
        tokens = m.encode(to_model_frames({c: observation.images[c] for c in m.cameras}, m.config.image_size))
        prop = np.asarray(observation.proprio, np.float32)[None]
        if m.feature_dims:  # a proprio-conditioned decoder of a model with state features: pad them (unused)
            prop = np.concatenate([prop, np.zeros((1, m.proprio_dim - prop.shape[1]), np.float32)], 1)
        imgs = m.decode(tokens, size=m.source_image_size, proprio=torch.from_numpy(m.norm_proprio(prop)))
        images = {**observation.images, **{c: imgs[c][0] for c in m.cameras}}
        return self.policy.act(Observation(images=images, proprio=observation.proprio,
                                           instruction=observation.instruction))
