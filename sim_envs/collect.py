"""Demonstration collection: scripted experts in parallel worker processes, episodes written as RLDS.

    summary = collect(CollectSettings(tasks=["LiftCube"], dr="low", episodes=100, workers=2),
                      root_dir="outputs/data", name="sim_lift_low")
    summary.dataset_dir  # outputs/data/sim_lift_low/1.0.0, loads with RLDSReader and tfds.builder_from_directory

Each worker holds its own env and expert and runs whole episodes; the main process writes them in seed
order through `vla.data.rlds_writer.RLDSWriter`, so the dataset is the same for any number of workers.
Every episode records its task, seed, DR parameters and success in `episode_metadata`, so it can be
replayed exactly (`env.reset(seed=seed, options={"dr_params": randomization})`). Failed expert episodes
are kept (`keep_failed=True`, with success=False) or dropped; either way they are counted and logged.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from vla.core.episode import Episode, EpisodeMetadata
from vla.core.gym import observation_from_gym
from vla.core.intervals import wilson_interval
from vla.core.types import validate_action

from sim_envs.config import SimConfig
from sim_envs.domain_randomization import DRConfig

logger = logging.getLogger(__name__)

#: Mixed into each episode's seed for its action-noise stream: np.random.default_rng([seed, NOISE_STREAM]).
NOISE_STREAM = 0xDA47
#: The same for the direction of a deliberate miss (`grasp_miss`).
MISS_STREAM = 0x3155
#: The same for the random takeover (`random_takeover`: whether, when, and the random actions).
TAKEOVER_STREAM = 0x7A4E
#: The same for wrong-target episodes (`wrong_target`: whether, and which other candidate).
WRONG_TARGET_STREAM = 0x3A06


@dataclass
class CollectSettings:
    """What to collect.

    Attributes:
        tasks: task names or ids (see `sim_envs.TASKS`); `episodes` are collected for each.
        sim: how the envs are built (`SimConfig`: image size, cameras, controller, episode limit, terminate
            on success).
        dr: domain randomization of every episode: a shipped level's name (`configs/dr/<level>.yaml`) or a
            `DRConfig` (a level customized on the command line).
        episodes: episodes per task (attempts: dropped failures are not retried).
        seed_start: first seed; episode i of a task uses seed_start + i. Evaluation's held-out seeds start at
            `sim_envs.evaluation.EVAL_SEED_START`, far above.
        workers: expert processes (always separate processes, see `_run_jobs`).
        keep_failed: write failed expert episodes too (success=False in their metadata) instead of dropping them.
        action_noise: DART-style perturbation (Laskey et al. 2017): std (m) of Gaussian noise added to the
            translation the expert asks for before it is executed; the episode records the expert's clean action
            as the label. The closed-loop expert then corrects the drift, so the data shows how to recover from
            off-course states that a learned policy reaches but a clean expert never does. 0 = off. The
            executed action is recorded next to it (step field `executed_action`), which the world model reads.
        grasp_miss: failure data: the expert aims this far (m) off the object, in a random horizontal direction
            per episode (seeded by the episode seed), so it closes on air beside it and lifts nothing. With
            `keep_failed=True` this records the misses a weak policy makes, labelled as failures: negatives
            that a world model's success prediction needs (successful demonstrations alone teach it that
            closing and lifting always succeeds). 0 = off.
        random_takeover: exploration data for world models: the probability (per episode, drawn from its seed)
            that uniformly random actions (the `random` baseline's: the env's action bounds, gripper open or
            closed at p = 0.5) take over from the expert at a step drawn uniformly from the first third of the
            episode limit (before the expert is done on LiftCube; step 0: a whole random-policy episode) and
            drive the arm to the end. The executed actions are recorded in `executed_action` and the expert's
            action for the state stays the label.
            Such episodes nearly always fail, so this needs `keep_failed=True`: a world model trained on
            demonstrations alone has never seen what random actions do and can imagine them succeeding.
            0 = off.
        wrong_target: wrong-target data for world models and success detectors: the probability (per episode,
            drawn from its seed) that the expert carries out another candidate of the scene (also drawn from the
            seed) while the instruction names the target; the named target's expert action stays the label
            and the executed actions are recorded. The arm then lifts or places an object the instruction did not
            name: what a policy that ignores the words does (LIBERO-PRO's failure). Needs `keep_failed=True`;
            single-candidate tasks have no other candidate and are unaffected. 0 = off.
        object_state: also record the xyz of the task's movable objects per step (`TabletopEnv.object_state`) as
            the observation feature `object_state` (float32, 3 per object): privileged state a world model can
            learn to predict and judge success from (`world_model.state_features=[object_state]`). Policies never
            read it. All tasks of one collection must then have the same number of objects.
        policy: on-policy rollouts: this policy (a spec of `vla.policy`'s registry, e.g. `vla:path=runs/a/final`)
            drives the arm instead of the expert, whose action for every visited state stays the label (DAgger's
            relabelling) and whose executed actions are recorded in `executed_action`. World models learn from
            such rollouts what a learned policy's mistakes lead to. "" = off (the expert acts).
        every_target: paired language data: each initial scene (seed) is collected once per candidate the
            scene offers (`env.reset(options={"target": j})`: the same image, another object named, another
            action), so `episodes` counts scenes and a task with K candidates yields K episodes per scene. With
            one target per scene a policy can lower its loss by memorizing which object each training scene's
            demonstration went to; paired data leaves the words as the only explanation of the action.
    """

    tasks: Sequence[str] = ("LiftCube",)
    sim: SimConfig = field(default_factory=SimConfig)
    dr: str | DRConfig = "none"
    episodes: int = 10
    seed_start: int = 0
    workers: int = 1
    keep_failed: bool = False
    action_noise: float = 0.0
    grasp_miss: float = 0.0
    random_takeover: float = 0.0
    wrong_target: float = 0.0
    every_target: bool = False
    object_state: bool = False
    policy: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = (self.tasks,)
        self.tasks = tuple(self.tasks)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.seed_start < 0:
            raise ValueError(f"seed_start must be >= 0, got {self.seed_start}")
        if not 0.0 <= self.action_noise < 0.05:
            raise ValueError(f"action_noise must be in [0, 0.05) m (the controller's per-step limit), got {self.action_noise}")
        if not 0.0 <= self.grasp_miss <= 0.2:
            raise ValueError(f"grasp_miss must be in [0, 0.2] m (an aim offset beside the object), got {self.grasp_miss}")
        if not 0.0 <= self.random_takeover <= 1.0:
            raise ValueError(f"random_takeover is a probability per episode, in [0, 1]; got {self.random_takeover}")
        if not 0.0 <= self.wrong_target <= 1.0:
            raise ValueError(f"wrong_target is a probability per episode, in [0, 1]; got {self.wrong_target}")
        if self.wrong_target > 0 and not self.keep_failed:
            raise ValueError("wrong_target > 0 records episodes in which the expert acts on an object the instruction "
                             "did not name, which fail; set keep_failed=true to write them (labelled success=False)")
        if self.random_takeover > 0 and not self.keep_failed:
            raise ValueError("random_takeover > 0 records episodes that random actions drive, which nearly all fail; "
                             "set keep_failed=true to write them (they are labelled success=False)")

    @property
    def dr_level(self) -> str:
        return self.dr if isinstance(self.dr, str) else self.dr.level

    @property
    def records_executed_action(self) -> bool:
        """Whether episodes carry `executed_action` (what the arm did differs from the expert's label); the
        writer's features and every episode must agree on it."""
        return self.action_noise > 0 or self.random_takeover > 0 or self.wrong_target > 0 or bool(self.policy)


@dataclass(frozen=True)
class _Job:
    """One episode for a worker: the task, its seed, and the collection's settings (passed whole)."""

    task: str
    seed: int
    settings: CollectSettings
    target: int | None = None  # candidate the instruction names (None: the one the seed draws)


@dataclass
class ExpertEpisode:
    """One expert rollout as it comes back from a worker."""

    task: str
    seed: int
    success: bool
    steps: int
    dr_params: dict[str, Any]
    instruction: str
    error: str | None = None
    episode: Episode | None = None
    wall_s: float = 0.0


@dataclass
class CollectSummary:
    """What `collect` did: counts, failures (never silent) and where the data went."""

    dataset_dir: str | None
    attempted: int = 0
    written: int = 0
    succeeded: int = 0
    failed_kept: int = 0
    dropped: int = 0
    steps_written: int = 0
    wall_s: float = 0.0
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------- worker side
_ENVS: dict[str, Any] = {}


def _env_and_expert(job: _Job):
    """One env + expert per job configuration and worker process, built on first use."""
    sim, dr = job.settings.sim, job.settings.dr
    key = json.dumps([job.task, asdict(sim), dr if isinstance(dr, str) else asdict(dr)], sort_keys=True)
    if key not in _ENVS:
        from sim_envs.config import make_env
        from sim_envs.experts import make_expert

        env = make_env(job.task, sim=sim, dr=dr)
        _ENVS[key] = (env, make_expert(env))
    return _ENVS[key]


def _driver(job: _Job):
    """The policy of `settings.policy`, built once per worker process (None: the expert drives)."""
    spec = job.settings.policy
    if not spec:
        return None
    key = ("policy", spec, job.task)
    if key not in _ENVS:
        from sim_envs.baselines import policy_context
        from vla.policy import make_policy

        _ENVS[key] = make_policy(spec, policy_context([job.task]))[1]
    return _ENVS[key]


def _wrong_target_expert(env, info: dict, probability: float, seed: int):
    """With `probability` (drawn from the episode seed), an expert bound to another candidate of the scene than
    the named one (None: the episode is not a wrong-target one, or the scene has a single candidate)."""
    rng = np.random.default_rng([seed, WRONG_TARGET_STREAM])
    n, named = int(info.get("num_targets", 1)), int(info.get("target", 0))
    if not (rng.random() < probability and n > 1):
        return None
    from sim_envs.experts import make_expert_for_task

    other = (named + int(rng.integers(1, n))) % n
    base = env.unwrapped
    return make_expert_for_task(base.task.name, lambda: base.privileged_state(target=other))


def run_expert_episode(job: _Job) -> ExpertEpisode:
    """Roll out the task's expert from `job.seed`; exceptions become a failed episode with the reason."""
    t0 = time.perf_counter()
    try:
        env, expert = _env_and_expert(job)
        obs, info = env.reset(seed=job.seed, options=None if job.target is None else {"target": job.target})
    except Exception as e:  # noqa: BLE001  (one broken episode must not end the collection)
        return ExpertEpisode(job.task, job.seed, False, 0, {}, "", error=f"env setup/reset raised {type(e).__name__}: {e}")
    settings = job.settings
    instruction = str(info.get("instruction", ""))
    dr_params = dict(info.get("dr_params", {}))
    images: dict[str, list[np.ndarray]] = {c: [] for c in settings.sim.cameras}
    states: list[np.ndarray] = []
    objects: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    executed_actions: list[np.ndarray] = []
    rewards: list[float] = []  # 1 after every step that leaves the task solved (sparse success reward)
    success, error = False, None
    # Seeded by the episode seed, so a perturbed dataset is as reproducible as a clean one.
    noise_rng = np.random.default_rng([job.seed, NOISE_STREAM])
    angle = np.random.default_rng([job.seed, MISS_STREAM]).uniform(0.0, 2 * np.pi)
    expert.aim_offset = settings.grasp_miss * np.array([np.cos(angle), np.sin(angle), 0.0])
    takeover_rng = np.random.default_rng([job.seed, TAKEOVER_STREAM])
    takeover_at, random_policy = -1, None
    if takeover_rng.random() < settings.random_takeover:
        from vla.policy.baselines import RandomPolicy

        limit = int(env.spec.max_episode_steps)  # the TimeLimit that gymnasium.make applies
        takeover_at = int(takeover_rng.integers(0, max(1, limit // 3)))
        bounds = env.action_space
        random_policy = RandomPolicy(bounds.low[:-1], bounds.high[:-1], seed=int(takeover_rng.integers(2**31)))
    wrong = _wrong_target_expert(env, info, settings.wrong_target, job.seed)
    driver, queue = None, None
    try:
        driver = _driver(job)
        if driver is not None:
            from vla.policy import ActionQueue

            driver.reset(instruction)
            queue = ActionQueue()
    except Exception as e:  # noqa: BLE001
        return ExpertEpisode(job.task, job.seed, False, 0, {}, "", error=f"policy {settings.policy!r}: {type(e).__name__}: {e}")
    try:
        expert.reset(instruction)
        if wrong is not None:
            wrong.reset(instruction)
        while True:
            action = validate_action(expert.act(observation_from_gym(obs, info)), allow_chunk=False, name="expert action")
            for c in settings.sim.cameras:
                images[c].append(np.asarray(obs[c], np.uint8))
            states.append(np.asarray(obs["proprio"], np.float32))
            objects.append(np.asarray(info["object_state"], np.float32))
            actions.append(action)
            executed = action
            if driver is not None:
                if queue.empty:
                    queue.push(driver.act(observation_from_gym(obs, info, instruction=instruction)))
                executed = queue.pop()
            elif random_policy is not None and len(actions) > takeover_at:
                executed = random_policy.act(None)
            elif wrong is not None:
                executed = validate_action(wrong.act(None), allow_chunk=False, name="wrong-target expert action")
            elif settings.action_noise > 0:
                executed = action.copy()
                executed[:3] += noise_rng.normal(0.0, settings.action_noise, 3).astype(np.float32)
            executed_actions.append(executed)
            obs, _, terminated, truncated, info = env.step(executed)
            rewards.append(float(bool(info.get("success", False))))
            success = success or bool(info.get("success", False))
            if terminated or truncated:
                break
    except Exception as e:  # noqa: BLE001
        error = f"{type(e).__name__}: {e}"
        success = False
    episode = None
    if actions:
        md = EpisodeMetadata(
            episode_id=f"{job.task.split('/')[-1]}-{settings.dr_level}-seed{job.seed}"
                       + ("" if job.target is None else f"-target{job.target}"),
            success=success, seed=job.seed, randomization=dr_params, task=job.task,
        )
        episode = Episode(
            images={c: np.stack(v) for c, v in images.items()}, state=np.stack(states), action=np.stack(actions),
            instruction=instruction, metadata=md,
            # Per step, so episodes that run on after success (terminate_on_success=False) label every solved step.
            reward=np.asarray(rewards + [0.0] * (len(actions) - len(rewards)), np.float32),
            # What the arm did, for dynamics models (the world model); `action` stays the expert's label.
            executed_action=np.stack(executed_actions) if settings.records_executed_action else None,
            extra_state={"object_state": np.stack(objects)} if settings.object_state else None,
        )
    return ExpertEpisode(job.task, job.seed, success, len(actions), dr_params, instruction, error, episode,
                         time.perf_counter() - t0)


def run_scene(job: _Job) -> list[ExpertEpisode]:
    """The episodes of one initial scene: one, or with `every_target` one per candidate the scene offers."""
    if not job.settings.every_target:
        return [run_expert_episode(job)]
    try:
        env, _ = _env_and_expert(job)
        _, info = env.reset(seed=job.seed)
    except Exception as e:  # noqa: BLE001  (reported like any failed episode)
        return [ExpertEpisode(job.task, job.seed, False, 0, {}, "", error=f"env setup/reset raised {type(e).__name__}: {e}")]
    return [run_expert_episode(replace(job, target=t)) for t in range(int(info.get("num_targets", 1)))]


def _run_jobs(jobs: list[_Job], workers: int) -> Iterator[list[ExpertEpisode]]:
    """Results in job order (deterministic output for any worker count).

    The envs always run in spawned worker processes, never in this one: this process writes with
    TensorFlow, and MuJoCo's software renderer (Mesa llvmpipe) segfaults in a process that has loaded
    TensorFlow (gdb: swrast_dri.so's LLVM calls land in the LLVM copy inside libtensorflow_framework.so.2).
    spawn, not fork: EGL contexts and TF's threads do not survive a fork either.
    """
    with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(run_scene, jobs, chunksize=1)


# ----------------------------------------------------------------------------------------- main side
def collect(
    settings: CollectSettings,
    root_dir: str | Path,
    name: str,
    *,
    episodes_per_shard: int = 50,
    overwrite: bool = False,
    progress: bool = True,
) -> CollectSummary:
    """Run the experts and write `<root_dir>/<name>/1.0.0` (RLDS, TFDS layout) plus `collect_summary.json`.

    Returns the counts; raises ValueError for unknown tasks / levels before any work starts.
    """
    from tqdm.auto import tqdm

    from sim_envs.evaluation import resolve_level, resolve_task

    task_ids = [resolve_task(t) for t in settings.tasks]
    level = resolve_level(settings.dr_level)
    jobs = [_Job(t, settings.seed_start + i, settings) for t in task_ids for i in range(settings.episodes)]
    existing = Path(root_dir) / name / "1.0.0" / "dataset_info.json"
    if existing.exists() and not overwrite:
        raise FileExistsError(f"{existing.parent} already holds a dataset; pass overwrite=true or choose another name")
    summary = CollectSummary(dataset_dir=None, per_task={t: {"attempted": 0, "succeeded": 0} for t in task_ids})
    writer = None
    t0 = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=f"collect {name}", unit="scene" if settings.every_target else "ep",
               disable=not progress)
    try:
        for scene in _run_jobs(jobs, settings.workers):
            bar.update(1)  # one job: a scene (one episode, or one per candidate with every_target)
            for ep in scene:
                summary.attempted += 1
                summary.per_task[ep.task]["attempted"] += 1
                summary.succeeded += ep.success
                summary.per_task[ep.task]["succeeded"] += ep.success
                if not ep.success:
                    reason = ep.error or "task not completed within the episode limit"
                    summary.failures.append({"task": ep.task, "seed": ep.seed, "steps": ep.steps,
                                             "reason": reason})
                    logger.warning("expert failed: %s seed %d after %d steps (%s) -> %s", ep.task, ep.seed, ep.steps,
                                   reason, "kept (success=False)" if settings.keep_failed and ep.episode else "dropped")
                if ep.episode is not None and (ep.success or settings.keep_failed):
                    if writer is None:
                        writer = _make_writer(root_dir, name, settings, ep.episode, episodes_per_shard, overwrite)
                    writer.write(ep.episode)
                    summary.written += 1
                    summary.steps_written += ep.steps
                    summary.failed_kept += not ep.success
                else:
                    summary.dropped += 1
                bar.set_postfix(ok=summary.succeeded, failed=summary.attempted - summary.succeeded,
                                written=summary.written)
    finally:
        bar.close()
        if writer is not None:
            summary.dataset_dir = str(writer.close())
    summary.wall_s = time.perf_counter() - t0
    for t, d in summary.per_task.items():
        lo, hi = wilson_interval(d["succeeded"], d["attempted"])
        d.update(success_rate=d["succeeded"] / max(1, d["attempted"]), ci95=[lo, hi])
    if summary.dataset_dir is None:
        logger.error("no episode was written (%d attempted, all failed and keep_failed=false)", summary.attempted)
    else:
        out = Path(summary.dataset_dir).parent / "collect_summary.json"
        out.write_text(json.dumps({**summary.to_json(), "settings": _settings_json(settings, level, task_ids)}, indent=2))
    return summary


def _settings_json(settings: CollectSettings, level: str, task_ids: list[str]) -> dict[str, Any]:
    d = asdict(settings)  # asdict recurses into sim and a DRConfig
    d.update(tasks=task_ids, dr_level=level)
    return d


def _make_writer(root_dir, name, settings: CollectSettings, first: Episode, episodes_per_shard: int, overwrite: bool):
    from vla.data.rlds_writer import RLDSWriter

    h, w = first.images["primary"].shape[1:3]
    return RLDSWriter(
        root_dir, name, cameras=tuple(settings.sim.cameras), image_size=(h, w), state_dim=first.state.shape[1],
        episodes_per_shard=episodes_per_shard, overwrite=overwrite, executed_action=settings.records_executed_action,
        extra_state={"object_state": first.extra_state["object_state"].shape[1]} if settings.object_state else None,
        control_hz=settings.sim.controller.control_hz, description=f"Scripted-expert demonstrations from sim_envs ({', '.join(settings.tasks)}, DR level "
                    f"{settings.dr_level}), written by vla-collect.",
    )


def default_dataset_name(tasks: Sequence[str], dr_level: str, robot: str = "panda") -> str:
    """A valid TFDS name from the tasks, level and robot, e.g. 'sim_liftcube_none' (the Panda) or
    'sim_ur5e_liftcube_none': another robot's data gets its own name, so its action statistics land under
    their own `unnorm_key`."""
    parts = [t.split("/")[-1].rsplit("-v", 1)[0].lower() for t in tasks]
    base = parts[0] if len(parts) == 1 else f"{len(parts)}tasks"
    prefix = "sim" if robot == "panda" else f"sim_{robot}"
    return "".join(c if c.isalnum() else "_" for c in f"{prefix}_{base}_{dr_level}")
