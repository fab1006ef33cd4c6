"""Closed-loop agreement: the same policies from the same initial states, in sim and in the world model.

The sim side goes through gymnasium by env id (`vla_sim/<Task>-v0` from `sim_envs`, or the toy
`world_model/SquareWorld-v0`), so this module never imports `sim_envs`; the caller imports whatever
registers the id. Initial states: `env.reset(seed=s)` gives the first observation and `info["dr_params"]`;
each policy then replays `env.reset(seed=s, options={"dr_params": ...})`, exactly the same scene. The model
side starts `imagine` from that first observation. Per policy we report success in both, the bias, and
over policies the correlations with bootstrap intervals and MMRV (`world_model.metrics`).

An ensemble (several models of the same setup trained with different seeds) can take the model's place: each
member imagines every episode, a policy's imagined success is the members' mean success rate, and each
member's own ranking is reported next to the ensemble's. Training one small world model is not
reproducible run to run (measured in `docs/world_model.md`: the same setting ranked policies with MMRV
0.058 in one run and 0.23 in another); averaging members is the standard remedy (PETS, Chua et al. 2018),
and where members disagree on an episode, no single model's verdict on it should be trusted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vla.core.types import Observation, Policy, validate_action
from world_model.imagine import imagine
from world_model.metrics import correlations
from world_model.model import WorldModel

logger = logging.getLogger(__name__)


@dataclass
class InitialState:
    seed: int
    dr_params: dict
    observation: Observation


@dataclass
class SimRollout:
    success: bool
    steps: int
    frames: dict[str, np.ndarray] = field(default_factory=dict)  # only when recorded


def make_env(env_id: str, **kwargs):
    import gymnasium as gym

    if env_id.startswith("world_model/"):
        from world_model.toy import register

        register()
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise ValueError(
            f"cannot make env {env_id!r}: {e}. Registered vla ids: "
            f"{sorted(k for k in gym.registry if k.startswith(('vla_sim/', 'world_model/')))} (import sim_envs first "
            "to register the MuJoCo tasks)"
        ) from e


def to_observation(obs: dict, info: dict, cameras) -> Observation:
    return Observation(images={c: obs[c] for c in cameras if c in obs}, proprio=obs.get("proprio", np.zeros(0)),
                       instruction=str(info.get("instruction", "")))


def initial_states(env, seeds: list[int], cameras) -> list[InitialState]:
    out = []
    for s in seeds:
        obs, info = env.reset(seed=int(s))
        out.append(InitialState(seed=int(s), dr_params=info.get("dr_params", {}), observation=to_observation(obs, info, cameras)))
    return out


def run_in_sim(env, policy: Policy, state: InitialState, max_steps: int, cameras, *, record: bool = False) -> SimRollout:
    """One episode of `policy` in `env` from `state`; chunks execute open-loop, success ends the episode."""
    obs, info = env.reset(seed=state.seed, options={"dr_params": state.dr_params})
    instruction = str(info.get("instruction", ""))
    policy.reset(instruction)
    frames = {c: [obs[c]] for c in cameras} if record else {}
    queue: list[np.ndarray] = []
    success = bool(info.get("success", False))
    t = 0
    while t < max_steps and not success:
        if not queue:
            a = validate_action(policy.act(to_observation(obs, info, cameras)))
            queue = list(a) if a.ndim == 2 else [a]
        obs, _, term, trunc, info = env.step(queue.pop(0))
        t += 1
        success = bool(info.get("success", False))
        if record:
            for c in cameras:
                frames[c].append(obs[c])
        if term or trunc:
            break
    return SimRollout(success=success, steps=t, frames={c: np.stack(v) for c, v in frames.items()})


def episode_agreement(policies: dict) -> dict:
    """Per-episode agreement of a `compare_policies` result ({name: {"sim": [bool], "model": [bool]}}): the
    share of (policy, initial state) pairs where the model's outcome equals the sim's, and the false
    successes / failures of the model. Unlike the ranking it does not average errors away within a policy."""
    sim = np.concatenate([np.asarray(r["sim"], bool) for r in policies.values()])
    model = np.concatenate([np.asarray(r["model"], bool) for r in policies.values()])
    return {"episodes": int(len(sim)), "agreement": float(np.mean(sim == model)) if len(sim) else float("nan"),
            "model_false_successes": int(np.sum(model & ~sim)), "model_false_failures": int(np.sum(~model & sim)),
            "sim_successes": int(sim.sum()), "model_successes": int(model.sum())}


def ensemble_members(model: WorldModel | Sequence[WorldModel]) -> list[WorldModel]:
    """The members of `model` (one model or a sequence of them), checked to see the same cameras at the same sizes:
    a policy gets the same observations from each of them."""
    members = [model] if isinstance(model, WorldModel) else list(model)
    if not members:
        raise ValueError("no world model given: pass a WorldModel or a non-empty list of them")
    first = members[0]
    for i, m in enumerate(members[1:], 1):
        if not isinstance(m, WorldModel):
            raise TypeError(f"ensemble member {i} is a {type(m).__name__}, not a WorldModel")
        mine = (m.cameras, m.source_image_size, m.config.image_size)
        theirs = (first.cameras, first.source_image_size, first.config.image_size)
        if mine != theirs:
            raise ValueError(f"ensemble member {i} sees cameras/source size/image size {mine}, member 0 {theirs}: "
                             "an ensemble's members must be trained on the same cameras and image sizes")
    return members


def _field(r, name):
    return r[name] if isinstance(r, dict) else getattr(r, name)


def compare_policies(model: WorldModel | Sequence[WorldModel], env_id: str, policies: dict[str, Policy], *,
                     num_initial_states: int = 8, max_steps: int = 30, seed: int = 1000, env_kwargs: dict | None = None,
                     bootstrap: int = 1000, record: int = 2, progress: bool = True,
                     sim_results: dict | None = None) -> dict:
    """Success of each policy in sim and in the model from the same initial states, plus agreement metrics.

    Returns {"policies": {name: {"sim_success", "model_success", "sim": [bool], "model": [bool],
    "actions_out_of_range"}},
    "agreement": correlations(...) (when >= 3 policies), "videos": [{policy, seed, sim, model,
    sim_success, model_success}] for the first `record` initial states of each policy, "timing": {...}}.

    `sim_results` (policy name -> per-episode results with `seed`, `dr_params`, `success`, e.g. the
    `EpisodeResult`s of `sim_envs.evaluation.evaluate_policies`, which already replays identical initial
    states for every policy) reuses those sim outcomes: the model then starts from the same seeds and DR
    parameters, and the sim is only re-run for the recorded videos. The first `num_initial_states` episodes
    are used (0: all).

    With several models (an ensemble, see `ensemble_members`), "model_success" is the members' mean success
    rate, "model" the per-episode majority (more than half the members), and each policy also gets
    "member_success" (each member's rate), "member_model" (each member's per-episode verdicts) and "votes" (per
    episode, the share of members imagining success); the result gets "members" (their count),
    "member_agreement" and "member_episode_agreement" (each member's own correlations and episode agreement
    with sim) and "member_disagreement" (the share of episodes on which the members do not all agree).
    Videos show the first member.
    """
    from tqdm.auto import tqdm

    members = ensemble_members(model)
    kwargs = dict(env_kwargs or {})
    env = make_env(env_id, **kwargs)
    cameras = members[0].cameras
    if sim_results is not None:
        missing = [n for n in policies if n not in sim_results]
        if missing:
            raise ValueError(f"sim_results lacks policies {missing}; it has {sorted(sim_results)}")
        first = list(sim_results[next(iter(policies))])[: num_initial_states or None]
        states = []
        for r in first:
            obs, info = env.reset(seed=int(_field(r, "seed")), options={"dr_params": _field(r, "dr_params")})
            states.append(InitialState(int(_field(r, "seed")), dict(_field(r, "dr_params")),
                                       to_observation(obs, info, cameras)))
        seeds = [st.seed for st in states]
    else:
        seeds = [seed + i for i in range(num_initial_states)]
        states = initial_states(env, seeds, cameras)
    results, videos = {}, []
    sim_s = model_s = 0.0
    sim_steps = model_steps = 0
    bar = tqdm(total=len(policies) * len(states), desc="closed loop (sim + model)", disable=not progress)
    for name, policy in policies.items():
        sim_ok, model_ok, votes, per_member, outside, imagined = [], [], [], [], 0, 0
        for i, st in enumerate(states):
            frames: dict = {}
            if sim_results is None or i < record:
                t0 = time.perf_counter()
                sim = run_in_sim(env, policy, st, max_steps, cameras, record=i < record)
                sim_s += time.perf_counter() - t0
                sim_steps += sim.steps
                frames = sim.frames
            if sim_results is not None:
                r = sim_results[name][i]
                if int(_field(r, "seed")) != st.seed:
                    raise ValueError(f"sim_results[{name!r}] is not in the same seed order as the first policy's")
                sim = SimRollout(success=bool(_field(r, "success")), steps=int(_field(r, "steps")), frames=frames)
            member_ok = []
            for k, m in enumerate(members):
                t0 = time.perf_counter()
                traj = imagine(m, policy, st.observation, st.observation.instruction, max_steps)
                model_s += time.perf_counter() - t0
                model_steps += len(traj)
                outside += int((~traj.action_in_range).sum())
                imagined += len(traj)
                member_ok.append(traj.success)
                if k == 0 and i < record:
                    videos.append({"policy": name, "seed": st.seed, "sim": sim.frames, "model": traj.frames,
                                   "sim_success": sim.success, "model_success": traj.success})
            sim_ok.append(sim.success)
            per_member.append(member_ok)
            votes.append(float(np.mean(member_ok)))
            model_ok.append(votes[-1] > 0.5)
            bar.update(1)
        # Share of the policy's imagined steps whose action no training data covers: its imagined success
        # is extrapolation to that extent (see WorldModel.actions_in_range).
        results[name] = {"sim_success": float(np.mean(sim_ok)), "model_success": float(np.mean(votes)),
                         "sim": sim_ok, "model": model_ok, "actions_out_of_range": outside / max(imagined, 1)}
        if len(members) > 1:
            results[name]["votes"] = votes
            results[name]["member_success"] = np.mean(per_member, axis=0).tolist()
            results[name]["member_model"] = np.asarray(per_member, bool).T.tolist()
        logger.info("%s: sim %.2f, model %.2f", name, results[name]["sim_success"], results[name]["model_success"])
    bar.close()
    env.close()
    out = {"env_id": env_id, "seeds": seeds, "max_steps": max_steps, "policies": results, "videos": videos,
           "timing": {"sim_steps_per_s_with_policy": sim_steps / max(sim_s, 1e-9),
                      "model_steps_per_s_with_policy": model_steps / max(model_s, 1e-9)}}
    out["episode_agreement"] = episode_agreement(results)
    sims = [r["sim_success"] for r in results.values()]
    if len(policies) >= 3:
        out["agreement"] = correlations(sims, [r["model_success"] for r in results.values()], bootstrap=bootstrap,
                                        seed=seed)
    if len(members) > 1:
        out["members"] = len(members)
        v = np.concatenate([r["votes"] for r in results.values()])
        out["member_disagreement"] = float(np.mean((v > 0) & (v < 1))) if len(v) else float("nan")
        out["member_episode_agreement"] = [
            episode_agreement({n: {"sim": r["sim"], "model": r["member_model"][k]} for n, r in results.items()})
            for k in range(len(members))]
        if len(policies) >= 3:
            out["member_agreement"] = [
                correlations(sims, [r["member_success"][k] for r in results.values()], bootstrap=bootstrap, seed=seed)
                for k in range(len(members))]
    return out
