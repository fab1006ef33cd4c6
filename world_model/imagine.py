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
from collections.abc import Sequence
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


def state_from_observation(model: WorldModel, observation: Observation,
                           features: dict[str, np.ndarray] | None = None) -> RolloutState:
    """A context for the first step of an episode: the observation, repeated over the history.

    `features`: the model's state features at that step (name -> values, e.g. the sim's `info["object_state"]`),
    required when the model has any (`WorldModel.feature_dims`)."""
    return states_from_observations(model, [observation], [features or {}])


def states_from_observations(model: WorldModel, observations: Sequence[Observation],
                             features: Sequence[dict] | None = None) -> RolloutState:
    """`state_from_observation` for a batch of first observations (one encoder batch)."""
    for observation in observations:
        missing = [c for c in model.cameras if c not in observation.images]
        if missing:
            raise ContractError(f"observation lacks cameras {missing}; the world model was trained on {model.cameras}")
        size = tuple(observation.images[model.cameras[0]].shape[:2])
        if size != model.source_image_size:
            raise ContractError(
                f"observation images are {size}, the world model was trained on {model.source_image_size} images; "
                "render at that size or retrain the model"
            )
        if observation.proprio.shape[0] != model.robot_proprio_dim:
            raise ContractError(f"observation proprio has {observation.proprio.shape[0]} dims, the model expects "
                                f"{model.robot_proprio_dim}")
    features = list(features) if features is not None else [{} for _ in observations]
    rows = []
    for obs, feats in zip(observations, features):
        parts = [np.asarray(obs.proprio, np.float32)]
        for name, dim in model.feature_dims.items():
            if name not in (feats or {}):
                raise ContractError(
                    f"this world model also predicts {name!r} ({dim} values), so its first state needs it: pass "
                    f"features={{{name!r}: ...}} (closed_loop reads the sim's info[{name!r}]); it has {sorted(feats or {})}")
            v = np.asarray(feats[name], np.float32).reshape(-1)
            if v.shape[0] != dim:
                raise ContractError(f"state feature {name!r} has {v.shape[0]} values, the model expects {dim}")
            parts.append(v)
        rows.append(np.concatenate(parts))
    frames = to_model_frames({c: np.stack([o.images[c] for o in observations]) for c in model.cameras},
                             model.config.image_size)
    z = model.encode(frames)  # (B, N, D)
    h = model.config.history
    p = torch.from_numpy(model.norm_proprio(np.stack(rows))).to(z.device)  # (B, P)
    return RolloutState(latents=z[:, None].repeat(1, h, 1, 1), proprio=p[:, None].repeat(1, h, 1),
                        action=torch.zeros(len(observations), h, 7, device=z.device), pad=h - 1)


def _start(model: WorldModel, start, instruction: str, features: dict | None = None):
    """(state, first Observation) for an Observation, an (episode, step) pair or an episode (step 0)."""
    if isinstance(start, Observation):
        return state_from_observation(model, start, features), start
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
    obs = Observation(images={c: imgs[c][0] for c in model.cameras}, proprio=ep.proprio[t, : model.robot_proprio_dim],
                      instruction=instruction)
    return state, obs


def fast_step(model: WorldModel, size: tuple[int, int]):
    """The model's `FastStep` for frames of `size` in its `imagination_precision`, built once per model and
    rebuilt when its weights or that precision change."""
    from world_model.fast_step import FastStep

    precision = getattr(model, "imagination_precision", "float32")
    key = (tuple(size), precision, sum(p._version for p in model.parameters()))
    cache = model.__dict__.setdefault("_fast_steps", {})
    if key not in cache:
        cache.clear()
        cache[key] = FastStep(model, size=tuple(size), precision=precision)
    return cache[key]


def imagine(model: WorldModel, policy: Policy, start, instruction: str, horizon: int, *,
            success_threshold: float = 0.5, stop_on_success: bool = True, fast: bool = True,
            features: dict[str, np.ndarray] | None = None) -> ImaginedTrajectory:
    """Roll `policy` out for up to `horizon` steps inside `model` from `start`.

    Args:
        start: a `vla.Observation` (e.g. the sim's first observation), a `WMEpisode` (its step 0) or
            `(WMEpisode, t)` (the history up to step t comes from the episode).
        features: with an Observation start, the model's state features at that step (`state_features`).
    Returns an `ImaginedTrajectory`; `warnings` says when the horizon exceeds the training episodes.
    Raises `PolicyError` naming the step when the policy raises or returns an invalid action.
    `fast` runs each step through `world_model.fast_step.FastStep` (same result up to float rounding).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    state, obs = _start(model, start, instruction, features)
    return rollout(model, policy, state, [obs], instruction, horizon, success_threshold=success_threshold,
                   stop_on_success=stop_on_success, fast=fast)[0]


def imagine_batch(model: WorldModel, policy: Policy, observations: Sequence[Observation], horizon: int, *,
                  features: Sequence[dict] | None = None, success_threshold: float = 0.5, fast: bool = True,
                  record: bool = True) -> list[ImaginedTrajectory]:
    """`imagine` from B first observations at once: one dynamics and decoder batch per step, one `act_batch`
    call of the policy per step. The instruction is each observation's own (`Observation.instruction`).
    Rows run to `horizon` (a row's success is its first step over the threshold), as a vectorized sim keeps
    stepping finished envs. `record=False` keeps no frames or latents (the ranking needs only the verdicts)."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if not observations:
        return []
    state = states_from_observations(model, observations, features)
    instructions = {o.instruction for o in observations}
    return rollout(model, policy, state, list(observations), instructions.pop() if len(instructions) == 1 else "",
                   horizon, success_threshold=success_threshold, stop_on_success=False, fast=fast, record=record)


def rollout(model: WorldModel, policy: Policy, state: RolloutState, first: list[Observation], instruction: str,
            horizon: int, *, success_threshold: float = 0.5, stop_on_success: bool = True, fast: bool = True,
            record: bool = True) -> list[ImaginedTrajectory]:
    """The imagination loop of `imagine` / `imagine_batch` over a batch of B contexts (`first`: each row's
    first observation). Chunks execute open-loop; `stop_on_success` (B = 1) ends at the first success."""
    b = len(first)
    warnings = []
    if model.max_episode_length and horizon > model.max_episode_length:
        msg = (f"horizon {horizon} is longer than the longest training episode ({model.max_episode_length} steps): "
               "predictions past it are extrapolation")
        warnings.append(msg)
        logger.warning(msg)
    size = model.source_image_size
    rp = model.robot_proprio_dim
    frames = {c: [np.stack([o.images[c] for o in first])] for c in model.cameras} if record else {}
    latents = [state.latents[:, -1].float().cpu().numpy()] if record else []
    proprio = [np.stack([np.concatenate([o.proprio, _features_of(model, state, i)]) for i, o in enumerate(first)])]
    actions, probs, rewards = [], [], []
    try:
        policy.reset(instruction)
    except Exception as e:  # noqa: BLE001 - any policy failure is reported with context
        raise PolicyError(f"policy {type(policy).__name__}.reset raised {type(e).__name__}: {e}") from e
    queues = [ActionQueue() for _ in range(b)]  # chunks execute open-loop, as in the sim runner
    success_step = np.full(b, -1)
    stepper = fast_step(model, size) if fast and model.device.type == "cpu" else None
    obs = list(first)
    for t in range(horizon):
        _ask_batch(policy, obs, queues, t)
        a = np.stack([q.pop() for q in queues]).astype(np.float32)
        if stepper is not None:
            state, out, imgs = stepper(state, a)
        else:
            state, out = model.step(state, a)
            imgs = model.decode(out.latents, size=size, proprio=out.norm_proprio)
        if record:
            for c in model.cameras:
                frames[c].append(imgs[c])
            latents.append(out.latents.float().cpu().numpy())
        actions.append(a)
        probs.append(out.success_prob.astype(np.float32))
        rewards.append(out.reward.astype(np.float32))
        proprio.append(out.proprio)
        newly = (probs[-1] >= success_threshold) & (success_step < 0)
        success_step[newly] = t
        if stop_on_success and np.all(success_step >= 0):
            break
        obs = [Observation(images={c: imgs[c][i] for c in model.cameras}, proprio=out.proprio[i, :rp],
                           instruction=first[i].instruction or instruction) for i in range(b)]
    acts, pr = np.stack(actions, 1), np.stack(proprio, 1).astype(np.float32)  # (B, T, 7), (B, T + 1, P)
    out_trajs = []
    for i in range(b):
        in_range = model.actions_in_range(acts[i])
        w = list(warnings)
        if not in_range.all():
            w.append(f"{int((~in_range).sum())} of {len(in_range)} actions (first at step {int(np.argmin(in_range))}) "
                     "lie outside the range of the actions the model was trained on: what it imagines after them is "
                     "extrapolation")
        out_trajs.append(ImaginedTrajectory(
            frames={c: np.stack([f[i] for f in v]) for c, v in frames.items()}, proprio=pr[i], actions=acts[i],
            success_prob=np.stack(probs, 1)[i], reward=np.stack(rewards, 1)[i], success=bool(success_step[i] >= 0),
            success_step=int(success_step[i]), latents=np.stack([z[i] for z in latents]) if record else np.zeros((0,)),
            warnings=w, action_in_range=in_range))
    return out_trajs


def _features_of(model: WorldModel, state: RolloutState, i: int) -> np.ndarray:
    """Row i's state features at the context's last step, raw units (empty without state features)."""
    if not model.feature_dims:
        return np.zeros(0, np.float32)
    p = model.unnorm_proprio(state.proprio[i, -1].float().cpu().numpy()[None])[0]
    return p[model.robot_proprio_dim:]


def _ask_batch(policy: Policy, obs: list[Observation], queues: list[ActionQueue], t: int) -> None:
    """Refill the empty queues with one `act_batch` call; failures become a `PolicyError` naming the step."""
    need = [i for i, q in enumerate(queues) if q.empty]
    if not need:
        return
    name = f"{type(policy).__name__} action at imagined step {t}"
    try:
        acts = policy.act_batch([obs[i] for i in need]) if len(need) > 1 else [policy.act(obs[need[0]])]
        if len(acts) != len(need):
            raise ContractError(f"{type(policy).__name__}.act_batch returned {len(acts)} actions for {len(need)} "
                                "observations")
        for i, a in zip(need, acts):
            queues[i].push(a, name=name)
    except ContractError as e:
        raise PolicyError(str(e)) from e
    except Exception as e:  # noqa: BLE001 - any policy failure is reported with context
        raise PolicyError(f"policy {type(policy).__name__} raised {type(e).__name__} at imagined step {t}: {e}") from e


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
