"""The world model's training losses: pixel reconstruction (phase 1) and latent dynamics (phase 2).

`reconstruction_loss` also trains the decoders of `world_model.encoder_study`; `dynamics_loss` is scored on
window batches of `world_model.data.sample_windows`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from world_model.model import WorldModel


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, foreground_weight: float = 4.0) -> torch.Tensor:
    """Pixel MSE with pixels that differ from the frame's median colour (robot, objects) weighted up.

    Small moving objects cover a few percent of a frame; with plain MSE the decoder learns the background
    first and blurs them away, yet they are what a policy acting on imagined frames must see.
    """
    median = target.flatten(2).median(-1).values[..., None, None]  # (B, 3, 1, 1)
    fg = ((target - median).abs().amax(1, keepdim=True) > 0.08).float()  # (B, 1, H, W)
    w = 1.0 + foreground_weight * fg
    return (w * (pred - target) ** 2).mean() / w.mean()


def dynamics_loss(model: WorldModel, batch: dict[str, np.ndarray], *, rollout_steps: int, context_noise: float,
                  rollout_weight: float = 1.0, proprio_weight: float = 1.0, success_weight: float = 0.5,
                  pos_weight: float = 10.0, rollout_heads: bool = False,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """Teacher-forced + autoregressive-rollout loss on a window batch from `sample_windows`.

    With `rollout_heads`, the rollout steps also score the predicted proprio and the success logit (not only
    the latents): in imagination both are read from the model's own, drifting predictions, so they are
    trained there too."""
    h = model.config.history
    z = torch.from_numpy(batch["latents"]).float()  # (B, L+1, N, D)
    p = torch.from_numpy(batch["proprio"]).float()  # (B, L+1, P)
    a = torch.from_numpy(batch["action"]).float()  # (B, L+1, 7)
    s = torch.from_numpy(batch["success"]).float()  # (B, L+1)
    valid = torch.from_numpy(batch["valid"])  # (B, L+1)
    ctx_z = z[:, :h]
    if context_noise > 0:
        ctx_z = ctx_z + context_noise * torch.randn(ctx_z.shape, generator=generator)
    out = model.dynamics(ctx_z, p[:, :h], a[:, :h])
    tgt_valid = valid[:, 1 : h + 1].float()  # target of position i is i+1
    cur_valid = valid[:, :h].float()
    denom = tgt_valid.sum().clamp(min=1)
    tf = (((out["latents"] - z[:, 1 : h + 1]) ** 2).mean((-1, -2)) * tgt_valid).sum() / denom
    pp = (((out["proprio"] - p[:, 1 : h + 1]) ** 2).mean(-1) * tgt_valid).sum() / denom if p.shape[-1] else z.new_zeros(())
    bce = F.binary_cross_entropy_with_logits(out["success_logit"], s[:, :h], pos_weight=torch.tensor(pos_weight),
                                             reduction="none")
    sl = (bce * cur_valid).sum() / cur_valid.sum().clamp(min=1)
    rl = (((out["reward"] - s[:, :h]) ** 2) * cur_valid).sum() / cur_valid.sum().clamp(min=1)
    # Rollout: feed predictions back, `rollout_steps` times, and score each new step.
    roll = roll_p = roll_s = z.new_zeros(())
    zs = list(ctx_z.unbind(1)) + [out["latents"][:, -1]]  # steps 0..h, the last one predicted
    ps = list(p[:, :h].unbind(1)) + [out["proprio"][:, -1]]
    for r in range(1, rollout_steps + 1):
        o = model.dynamics(torch.stack(zs[-h:], 1), torch.stack(ps[-h:], 1), a[:, r : r + h], last_only=True)
        m = valid[:, r + h].float()
        d = m.sum().clamp(min=1)
        roll = roll + (((o["latents"][:, -1] - z[:, r + h]) ** 2).mean((-1, -2)) * m).sum() / d
        if rollout_heads:
            if p.shape[-1]:
                roll_p = roll_p + (((o["proprio"][:, -1] - p[:, r + h]) ** 2).mean(-1) * m).sum() / d
            # The logit of step r+h-1's action: solved after it (as `sl` above, on a predicted state).
            mc = valid[:, r + h - 1].float()
            b = F.binary_cross_entropy_with_logits(o["success_logit"][:, -1], s[:, r + h - 1],
                                                   pos_weight=torch.tensor(pos_weight), reduction="none")
            roll_s = roll_s + (b * mc).sum() / mc.sum().clamp(min=1)
        zs.append(o["latents"][:, -1])
        ps.append(o["proprio"][:, -1])
    n = max(rollout_steps, 1)
    roll, roll_p, roll_s = roll / n, roll_p / n, roll_s / n
    loss = (tf + rollout_weight * (roll + proprio_weight * roll_p + success_weight * roll_s) + proprio_weight * pp
            + success_weight * (sl + rl))
    return loss, {"tf": tf.item(), "rollout": roll.item(), "proprio": pp.item(), "success": sl.item(), "reward": rl.item(),
                  "rollout_proprio": roll_p.item(), "rollout_success": roll_s.item()}
