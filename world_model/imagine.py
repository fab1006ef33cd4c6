"""Imagined rollouts: a `vla.Policy` acting inside the world model exactly as it would in sim.

At every step the policy receives a `vla.Observation` built from the model's decoded frames (resized to
the image size of the training data, i.e. what the sim would render) and its predicted proprio; its
action (or chunk, executed open-loop like the sim runner does) advances the latent state. The rollout
stops when the success head fires (like a sim episode terminating on success) or at `horizon`.

Example:
    wm = WorldModel.load("outputs/wm")
    traj = imagine(wm, policy, obs0, "put the red square on the green target", horizon=30)
    traj.success, traj.frames["primary"].shape   # bool, (T + 1, H, W, 3)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from vla.core.types import ContractError, Observation, Policy
from vla.policy import ActionQueue
from world_model.data import WMEpisode, window_indices
from world_model.model import RolloutState, WorldModel, to_model_frames

logger = logging.getLogger(__name__)


class PolicyError(RuntimeError):
    """The policy failed while acting inside the world model (the original error is chained)."""


@dataclass
class ImaginedTrajectory:
    frames: dict[str, np.ndarray]  # camera -> uint8 (T + 1, H, W, 3); index 0 is the start frame
    proprio: np.ndarray  # (T + 1, P) raw units
    actions: np.ndarray  # (T, 7)
    success_prob: np.ndarray  # (T,) after each action
    reward: np.ndarray  # (T,)
    success: bool
    success_step: int  # first step whose success prob crossed the threshold (-1: none)
    latents: np.ndarray  # (T + 1, N, D) normalized
    warnings: list[str] = field(default_factory=list)
    # (T,) each action within the range of the training actions (`WorldModel.actions_in_range`); after one
    # outside it the imagined outcome is extrapolation.
    action_in_range: np.ndarray | None = None

    @property
    def out_of_range_fraction(self) -> float:
        return 0.0 if self.action_in_range is None or not len(self.action_in_range) else float(1 - self.action_in_range.mean())

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def state_from_observation(model: WorldModel, observation: Observation) -> RolloutState:
    """A context for the first step of an episode: the observation, repeated over the history."""
    missing = [c for c in model.cameras if c not in observation.images]
    if missing:
        raise ContractError(f"observation lacks cameras {missing}; the world model was trained on {model.cameras}")
    size = tuple(observation.images[model.cameras[0]].shape[:2])
    if size != model.source_image_size:
        raise ContractError(
            f"observation images are {size}, the world model was trained on {model.source_image_size} images; "
            "render at that size or retrain the model"
        )
    if observation.proprio.shape[0] != model.proprio_dim:
        raise ContractError(f"observation proprio has {observation.proprio.shape[0]} dims, the model expects {model.proprio_dim}")
    frames = to_model_frames({c: observation.images[c] for c in model.cameras}, model.config.image_size)
    z = model.encode(frames)  # (1, N, D)
    h = model.config.history
    p = torch.from_numpy(model.norm_proprio(observation.proprio[None]))  # (1, P)
    return RolloutState(latents=z[None].repeat(1, h, 1, 1), proprio=p[None].repeat(1, h, 1),
                        action=torch.zeros(1, h, 7), pad=h - 1)


def _start(model: WorldModel, start, instruction: str):
    """(state, first Observation) for an Observation, an (episode, step) pair or an episode (step 0)."""
    if isinstance(start, Observation):
        return state_from_observation(model, start), start
    ep, t = (start, 0) if isinstance(start, WMEpisode) else start
    if not isinstance(ep, WMEpisode):
        raise TypeError(f"start must be an Observation, a WMEpisode or (WMEpisode, step), got {type(start).__name__}")
    h = model.config.history
    if len(ep) < 1:
        raise ValueError(f"episode {ep.metadata.episode_id!r} is empty")
    if t >= len(ep):
        raise ValueError(
            f"start step {t} is beyond episode {ep.metadata.episode_id!r} ({len(ep)} steps); choose a step < {len(ep)}"
        )
    if len(ep) < h and t > 0:
        logger.warning("episode %s has %d steps, fewer than the history %d: the context repeats step 0",
                       ep.metadata.episode_id, len(ep), h)
    state = model.start_state(ep, t)
    size = model.source_image_size
    imgs = model.decode(state.latents[:, -1], size=size, proprio=state.proprio[:, -1])
    obs = Observation(images={c: imgs[c][0] for c in model.cameras}, proprio=ep.proprio[t], instruction=instruction)
    return state, obs


def fast_step(model: WorldModel, size: tuple[int, int]):
    """The model's `FastStep` for frames of `size`, built once per model and rebuilt when its weights change."""
    from world_model.fast_step import FastStep

    key = (tuple(size), sum(p._version for p in model.parameters()))
    cache = model.__dict__.setdefault("_fast_steps", {})
    if key not in cache:
        cache.clear()
        cache[key] = FastStep(model, size=tuple(size))
    return cache[key]


def _ask(policy: Policy, obs: Observation, queue: ActionQueue, t: int) -> None:
    """Queue the policy's next action or chunk; any failure becomes a `PolicyError` naming the imagined step."""
    try:
        queue.push(policy.act(obs), name=f"{type(policy).__name__} action at imagined step {t}")
    except ContractError as e:
        raise PolicyError(str(e)) from e
    except Exception as e:  # noqa: BLE001 - any policy failure is reported with context
        raise PolicyError(f"policy {type(policy).__name__} raised {type(e).__name__} at imagined step {t}: {e}") from e


def imagine(model: WorldModel, policy: Policy, start, instruction: str, horizon: int, *,
            success_threshold: float = 0.5, stop_on_success: bool = True, fast: bool = True) -> ImaginedTrajectory:
    """Roll `policy` out for up to `horizon` steps inside `model` from `start`.

    Args:
        start: a `vla.Observation` (e.g. the sim's first observation), a `WMEpisode` (its step 0) or
            `(WMEpisode, t)` (the history up to step t comes from the episode).
    Returns an `ImaginedTrajectory`; `warnings` says when the horizon exceeds the training episodes.
    Raises `PolicyError` naming the step when the policy raises or returns an invalid action.
    `fast` runs each step through `world_model.fast_step.FastStep` (same result up to float rounding).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    warnings = []
    if model.max_episode_length and horizon > model.max_episode_length:
        msg = (f"horizon {horizon} is longer than the longest training episode ({model.max_episode_length} steps): "
               "predictions past it are extrapolation")
        warnings.append(msg)
        logger.warning(msg)
    state, obs = _start(model, start, instruction)
    size = model.source_image_size
    frames = {c: [obs.images[c]] for c in model.cameras}
    proprio, actions, probs, rewards, latents = [obs.proprio], [], [], [], [state.latents[0, -1].numpy()]
    try:
        policy.reset(instruction)
    except Exception as e:  # noqa: BLE001 - any policy failure is reported with context
        raise PolicyError(f"policy {type(policy).__name__}.reset raised {type(e).__name__}: {e}") from e
    queue = ActionQueue()  # chunks execute open-loop, as in the sim runner
    success_step = -1
    stepper = fast_step(model, size) if fast else None
    for t in range(horizon):
        if queue.empty:
            _ask(policy, obs, queue, t)
        a = queue.pop()
        if stepper is not None:
            state, out, imgs = stepper(state, a[None])
        else:
            state, out = model.step(state, a[None])
            imgs = model.decode(out.latents, size=size, proprio=out.norm_proprio)
        for c in model.cameras:
            frames[c].append(imgs[c][0])
        p = out.proprio[0]
        actions.append(a)
        probs.append(float(out.success_prob[0]))
        rewards.append(float(out.reward[0]))
        proprio.append(p)
        latents.append(out.latents[0].numpy())
        if probs[-1] >= success_threshold and success_step < 0:
            success_step = t
            if stop_on_success:
                break
        obs = Observation(images={c: imgs[c][0] for c in model.cameras}, proprio=p, instruction=instruction)
    in_range = model.actions_in_range(np.stack(actions))
    if not in_range.all():
        warnings.append(f"{int((~in_range).sum())} of {len(in_range)} actions (first at step {int(np.argmin(in_range))}) lie "
                        "outside the range of the actions the model was trained on: what it imagines after them is "
                        "extrapolation")
    return ImaginedTrajectory(
        frames={c: np.stack(v) for c, v in frames.items()}, proprio=np.stack(proprio).astype(np.float32),
        actions=np.stack(actions), success_prob=np.asarray(probs, np.float32), reward=np.asarray(rewards, np.float32),
        success=success_step >= 0, success_step=success_step, latents=np.stack(latents), warnings=warnings,
        action_in_range=in_range,
    )


@torch.no_grad()
def open_loop(model: WorldModel, episodes: list[WMEpisode], starts: list[tuple[int, int]], horizon: int,
              *, shuffle_actions: bool = False, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Predict `horizon` steps from each (episode index, start step) with the episode's recorded actions.

    Returns pred (S, horizon, N, D), pred_proprio (S, horizon, P) (normalized), success_logit (S, horizon)
    (after each action), true (S, horizon, N, D), true_proprio (S, horizon, P), last (S, N, D) (the start
    latent, for the copy-last baseline) and valid (S, horizon). With `shuffle_actions`, each rollout gets the actions of
    another, randomly chosen rollout in the batch (the action-shuffle test).
    """
    model.prepare([episodes[i] for i in sorted({ei for ei, _ in starts})])  # this model's latents (cached)
    h = model.config.history
    zs, ps, acts, trues, true_ps, valid = [], [], [], [], [], []
    for ei, t0 in starts:
        ep = episodes[ei]
        idx = window_indices(len(ep), t0 - h + 1, h + horizon)
        zs.append(ep.latents[idx[:h]])
        ps.append(ep.norm_proprio[idx[:h]])
        acts.append(ep.norm_action[idx])
        target = window_indices(len(ep), t0 + 1, horizon)
        trues.append(ep.latents[target])
        true_ps.append(ep.norm_proprio[target])
        valid.append(np.arange(t0 + 1, t0 + horizon + 1) <= len(ep) - 1)
    acts = np.stack(acts)  # (S, h + horizon, 7)
    if shuffle_actions:
        rng = rng or np.random.default_rng(0)
        perm = rng.permutation(len(starts))
        if len(starts) > 1:
            while np.any(perm == np.arange(len(starts))):
                perm = rng.permutation(len(starts))
        acts = acts.copy()
        acts[:, h - 1 :] = acts[perm, h - 1 :]
    z = torch.from_numpy(np.stack(zs)).float()
    p = torch.from_numpy(np.stack(ps)).float()
    a = torch.from_numpy(acts).float()
    zl, pl, preds, pred_ps, logits = list(z.unbind(1)), list(p.unbind(1)), [], [], []
    for r in range(horizon):
        o = model.dynamics(torch.stack(zl[-h:], 1), torch.stack(pl[-h:], 1), a[:, r : r + h], last_only=True)
        zl.append(o["latents"][:, -1])
        pl.append(o["proprio"][:, -1])
        preds.append(zl[-1])
        pred_ps.append(pl[-1])
        logits.append(o["success_logit"][:, -1])
    return {"pred": torch.stack(preds, 1).numpy(), "pred_proprio": torch.stack(pred_ps, 1).numpy(),
            "success_logit": torch.stack(logits, 1).numpy(),
            "true": np.stack(trues), "true_proprio": np.stack(true_ps), "last": np.stack(zs)[:, -1],
            "valid": np.stack(valid)}
