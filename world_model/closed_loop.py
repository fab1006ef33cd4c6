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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from vla.core.gym import observation_from_gym
from vla.core.types import Observation, Policy
from vla.policy import ActionQueue
from world_model.imagine import ImaginedTrajectory, imagine_batch
from world_model.metrics import correlations
from world_model.model import WorldModel

logger = logging.getLogger(__name__)


@dataclass
class InitialState:
    seed: int
    dr_params: dict
    observation: Observation
    # Privileged per-step state the env reports in `info` (e.g. `object_state`): what a world model with
    # `state_features` needs to start from.
    features: dict[str, np.ndarray] = field(default_factory=dict)


#: `info` entries kept as an initial state's `features` (see `TabletopEnv.object_state`).
STATE_INFO_KEYS = ("object_state",)


def _features(info: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(info[k], np.float32) for k in STATE_INFO_KEYS if k in info}


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


def initial_states(env, seeds: list[int], cameras) -> list[InitialState]:
    out = []
    for s in seeds:
        obs, info = env.reset(seed=int(s))
        out.append(InitialState(seed=int(s), dr_params=info.get("dr_params", {}),
                                observation=observation_from_gym(obs, info, cameras=cameras), features=_features(info)))
    return out


def replayed_states(env, results: Sequence, cameras) -> list[InitialState]:
    """The initial states of another runner's episodes (each with `seed` and `dr_params`), re-created in `env`."""
    out = []
    for r in results:
        obs, info = env.reset(seed=int(_field(r, "seed")), options={"dr_params": _field(r, "dr_params")})
        out.append(InitialState(int(_field(r, "seed")), dict(_field(r, "dr_params")),
                                observation_from_gym(obs, info, cameras=cameras), _features(info)))
    return out


def run_in_sim(env, policy: Policy, state: InitialState, max_steps: int, cameras, *, record: bool = False) -> SimRollout:
    """One episode of `policy` in `env` from `state`; chunks execute open-loop, success ends the episode."""
    obs, info = env.reset(seed=state.seed, options={"dr_params": state.dr_params})
    instruction = str(info.get("instruction", ""))
    policy.reset(instruction)
    frames = {c: [obs[c]] for c in cameras} if record else {}
    queue = ActionQueue()
    success = bool(info.get("success", False))
    t = 0
    while t < max_steps and not success:
        if queue.empty:
            queue.push(policy.act(observation_from_gym(obs, info, cameras=cameras, instruction=instruction)))
        obs, _, term, trunc, info = env.step(queue.pop())
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
            "sim_successes": int(sim.sum()), "model_successes": int(model.sum()), **error_rates(sim, model)}


def error_rates(sim, model) -> dict[str, float]:
    """The model's false-success rate on the episodes that fail in sim, and its false-failure rate on those that
    succeed (None where the sim has none of that kind): the hallucinated successes dWorldEval warns about."""
    sim, model = np.asarray(sim, bool), np.asarray(model, bool)
    fail, ok = ~sim, sim
    return {"false_success_rate": float(np.mean(model[fail])) if fail.any() else None,
            "false_failure_rate": float(np.mean(~model[ok])) if ok.any() else None}


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


def video_record(name: str, seed: int, sim: SimRollout, trajs: Sequence[ImaginedTrajectory]) -> dict:
    """One recorded episode for the visualizer: the sim's frames and each member's imagined frames, every camera.

    {"policy", "seed", "sim": {camera: (T+1, H, W, 3)}, "model": member 0's frames (the same layout),
    "members": [frames of each member] (one entry per member, member 0 included), "sim_success",
    "model_success" (member 0), "member_success": [bool per member], "sim_steps"}."""
    return {"policy": name, "seed": int(seed), "sim": sim.frames, "model": trajs[0].frames,
            "members": [t.frames for t in trajs], "sim_success": bool(sim.success),
            "model_success": bool(trajs[0].success), "member_success": [bool(t.success) for t in trajs],
            "sim_steps": int(sim.steps)}


@dataclass
class Timing:
    """Wall time and steps of each side (policy included), for the steps/s a comparison reports."""

    sim_s: float = 0.0
    sim_steps: int = 0
    model_s: float = 0.0
    model_steps: int = 0

    def as_dict(self) -> dict[str, float]:
        return {"sim_steps_per_s_with_policy": self.sim_steps / max(self.sim_s, 1e-9),
                "model_steps_per_s_with_policy": self.model_steps / max(self.model_s, 1e-9)}


class EpisodeRunner:
    """Plays one policy from every initial state in the sim and in every member of the model.

    The model side imagines `batch` initial states at once (`imagine_batch`: one dynamics / decoder batch and
    one `act_batch` call per step). With `sim_results` the sim outcome is taken from them (the sim runs only
    for the first `record` states, whose frames become videos). Accumulates `timing` and `videos`.
    """

    def __init__(self, members: list[WorldModel], env, *, max_steps: int, record: int,
                 sim_results: Mapping[str, Sequence] | None = None, batch: int = 32) -> None:
        self.members, self.env, self.max_steps, self.record = members, env, max_steps, record
        self.cameras = members[0].cameras
        self.sim_results = sim_results
        self.batch = max(1, int(batch))
        self.timing = Timing()
        self.videos: list[dict] = []

    def run(self, name: str, policy: Policy, states: Sequence[InitialState],
            progress=None) -> list[tuple[SimRollout, list[ImaginedTrajectory]]]:
        """Policy `name` from each state: (its sim rollout, each member's imagined trajectory) per state."""
        sims = []
        for i, st in enumerate(states):
            sims.append(self._sim(name, policy, i, st))
            if progress is not None:
                progress.update(0.5)
        per_member = [self._imagine(m, policy, states) for m in self.members]
        if progress is not None:
            progress.update(0.5 * len(states))
        out = [(sim, [trajs[i] for trajs in per_member]) for i, sim in enumerate(sims)]
        for i, (sim, trajs) in enumerate(out[: self.record]):
            self.videos.append(video_record(name, states[i].seed, sim, trajs))
        return out

    def _sim(self, name: str, policy: Policy, i: int, state: InitialState) -> SimRollout:
        frames: dict = {}
        if self.sim_results is None or i < self.record:
            t0 = time.perf_counter()
            sim = run_in_sim(self.env, policy, state, self.max_steps, self.cameras, record=i < self.record)
            self.timing.sim_s += time.perf_counter() - t0
            self.timing.sim_steps += sim.steps
            if self.sim_results is None:
                return sim
            frames = sim.frames
        r = self.sim_results[name][i]
        if int(_field(r, "seed")) != state.seed:
            raise ValueError(f"sim_results[{name!r}] is not in the same seed order as the first policy's")
        return SimRollout(success=bool(_field(r, "success")), steps=int(_field(r, "steps")), frames=frames)

    def _imagine(self, member: WorldModel, policy: Policy, states: Sequence[InitialState]) -> list[ImaginedTrajectory]:
        out: list[ImaginedTrajectory] = []
        for lo in range(0, len(states), self.batch):
            chunk = states[lo : lo + self.batch]
            t0 = time.perf_counter()
            trajs = imagine_batch(member, policy, [st.observation for st in chunk], self.max_steps,
                                  features=[st.features for st in chunk], record=lo < self.record)
            self.timing.model_s += time.perf_counter() - t0
            self.timing.model_steps += len(chunk) * self.max_steps
            out.extend(_truncated(t) for t in trajs)
        return out


def _truncated(t: ImaginedTrajectory) -> ImaginedTrajectory:
    """A batched row cut at its first success, as a sim episode ends there (what `imagine` returns at batch 1)."""
    if t.success_step < 0:
        return t
    n = t.success_step + 1
    return replace(t, frames={c: v[: n + 1] for c, v in t.frames.items()}, proprio=t.proprio[: n + 1],
                   actions=t.actions[:n], success_prob=t.success_prob[:n], reward=t.reward[:n],
                   latents=t.latents[: n + 1] if len(t.latents) else t.latents,
                   action_in_range=None if t.action_in_range is None else t.action_in_range[:n])


@dataclass
class PolicyOutcome:
    """One policy's episodes: the sim's verdict and each member's, per initial state."""

    sim: list[bool] = field(default_factory=list)
    members: list[list[bool]] = field(default_factory=list)  # (episodes, members)
    outside: int = 0  # imagined steps whose action no training data covers
    imagined: int = 0

    def add(self, sim: SimRollout, trajs: list[ImaginedTrajectory]) -> None:
        self.sim.append(sim.success)
        self.members.append([t.success for t in trajs])
        self.outside += sum(int((~t.action_in_range).sum()) for t in trajs)
        self.imagined += sum(len(t) for t in trajs)

    def result(self, ensemble: bool) -> dict:
        """The policy's entry of `compare_policies`' "policies" (with `ensemble`, the members' fields too)."""
        votes = [float(np.mean(ok)) for ok in self.members]
        # Share of the policy's imagined steps whose action no training data covers: its imagined success
        # is extrapolation to that extent (see WorldModel.actions_in_range).
        out = {"sim_success": float(np.mean(self.sim)), "model_success": float(np.mean(votes)), "sim": self.sim,
               "model": [v > 0.5 for v in votes], "actions_out_of_range": self.outside / max(self.imagined, 1)}
        out.update(error_rates(self.sim, out["model"]))
        if ensemble:
            out["votes"] = votes
            out["member_success"] = np.mean(self.members, axis=0).tolist()
            out["member_model"] = np.asarray(self.members, bool).T.tolist()
        return out


def agreement_summary(results: dict[str, dict], members: int, *, bootstrap: int, seed: int) -> dict:
    """Episode agreement, and over policies (>= 3) the correlations, of the ensemble and of each member."""
    out = {"episode_agreement": episode_agreement(results)}
    sims = [r["sim_success"] for r in results.values()]
    if len(results) >= 3:
        out["agreement"] = correlations(sims, [r["model_success"] for r in results.values()], bootstrap=bootstrap,
                                        seed=seed)
    if members > 1:
        out["members"] = members
        v = np.concatenate([r["votes"] for r in results.values()])
        out["member_disagreement"] = float(np.mean((v > 0) & (v < 1))) if len(v) else float("nan")
        out["member_episode_agreement"] = [
            episode_agreement({n: {"sim": r["sim"], "model": r["member_model"][k]} for n, r in results.items()})
            for k in range(members)]
        if len(results) >= 3:
            out["member_agreement"] = [
                correlations(sims, [r["member_success"][k] for r in results.values()], bootstrap=bootstrap, seed=seed)
                for k in range(members)]
    return out


def compare_policies(model: WorldModel | Sequence[WorldModel], env_id: str, policies: dict[str, Policy], *,
                     num_initial_states: int = 8, max_steps: int = 30, seed: int = 1000, env_kwargs: dict | None = None,
                     bootstrap: int = 1000, record: int = 2, progress: bool = True,
                     sim_results: dict | None = None, batch: int = 32) -> dict:
    """Success of each policy in sim and in the model from the same initial states, plus agreement metrics.

    Returns {"policies": {name: {"sim_success", "model_success", "sim": [bool], "model": [bool],
    "actions_out_of_range"}},
    "agreement": correlations(...) (when >= 3 policies), "videos": [{policy, seed, sim, model,
    sim_success, model_success}] for the first `record` initial states of each policy, "timing": {...}}.

    `sim_results` (policy name -> per-episode results with `seed`, `dr_params`, `success`, e.g. the
    `EpisodeResult`s of `sim_envs.evaluation.evaluate_policies`, which already replays identical initial
    states for every policy) reuses those sim outcomes: the model then starts from the same seeds and DR
    parameters, and the sim is only re-run for the recorded videos. The first `num_initial_states` episodes
    are used (0: all). The model imagines `batch` initial states at once (`imagine_batch`).

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
    env = make_env(env_id, **dict(env_kwargs or {}))
    cameras = members[0].cameras
    if sim_results is not None:
        missing = [n for n in policies if n not in sim_results]
        if missing:
            raise ValueError(f"sim_results lacks policies {missing}; it has {sorted(sim_results)}")
        states = replayed_states(env, list(sim_results[next(iter(policies))])[: num_initial_states or None], cameras)
    else:
        states = initial_states(env, [seed + i for i in range(num_initial_states)], cameras)
    runner = EpisodeRunner(members, env, max_steps=max_steps, record=record, sim_results=sim_results, batch=batch)
    results = {}
    bar = tqdm(total=len(policies) * len(states), desc="closed loop (sim + model)", disable=not progress)
    for name, policy in policies.items():
        outcome = PolicyOutcome()
        for sim, trajs in runner.run(name, policy, states, bar):
            outcome.add(sim, trajs)
        results[name] = outcome.result(ensemble=len(members) > 1)
        logger.info("%s: sim %.2f, model %.2f", name, results[name]["sim_success"], results[name]["model_success"])
    bar.close()
    env.close()
    out = {"env_id": env_id, "seeds": [st.seed for st in states], "max_steps": max_steps, "policies": results,
           "videos": runner.videos, "timing": runner.timing.as_dict()}
    out.update(agreement_summary(results, len(members), bootstrap=bootstrap, seed=seed))
    return out
