"""`vla-collect` on real MuJoCo envs: RLDS output that RLDSReader and TFDS load, metadata that replays the
episode, failed experts kept or dropped (never silently), the no-vision baseline built from the data."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mujoco")

from sim_envs.collect import CollectSettings, collect  # noqa: E402
from sim_envs.config import SimConfig  # noqa: E402
from vla.core.episode import EpisodeMetadata  # noqa: E402
from vla.data.rlds_reader import RLDSReader  # noqa: E402

TASK = "vla_sim/LiftCube-v0"


def _fresh(fn, *args, **kwargs):
    """Run fn in a spawned process. TensorFlow (the RLDS writer, tfds) and MuJoCo rendering must not share a
    process (llvmpipe segfaults, see sim_envs.collect._run_jobs), and pytest workers run other tests that
    render, so these tests keep TensorFlow out of the pytest process."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # Not multiprocessing.Pool: its daemonic workers may not start the processes collect() needs.
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    settings = CollectSettings(tasks=["LiftCube"], sim=SimConfig(image_size=32), dr="low", episodes=3, workers=2)
    summary = _fresh(collect, settings, root, "sim_lift_test", episodes_per_shard=2, progress=False)
    return summary, root / "sim_lift_test" / "1.0.0"


def _replay_first_steps(seeds_and_params: list[tuple[int, dict]]) -> list[tuple[str, np.ndarray]]:
    """(instruction, first proprio) of each replayed episode (run in a fresh process, see `_fresh`)."""
    import gymnasium

    import sim_envs  # noqa: F401

    env = gymnasium.make(TASK, dr_level="low", image_size=32)
    out = []
    for seed, params in seeds_and_params:
        obs, info = env.reset(seed=seed, options={"dr_params": params})
        out.append((info["instruction"], obs["proprio"]))
    env.close()
    return out


def test_collect_writes_rlds_with_replayable_metadata(dataset):
    summary, path = dataset
    assert summary.attempted == 3 and summary.written + summary.dropped == 3
    assert summary.written == summary.succeeded >= 2  # the expert solves LiftCube; failures would be listed
    assert str(path) == summary.dataset_dir
    reader = RLDSReader(path)
    assert reader.num_episodes("train") == summary.written
    assert len(reader.shard_paths("train")) == 2  # episodes_per_shard=2
    episodes = list(reader.episodes("train", decode_images=True))
    metas = [EpisodeMetadata.from_features(ep["episode_metadata"]) for ep in episodes]
    kept_seeds = [s for s in range(3) if s not in {f["seed"] for f in summary.failures}]
    assert [m.seed for m in metas] == kept_seeds  # written in seed order whatever the worker count
    assert all(m.success and m.task == TASK and m.randomization["level"] == "low" for m in metas)
    assert metas[0].episode_id == "LiftCube-v0-low-seed0"
    # Seed + stored DR parameters replay the episode: same instruction, same first proprio reading.
    replayed = _fresh(_replay_first_steps, [(m.seed, m.randomization) for m in metas])
    for ep, (instruction, proprio) in zip(episodes, replayed):
        assert instruction == ep["steps"]["language_instruction"][0].decode()
        np.testing.assert_array_equal(proprio, ep["steps"]["observation"]["state"][0])
        assert ep["steps"]["observation"]["image"].shape[1:] == (32, 32, 3)
        assert ep["steps"]["observation"]["wrist_image"].shape[1:] == (32, 32, 3)
        assert ep["steps"]["is_last"][-1] and ep["steps"]["is_terminal"][-1] and ep["steps"]["reward"][-1] == 1.0
    saved = json.loads((path.parent / "collect_summary.json").read_text())
    assert saved["written"] == summary.written and saved["settings"]["dr_level"] == "low"


def _tfds_episodes(path: str) -> list[tuple[int, bytes, np.ndarray]]:
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(path)
    return [
        (int(ep["episode_metadata"]["seed"]), ep["episode_metadata"]["randomization"],
         np.stack([s["action"] for s in ep["steps"]]))
        for ep in tfds.as_numpy(builder.as_dataset(split="train"))
    ]


def test_tfds_loads_the_collected_dataset(dataset):
    pytest.importorskip("tensorflow_datasets")
    summary, path = dataset
    episodes = _fresh(_tfds_episodes, str(path))
    assert len(episodes) == summary.written
    reader_eps = list(RLDSReader(path).episodes("train"))
    for (seed, randomization, actions), ep in zip(episodes, reader_eps):
        assert seed == ep["episode_metadata"]["seed"]
        assert randomization == ep["episode_metadata"]["randomization"]
        np.testing.assert_array_equal(actions, ep["steps"]["action"])


def test_failed_experts_are_dropped_or_kept_never_silently(tmp_path, caplog):
    # 3 control steps are too few for any pick-up: every expert episode fails.
    settings = CollectSettings(tasks=["LiftCube"], sim=SimConfig(image_size=16, max_episode_steps=3), episodes=2, workers=1)
    with caplog.at_level(logging.WARNING, logger="sim_envs.collect"):
        dropped = collect(settings, tmp_path, "drop", progress=False)
    assert (dropped.attempted, dropped.written, dropped.dropped, dropped.succeeded) == (2, 0, 2, 0)
    assert dropped.dataset_dir is None and not (tmp_path / "drop" / "1.0.0" / "dataset_info.json").exists()
    assert [f["seed"] for f in dropped.failures] == [0, 1]
    assert all("not completed" in f["reason"] for f in dropped.failures)
    assert sum("expert failed" in r.message and "dropped" in r.message for r in caplog.records) == 2

    settings.keep_failed = True
    kept = _fresh(collect, settings, tmp_path, "keep", progress=False)
    assert (kept.written, kept.failed_kept, kept.dropped) == (2, 2, 0)
    metas = [EpisodeMetadata.from_features(ep["episode_metadata"]) for ep in RLDSReader(kept.dataset_dir).episodes()]
    assert [(m.seed, m.success) for m in metas] == [(0, False), (1, False)]
    ep = next(RLDSReader(kept.dataset_dir).episodes())
    assert len(ep["steps"]["action"]) == 3 and not ep["steps"]["is_terminal"][-1]  # truncated, not terminal
    with pytest.raises(FileExistsError, match="overwrite"):  # raised before any env or writer is made
        collect(settings, tmp_path, "keep", progress=False)
    with pytest.raises(ValueError, match="Valid tasks"):
        collect(CollectSettings(tasks=["LiftCubes2"]), tmp_path, "x", progress=False)


def _settings(max_episode_steps: int | None = None, terminate_on_success: bool = True, **collect) -> CollectSettings:
    """One episode's collection settings: LiftCube at DR level low, 32 px, the primary camera."""
    sim = SimConfig(image_size=32, cameras=["primary"], max_episode_steps=max_episode_steps,
                    terminate_on_success=terminate_on_success)
    return CollectSettings(tasks=[TASK], sim=sim, dr="low", **collect)


def _perturbed_episode_and_replays(seed: int, noise: float) -> dict[str, np.ndarray]:
    """A DART-perturbed expert episode, and the same seed replayed with label + the episode's noise draws and with
    the labels alone (run in a fresh process, see `_fresh`)."""
    import gymnasium

    import sim_envs  # noqa: F401
    from sim_envs.collect import NOISE_STREAM, _Job, run_expert_episode

    ep = run_expert_episode(_Job(TASK, seed, _settings(action_noise=noise))).episode
    env = gymnasium.make(TASK, dr_level="low", image_size=32, cameras=["primary"])  # as the collector's env
    rng = np.random.default_rng([seed, NOISE_STREAM])  # the collector's per-episode noise stream
    replays = {}
    for name, with_noise in (("label+noise", True), ("label", False)):
        obs, _ = env.reset(seed=seed)
        states = [obs["proprio"]]
        for a in ep.action[:-1]:
            executed = a.copy()
            if with_noise:
                executed[:3] += rng.normal(0.0, noise, 3).astype(np.float32)
            obs, *_ = env.step(executed)
            states.append(obs["proprio"])
        replays[name] = np.stack(states)
    env.close()
    return {"state": ep.state, "action": ep.action, "executed": ep.executed_action, **replays}


def test_dart_noise_perturbs_execution_and_records_the_clean_expert_label():
    out = _fresh(_perturbed_episode_and_replays, 3, 0.01)
    # The recorded states are what label + the seeded noise produce (so the noise was executed, the label recorded)...
    np.testing.assert_allclose(out["label+noise"], out["state"], atol=1e-5)
    # ... and not what the labels alone produce.
    assert np.abs(out["label"][:, :3] - out["state"][:, :3]).max() > 0.005
    # ... and the executed actions are recorded next to the labels (for dynamics models).
    assert np.abs(out["executed"][:, :3] - out["action"][:, :3]).max() > 0.005
    np.testing.assert_array_equal(out["executed"][:, 3:], out["action"][:, 3:])
    # Labels are the expert's own clipped proportional steps (noise would push some past its 4 cm limit).
    assert np.abs(out["action"][:, :3]).max() <= 0.04 + 1e-6
    with pytest.raises(ValueError, match="action_noise"):
        CollectSettings(action_noise=0.2)


def test_no_vision_baseline_replays_the_mean_expert_trajectory(dataset):
    from sim_envs.baselines import MeanTrajectoryPolicy, policy_context
    from sim_envs.evaluation import EvalSettings, plan_episodes, run_policy
    from vla.core.types import Observation
    from vla.policy import PolicySpecError, make_policy, policy_source

    _, path = dataset
    eps = list(RLDSReader(path).episodes("train"))
    policy = MeanTrajectoryPolicy.from_dataset(path)
    (traj,) = policy.trajectories.values()
    assert traj.task == TASK and traj.num_episodes == len(eps)
    first = np.stack([ep["steps"]["action"][0] for ep in eps])
    np.testing.assert_allclose(traj.actions[0, :6], first[:, :6].mean(0), atol=1e-6)
    assert len(traj.actions) == int(np.median([len(ep["steps"]["action"]) for ep in eps]))
    obs = Observation(images={"primary": np.zeros((8, 8, 3), np.uint8)}, instruction="lift the red cube up")
    policy.reset(obs.instruction)  # an unseen wording still finds the task by word overlap
    out = [policy.act(obs) for _ in range(len(traj.actions) + 2)]
    np.testing.assert_array_equal(out[0], traj.actions[0])
    assert np.all(out[-1][:6] == 0) and out[-1][6] == traj.actions[-1, 6]  # holds still after the horizon

    name, factory = policy_source("no_vision", policy_context([TASK], datasets=str(path)))
    assert name == "no_vision" and factory() is not factory()  # one instance per parallel env
    res = run_policy(factory, plan_episodes(["LiftCube"], ["none"], 1),
                     EvalSettings(SimConfig(image_size=16, max_episode_steps=8), vector="async", progress=False),
                     name=name)
    assert res[0].error is None and (res[0].steps == 8 or res[0].success)
    _, by_option = make_policy(f"no_vision:dataset={path}", policy_context([TASK]))
    assert isinstance(by_option, MeanTrajectoryPolicy) and by_option.trajectories.keys() == policy.trajectories.keys()
    with pytest.raises(ValueError, match="policy_options.dataset"):
        make_policy("no_vision", policy_context([TASK]))
    with pytest.raises(PolicySpecError, match=r"unknown kind 'no_visoin' \(did you mean 'no_vision'\?\).*"
                                              r"'expert'.*'no_vision'.*'random'"):
        make_policy("no_visoin", policy_context([TASK]))
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        make_policy("/no/such/checkpoint", policy_context([TASK]))


@pytest.mark.slow
def test_vla_collect_command(tmp_path):
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    code = "from sim_envs.cli.collect import main; main()"
    r = subprocess.run([sys.executable, "-c", code, "task=LiftCube", "dr=medium", "episodes=1", "workers=1",
                        "sim.image_size=16", "dr.sensor.image_noise_std=0", f"output_dir={tmp_path}"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    path = tmp_path / "sim_liftcube_medium" / "1.0.0"
    (md,) = [EpisodeMetadata.from_features(ep["episode_metadata"]) for ep in RLDSReader(path).episodes()]
    assert md.randomization["level"] == "medium" and md.randomization["sensor"]["image_noise_std"] == 0.0
    assert "expert success vla_sim/LiftCube-v0 dr=medium" in r.stdout + r.stderr
    typo = subprocess.run([sys.executable, "-c", code, "episode=3"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert typo.returncode != 0 and "did you mean 'episodes'" in typo.stderr


def _missed_grasp(seed: int, miss: float) -> dict:
    """An expert episode aimed `miss` m beside the cube (run in a fresh process, see `_fresh`)."""
    import sim_envs  # noqa: F401 - registers the tasks
    from sim_envs.collect import _Job, run_expert_episode

    r = run_expert_episode(_Job(TASK, seed, _settings(max_episode_steps=40, grasp_miss=miss)))
    return {"success": r.success, "state": r.episode.state, "action": r.episode.action}


def test_grasp_miss_closes_beside_the_cube_and_fails():
    hit, miss = _fresh(_missed_grasp, 5, 0.0), _fresh(_missed_grasp, 5, 0.05)
    assert hit["success"] and not miss["success"]
    closed = lambda ep: np.flatnonzero(ep["action"][:, 6] < 0.5)[0]  # noqa: E731 - the first closing step (0 = closed)
    # Same seed, same cube: the missing expert closes 5 cm (in x/y) from where the hitting one closes.
    offset = np.linalg.norm(miss["state"][closed(miss), :2] - hit["state"][closed(hit), :2])
    assert 0.035 < offset < 0.065, offset
    with pytest.raises(ValueError, match="grasp_miss"):
        CollectSettings(grasp_miss=0.5)


def _taken_over(seed: int, prob: float) -> dict:
    """An expert episode that random actions may take over (run in a fresh process, see `_fresh`)."""
    import sim_envs  # noqa: F401 - registers the tasks
    from sim_envs.collect import _Job, run_expert_episode

    r = run_expert_episode(_Job(TASK, seed, _settings(max_episode_steps=40, random_takeover=prob, keep_failed=True)))
    return {"success": r.success, "action": r.episode.action, "executed": r.episode.executed_action}


def test_random_takeover_hands_the_arm_to_random_actions_and_keeps_expert_labels():
    a, again = _fresh(_taken_over, 3, 1.0), _fresh(_taken_over, 3, 1.0)
    np.testing.assert_array_equal(a["executed"], again["executed"])  # seeded by the episode seed
    differs = np.any(a["executed"] != a["action"], axis=1)
    start = int(np.argmax(differs))
    # Before the takeover the arm does what the expert says; from it on, every step is random: the expert
    # never rotates about roll/pitch, random actions always do, and the episode runs to the limit and fails.
    assert not differs[:start].any() and differs[start:].all() and start < 40 // 3
    assert np.all(np.abs(a["executed"][start:, 3:5]) > 0) and np.all(a["action"][:, 3:5] == 0)
    assert len(a["action"]) == 40 and not a["success"]
    assert set(np.unique(a["executed"][start:, 6])) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="keep_failed=true"):
        CollectSettings(random_takeover=0.5)
    with pytest.raises(ValueError, match="probability"):
        CollectSettings(random_takeover=1.5, keep_failed=True)


def _wrong_target(seed: int) -> dict:
    """A LiftNamedCube expert episode with wrong_target=1: which cube rose, which was named."""
    import sim_envs  # noqa: F401 - registers the tasks
    from sim_envs.collect import _Job, _env_and_expert, run_expert_episode

    settings = CollectSettings(tasks=["vla_sim/LiftNamedCube-v0"], sim=SimConfig(image_size=32, cameras=["primary"]),
                               dr="low", keep_failed=True, wrong_target=1.0, object_state=True)
    r = run_expert_episode(_Job("vla_sim/LiftNamedCube-v0", seed, settings))
    env = _env_and_expert(_Job("vla_sim/LiftNamedCube-v0", seed, settings))[0].unwrapped
    objects = r.episode.extra_state["object_state"]  # named cube first
    rise = objects[-1, 2::3] - objects[0, 2::3]
    return {"success": r.success, "rise": rise, "wrong": bool(env._wrong_target),
            "differs": bool(np.any(r.episode.executed_action != r.episode.action))}


def test_wrong_target_episodes_lift_a_cube_the_instruction_did_not_name():
    out = _fresh(_wrong_target, 4)
    assert not out["success"] and out["wrong"] and out["differs"]
    assert out["rise"][0] < 0.01 and out["rise"][1:].max() > 0.05  # another cube rose, the named one stayed
    with pytest.raises(ValueError, match="keep_failed=true"):
        CollectSettings(wrong_target=0.5)
    with pytest.raises(ValueError, match="probability"):
        CollectSettings(wrong_target=-0.1, keep_failed=True)


def _rewards(seed: int, terminate: bool) -> np.ndarray:
    import sim_envs  # noqa: F401 - registers the tasks
    from sim_envs.collect import _Job, run_expert_episode

    return run_expert_episode(_Job(TASK, seed, _settings(max_episode_steps=40, terminate_on_success=terminate))).episode.reward


def test_reward_marks_every_solved_step():
    ends = _fresh(_rewards, 5, True)
    assert ends[-1] == 1.0 and not ends[:-1].any()  # the episode ends on its first solved step
    runs_on = _fresh(_rewards, 5, False)
    assert len(runs_on) == 40  # to the time limit
    first = int(np.argmax(runs_on))
    assert first == len(ends) - 1  # same seed, same first solved step
    assert runs_on[first:].sum() > 10  # the expert holds the cube up: the following steps are solved too


def _paired_dataset(root) -> list[tuple[str, str, np.ndarray, bool]]:
    """(episode id, instruction, first wrist image, success) of a 2-scene every_target collection."""
    settings = CollectSettings(tasks=["LiftNamedCube"], sim=SimConfig(image_size=32), dr="low", episodes=2,
                               workers=1, every_target=True)
    summary = collect(settings, root, "paired", progress=False)
    out = []
    for ep in RLDSReader(summary.dataset_dir).episodes("train", decode_images=True):
        meta = EpisodeMetadata.from_features(ep["episode_metadata"])
        out.append((meta.episode_id, ep["steps"]["language_instruction"][0].decode(),
                    ep["steps"]["observation"]["image"][0], meta.success))
    return out, summary.attempted


def test_every_target_collects_each_scene_once_per_named_candidate(tmp_path):
    """Paired language data: the same initial image under each candidate's instruction (3 cubes -> 3 episodes
    per scene), each a successful demonstration of the object it names."""
    episodes, attempted = _fresh(_paired_dataset, tmp_path)
    assert attempted == 6 and len(episodes) == 6 and all(ok for *_, ok in episodes)
    ids = [e[0] for e in episodes]
    assert ids[:3] == [f"LiftNamedCube-v0-low-seed0-target{t}" for t in range(3)]
    for scene in (episodes[:3], episodes[3:]):
        assert len({instr for _, instr, _, _ in scene}) == 3  # three different objects named
        for _, _, image, _ in scene[1:]:
            np.testing.assert_array_equal(image, scene[0][2])  # ... in the very same scene
