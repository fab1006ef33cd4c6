"""Sim in the loop: the bridge drives the simulated arm (a child process) on loopback, over direct DDS or over
rclpy (a real ROS 2 Kilted: `ros` marker, runs under .venv-ros), and the episodes are the same as a direct
rollout of the env with the same policy and seeds."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("cyclonedds")
pytest.importorskip("mujoco")
gymnasium = pytest.importorskip("gymnasium")

from robot_bridge.app import BridgeAppConfig, run_sim_in_loop, sim_in_loop_config  # noqa: E402
from vla.core.types import Policy  # noqa: E402

TARGET = np.array([0.5, 0.1, 0.25])
SEEDS = [1_000_000, 1_000_001]
STEPS = 12


class ReachPolicy(Policy):
    """Deterministic and observation-dependent: move the gripper towards TARGET (proprio[:3] is its xyz)."""

    cameras = ("primary", "wrist")

    def act(self, obs):
        a = np.zeros(7, np.float32)
        a[:3] = np.clip(0.5 * (TARGET - obs.proprio[:3]), -0.04, 0.04)
        a[6] = 1.0
        return a


def make_reach_policy() -> Policy:
    return ReachPolicy()


def _app_config(domain: int, record_to: str = "", transport: str = "dds") -> BridgeAppConfig:
    env_kwargs = {"dr_level": "none", "image_size": 64, "cameras": ["primary", "wrist"], "max_episode_steps": STEPS}
    cfg = sim_in_loop_config({"kind": "callable", "target": "test_bridge_sim_loop:make_reach_policy"}, seeds=SEEDS,
                             env_kwargs=env_kwargs, domain_id=domain, record_to=record_to)
    cfg.transport = transport
    return cfg


def _direct_rollouts() -> list[dict]:
    import sim_envs  # noqa: F401  (registers the ids)
    from vla.core.gym import observation_from_gym

    env = gymnasium.make("vla_sim/LiftCube-v0", dr_level="none", image_size=64, cameras=("primary", "wrist"),
                         max_episode_steps=STEPS)
    out, pol = [], ReachPolicy()
    for seed in SEEDS:
        obs, info = env.reset(seed=seed)
        steps = 0
        while True:
            obs, _, term, trunc, info = env.step(pol.act(observation_from_gym(obs, info)))
            steps += 1
            if term or trunc:
                break
        out.append({"steps": steps, "success": bool(info["success"]), "final_proprio": obs["proprio"].tolist()})
    env.close()
    return out


def _vla_eval_results() -> list[dict]:
    """The same seeds through vla-eval's own runner (sim_envs.evaluation), for its scoring."""
    from sim_envs.config import SimConfig
    from sim_envs.evaluation import EvalSettings, plan_episodes, run_policy

    specs = plan_episodes(["vla_sim/LiftCube-v0"], ["none"], SEEDS)
    settings = EvalSettings(SimConfig(image_size=64, cameras=["primary", "wrist"], max_episode_steps=STEPS), progress=False)
    return [{"seed": r.seed, "success": r.success, "steps": r.steps, "instruction": r.instruction, "error": r.error}
            for r in run_policy(ReachPolicy(), specs, settings, name="reach")]


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["dds", pytest.param("rclpy", marks=pytest.mark.ros)])
def test_sim_in_the_loop_matches_direct_rollouts(tmp_path, transport):
    domain = 130 + os.getpid() % 80  # private DDS domain (130-209), apart from test_bridge_faults.py
    summary = run_sim_in_loop(_app_config(domain, record_to=str(tmp_path / "bag"), transport=transport), tmp_path)
    assert summary["transport"] == transport
    # direct rollouts in a fresh process: EGL contexts do not mix well with what other tests loaded here
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        direct = ex.submit(_direct_rollouts).result(timeout=300)
        scored = ex.submit(_vla_eval_results).result(timeout=300)
    assert [e["seed"] for e in summary["episodes"]] == SEEDS
    # lockstep never had to stop for a missing frame (such a stop is a zero step of the simulator)
    assert "lockstep" not in summary["status_reasons"], summary["status_reasons"]
    for got, ref in zip(summary["episodes"], direct):
        assert got["end"] == "truncated" and got["steps"] == ref["steps"] == STEPS
        assert got["success"] == ref["success"]
        # lockstep: the same actions on the same observations, so the arm ends exactly where the direct
        # rollout ends (the twist round trip a / dt * dt is exact to float32)
        np.testing.assert_allclose(got["final_proprio"], ref["final_proprio"], atol=1e-6)
    # scored like vla-eval: same seeds, same instruction, success and episode length
    assert [(r["seed"], r["success"], r["steps"], r["instruction"], r["error"]) for r in scored] == [
        (e["seed"], e["success"], e["steps"], e["instruction"], None) for e in summary["episodes"]]
    assert np.linalg.norm(np.asarray(summary["episodes"][0]["final_proprio"][:3]) - TARGET) < 0.1  # it did move
    lat = summary["obs_to_command_ms"]
    assert lat["n"] >= len(SEEDS) * STEPS
    assert (tmp_path / "summary.json").is_file()
    assert summary["status_reasons"].get("running", 0) >= len(SEEDS) * STEPS

    # the recorded session converts into one episode per sim episode (lifecycle spans), with the executed
    # commands as actions: the reach motion towards TARGET
    from robot_bridge.convert import ConvertConfig, ConvertTopics, bag_to_episodes

    topics = ConvertTopics(cameras={"primary": "/camera/primary/image_raw", "wrist": "/camera/wrist/image_raw"})
    eps = bag_to_episodes(tmp_path / "bag", ConvertConfig(image_size=[64, 64], topics=topics, align="commands"))
    assert len(eps) == len(SEEDS)
    for ep in eps:  # exact: each step is an executed command and the observation it answered
        assert len(ep) == STEPS and ep.state.shape[1] == 8 and ep.images["wrist"].shape[1:] == (64, 64, 3)
        np.testing.assert_allclose(ep.action[:, :3], np.clip(0.5 * (TARGET - ep.state[:, :3]), -0.04, 0.04), atol=1e-6)
    # 10 Hz grid; a lockstep frame keeps its capture stamp until the next step, which on a loaded CPU can
    # come later than the default 2-period gap limit (that would split an episode)
    eps = bag_to_episodes(tmp_path / "bag", ConvertConfig(image_size=[64, 64], topics=topics, max_age_periods=10))
    assert len(eps) == len(SEEDS) and all(abs(len(ep) - STEPS) <= 3 for ep in eps)
