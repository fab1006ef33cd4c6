"""The evaluation runner on real MuJoCo envs (small images, short episodes): results, failures, replay,
chunks, videos, eval_info.json, the plot and the `vla-eval` command."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vla.core.intervals import wilson_interval
from vla.core.types import Observation, Policy

pytest.importorskip("mujoco")

from sim_envs.baselines import ExpertPolicy  # noqa: E402
from sim_envs.config import SimConfig  # noqa: E402
from sim_envs.evaluation import (  # noqa: E402
    EVAL_SEED_START,
    EvalSettings,
    evaluate_policies,
    plan_episodes,
    resolve_level,
    resolve_seeds,
    resolve_task,
    write_outputs,
)
from sim_envs.results import EpisodeResult, aggregate, build_eval_info  # noqa: E402

TASK = "vla_sim/LiftCube-v0"
MAX_STEPS = 10
HOLD = np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32)


# ------------------------------------------------------------------------------------------ pure numerics
def test_wilson_interval_matches_scipy_and_textbook_values():
    from scipy.stats import binomtest

    for n in (1, 2, 5, 10, 37, 100):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            lo, hi = wilson_interval(k, n)
            ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
            assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12), (k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
    # Textbook values (Newcombe 1998, table I): 0/10 -> [0, 0.2775], 5/10 -> [0.2366, 0.7634].
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=5e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=5e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(3, 2)


def test_eval_info_layout_counts_and_json_nan():
    rs = [EpisodeResult("p", TASK, lv, s, success=(s % 2 == 0) and lv == "none", steps=5, sum_reward=float(s % 2 == 0))
          for lv in ("none", "low") for s in range(4)]
    rs[-1].error = "policy raised RuntimeError: boom"
    info = build_eval_info(rs, eval_s=8.0)
    assert [c["dr_level"] for c in info["per_task"]] == ["none", "low"]
    none = info["per_task"][0]
    assert none["metrics"]["successes"] == [True, False, True, False]
    assert none["aggregated"]["n_success"] == 2 and none["aggregated"]["pc_success"] == 50.0
    assert none["aggregated"]["ci95"] == list(wilson_interval(2, 4))
    assert info["per_group"]["dr_level"]["low"]["n_success"] == 0
    assert info["per_group"]["dr_level"]["low"]["n_errors"] == 1
    assert info["aggregated"]["n_episodes"] == 8 and info["aggregated"]["eval_ep_s"] == 1.0
    assert [e["episode_ix"] for e in info["per_episode"]] == list(range(8))
    empty = aggregate([])
    assert math.isnan(empty["success_rate"]) and empty["ci95"] == [0.0, 1.0]


def test_unknown_names_list_the_valid_ones():
    assert resolve_task("LiftCube") == TASK == resolve_task("liftcube-v0") == resolve_task(TASK)
    with pytest.raises(ValueError, match=r"unknown task 'LiftCub'.*Valid tasks: \[.*'LiftCube'.*Did you mean 'LiftCube'"):
        resolve_task("LiftCub")
    with pytest.raises(ValueError, match=r"unknown domain-randomization level 'extreme'. Valid levels: \['none', 'low', 'medium', 'high'"):
        resolve_level("extreme")
    with pytest.raises(ValueError, match="unknown task"):
        plan_episodes(["LiftCube", "FlyToMoon"], "none", 2)
    assert resolve_seeds(3) == [EVAL_SEED_START + i for i in range(3)]
    assert resolve_seeds("5:8") == [5, 6, 7]
    with pytest.raises(ValueError, match="distinct"):
        resolve_seeds([1, 1])


# ------------------------------------------------------------------------------------------ real envs
class ChunkPolicy(Policy):
    """Holds still, returning chunks of 4; counts its calls per episode."""

    chunk_size = 4
    instances: list["ChunkPolicy"] = []

    def __init__(self) -> None:
        self.calls: list[int] = []  # act calls per episode
        ChunkPolicy.instances.append(self)

    def reset(self, instruction: str) -> None:
        self.calls.append(0)

    def act(self, observation: Observation) -> np.ndarray:
        assert observation.images["primary"].shape == (32, 32, 3) and observation.instruction
        self.calls[-1] += 1
        return np.tile(HOLD, (4, 1))


class RaisingPolicy(Policy):
    def act(self, observation):
        raise RuntimeError("boom")


class NaNAfterTwoPolicy(Policy):
    def reset(self, instruction):
        self.t = 0

    def act(self, observation):
        self.t += 1
        return HOLD if self.t <= 2 else np.full(7, np.nan)


class WrongShapePolicy(Policy):
    def act(self, observation):
        return np.zeros(6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One evaluation of five policies on 2 held-out seeds at DR level low, 2 envs, 32 px.

    The envs run in subprocesses (vector=async): tests never render in the pytest process (see `_fresh`).
    """
    out = tmp_path_factory.mktemp("eval")
    ChunkPolicy.instances = []
    specs = plan_episodes(["LiftCube"], ["low"], 2)
    settings = EvalSettings(SimConfig(image_size=32, max_episode_steps=MAX_STEPS), num_envs=2, vector="async",
                            execute_steps=2, videos_per_cell=1, video_dir=out / "videos", progress=False)
    results = evaluate_policies(
        {"expert": ExpertPolicy(), "chunk": ChunkPolicy, "raise": RaisingPolicy(), "nan": NaNAfterTwoPolicy,
         "shape": WrongShapePolicy()},
        specs, settings,
    )
    paths = write_outputs(results, out, levels=["low"])
    return {"out": out, "results": results, "paths": paths, "specs": specs}


def test_failures_are_recorded_with_reasons_and_the_run_goes_on(run):
    res = run["results"]
    assert {k: len(v) for k, v in res.items()} == {"expert": 2, "chunk": 2, "raise": 2, "nan": 2, "shape": 2}
    for r in res["raise"]:
        assert not r.success and r.steps == 0 and r.error == "policy raised RuntimeError: boom"
    for r in res["nan"]:
        assert not r.success and r.steps == 2 and r.error.startswith("invalid action") and "non-finite" in r.error
    for r in res["shape"]:
        assert not r.success and r.steps == 0 and "shape (6,)" in r.error
    for r in res["chunk"] + res["expert"]:
        assert r.error is None
    assert all(r.steps == MAX_STEPS and not r.success for r in res["chunk"])


def test_all_policies_start_from_identical_initial_states(run):
    res = run["results"]
    base = res["expert"]
    assert [r.seed for r in base] == [s.seed for s in run["specs"]]
    assert base[0].initial_state_hash != base[1].initial_state_hash
    assert base[0].dr_params["level"] == "low" and base[0].dr_params != base[1].dr_params
    for name, rs in res.items():
        assert [r.initial_state_hash for r in rs] == [r.initial_state_hash for r in base], name
        assert [r.dr_params for r in rs] == [r.dr_params for r in base], name
        assert [r.instruction for r in rs] == [r.instruction for r in base], name


def _direct_expert_rollout(seed: int) -> tuple[int, bool]:
    """(steps, success) of the expert in a plain env. Runs in a fresh process (see `_fresh`)."""
    import gymnasium

    import sim_envs  # noqa: F401
    from sim_envs.experts import make_expert

    env = gymnasium.make(TASK, dr_level="low", image_size=32, max_episode_steps=MAX_STEPS)
    expert = make_expert(env)
    obs, info = env.reset(seed=seed)
    expert.reset(info["instruction"])
    steps, success, done = 0, False, False
    while not done:
        obs, _, term, trunc, info = env.step(expert.act(None))
        steps, success, done = steps + 1, success or info["success"], term or trunc
    env.close()
    return steps, success


def _fresh(fn, *args):
    """Run fn in a spawned process: MuJoCo's software renderer segfaults in a process where another test
    loaded TensorFlow (see sim_envs.collect._run_jobs), so tests never render in the pytest process."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def test_expert_through_the_runner_matches_a_direct_rollout(run):
    """The runner executes exactly what the expert computes in its worker: same outcome, same length."""
    r = run["results"]["expert"][0]
    assert (r.steps, r.success) == _fresh(_direct_expert_rollout, r.seed)


def test_action_chunks_run_open_loop_for_execute_steps(run):
    # chunks of 4, execute_steps=2 -> the policy is asked every 2 steps: 5 calls per 10-step episode.
    # One instance per parallel env (a factory was passed), one episode each.
    assert [p.calls for p in ChunkPolicy.instances] == [[MAX_STEPS // 2]] * 2


def test_video_is_a_valid_mp4_with_one_frame_per_observation(run):
    import imageio.v2 as imageio

    for name in ("expert", "raise"):
        r = run["results"][name][0]
        assert r.video_path and Path(r.video_path).is_file(), name
        reader = imageio.get_reader(r.video_path)
        assert reader.get_meta_data()["codec"] == "h264"
        assert reader.count_frames() == r.steps + 1
        frame = reader.get_data(0)
        assert frame.shape == (224, 448, 3)  # 32 px cameras side by side, enlarged 7x for the caption
        reader.close()
    assert run["results"]["expert"][1].video_path is None  # videos_per_cell=1


def test_eval_info_json_and_plot_on_disk(run):
    out = run["out"]
    for name, rs in run["results"].items():
        info = json.loads((out / name / "eval_info.json").read_text())
        assert info["policy"] == name
        assert [e["seed"] for e in info["per_episode"]] == [r.seed for r in rs]
        assert [e["success"] for e in info["per_episode"]] == [r.success for r in rs]
        k = sum(r.success for r in rs)
        assert info["aggregated"]["n_success"] == k and info["aggregated"]["ci95"] == list(wilson_interval(k, 2))
        assert info["per_task"][0]["task"] == TASK and info["per_task"][0]["dr_level"] == "low"
        assert info["aggregated"]["n_errors"] == sum(r.error is not None for r in rs)
        lines = (out / name / "episodes.jsonl").read_text().splitlines()
        assert [EpisodeResult.from_json(json.loads(x)) for x in lines] == rs
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == set(run["results"])
    png = (out / "success_vs_dr.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_registry_wrappers_apply_to_the_expert():
    """`expert:noise=...` from the one spec grammar: the wrapper gets the action the expert computed in its worker
    (no "needs the simulator state" error), one instance per parallel env."""
    from sim_envs.baselines import ExpertPolicy, policy_context
    from sim_envs.evaluation import run_policy
    from vla.policy import policy_source
    from vla.policy.wrappers import NoisyPolicy

    name, source = policy_source("expert:noise=0.005", policy_context([TASK]))
    first = source()
    assert name == "expert:noise=0.005" and isinstance(first, NoisyPolicy) and isinstance(first.base, ExpertPolicy)
    with pytest.raises(RuntimeError, match="needs the simulator state"):
        first.act(Observation(images={"primary": np.zeros((8, 8, 3), np.uint8)}, instruction="lift"))
    settings = EvalSettings(SimConfig(image_size=16, cameras=["primary"], max_episode_steps=MAX_STEPS), num_envs=2,
                            vector="async", progress=False)
    res = run_policy(source, plan_episodes(["LiftCube"], ["none"], 2), settings, name=name)
    assert [(r.error, r.steps > 0) for r in res] == [(None, True), (None, True)]


# ------------------------------------------------------------------------------------------ the command
def _cli(args, cwd):
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    code = "from sim_envs.cli.eval import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _sync_expert_run(specs) -> list[tuple[str, int, bool]]:
    from sim_envs.evaluation import run_policy

    settings = EvalSettings(SimConfig(image_size=32, max_episode_steps=MAX_STEPS), num_envs=2, vector="sync", progress=False)
    return [(r.initial_state_hash, r.steps, r.success) for r in run_policy(ExpertPolicy(), specs, settings)]


def test_sync_vector_env_gives_the_same_episodes_as_async(run):
    """In-process envs (sync) and one process per env (async): same initial states, same expert outcomes."""
    sync = _fresh(_sync_expert_run, run["specs"])
    assert sync == [(r.initial_state_hash, r.steps, r.success) for r in run["results"]["expert"]]


@pytest.mark.slow
def test_vla_eval_command_writes_results_and_reports_bad_input(tmp_path):
    r = _cli(["policy=[expert,random]", "tasks=[LiftCube]", "levels=[none,low]", "seeds=1", "sim=fast",
              "sim.image_size=32", "sim.max_episode_steps=6", "num_envs=1", f"output_dir={tmp_path}"], tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for name in ("expert", "random"):
        info = json.loads((run_dir / name / "eval_info.json").read_text())
        assert info["aggregated"]["n_episodes"] == 2
        assert list(info["per_group"]["dr_level"]) == ["none", "low"]
    assert (run_dir / "success_vs_dr.png").is_file() and len(list((run_dir / "videos").glob("*.mp4"))) == 4
    assert "success rate [Wilson 95% CI]" in r.stderr

    bad = _cli(["tasks=[LiftCub]", f"output_dir={tmp_path}"], tmp_path)
    text = bad.stdout + bad.stderr
    assert bad.returncode == 2 and "Valid tasks" in text and "Did you mean 'LiftCube'" in text
    typo = _cli(["polcy=expert", f"output_dir={tmp_path}"], tmp_path)
    assert typo.returncode != 0 and "did you mean 'policy'" in typo.stderr
    for bad_levels in ("dr=all", "dr=[none,low]"):
        r = _cli([bad_levels, f"output_dir={tmp_path}"], tmp_path)
        assert r.returncode != 0 and "levels=[none,low,...]" in r.stdout + r.stderr, bad_levels


def test_a_vla_checkpoint_is_evaluated_through_make_policy(tmp_path):
    """A saved (untrained, tiny, chunked) VLA checkpoint: loaded lazily by path, batched over 2 envs, its
    4-action chunks executed open-loop, un-normalized actions accepted by the env."""
    torch = pytest.importorskip("torch")
    from sim_envs.baselines import policy_context
    from sim_envs.evaluation import run_policy
    from vla.policy import make_policy
    from vla.core.statistics import ArrayStatistics, DatasetStatistics
    from vla.model.presets import build_model

    torch.set_num_threads(1)
    model, processor = build_model("tiny", seed=0, decoding="parallel", action_chunk=4)
    rng = np.random.default_rng(0)
    acts = np.concatenate([rng.uniform(-0.02, 0.02, (200, 6)), rng.integers(0, 2, (200, 1))], 1)
    stats = DatasetStatistics(action=ArrayStatistics.compute(acts, mask=[True] * 6 + [False]),
                              proprio=ArrayStatistics.compute(rng.normal(size=(200, 8))),
                              num_transitions=200, num_trajectories=10)
    model.config.norm_stats = {"sim_lift": stats.to_dict()}
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)

    name, policy = make_policy(str(tmp_path), policy_context([TASK]))
    assert name == str(tmp_path) and policy.chunk_size == 4
    settings = EvalSettings(SimConfig(image_size=32, max_episode_steps=6), num_envs=2, vector="async", progress=False)
    res = run_policy(policy, plan_episodes(["LiftCube"], ["none"], 2), settings, name="tiny_vla")
    assert [(r.error, r.steps) for r in res] == [(None, 6), (None, 6)]
