"""Task success judged from a (predicted) state alone: the latent tokens of every camera and the proprio.

The dynamics' own success output reads the transformer's features of the step, which include the action
token: trained on demonstrations where every lift-with-closed-gripper action is followed by success, it
learned "this action succeeds" rather than "this state is solved", and in the demo it fired for a random
policy at the first step, 20 cm above the table with open fingers (docs/world_model.md). This head sees
only the predicted next state, detached from the dynamics (the success loss does not shape the dynamics'
predictions), so imagination declares success when what it imagines looks solved, as a sim episode
terminates on the state of the scene. Selected with `world_model.success_head=state`.

`lowdim` reads the proprio and the predicted objects' state; `objects` the objects' state alone: the robot's
pose then cannot stand in for the outcome (with demonstrations that end on success, "the gripper is high"
predicts success as well as "the named cube is high", and a random policy's arm gets high too).
"""

from __future__ import annotations

import torch
from torch import nn


class StateSuccessHead(nn.Module):
    """(latents (..., N, D), proprio (..., P)) -> success logit (...).

    With `num_tokens=0` (`success_head=lowdim`) it reads the proprio alone, which then includes the predicted
    object state (`state_features`): success judged from where the model says the objects are, the quantity
    the task's own success check reads, instead of from pixels' latents."""

    def __init__(self, num_tokens: int, token_dim: int, proprio_dim: int, hidden: int = 256, start: int = 0):
        super().__init__()
        self.use_latents = num_tokens > 0
        self.start = int(start)  # the proprio entries it reads: [start:] (`objects`: the state features)
        self.net = nn.Sequential(nn.Linear(num_tokens * token_dim + proprio_dim, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, latents: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        proprio = proprio[..., self.start:]
        x = torch.cat([latents.flatten(-2), proprio], -1) if self.use_latents else proprio
        return self.net(x)[..., 0]
