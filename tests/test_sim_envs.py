"""Contract tests for every registered sim task (dm_control suite_test style): create, reset, step, spaces,
determinism, randomized initial states, exact replay from dr_params, info keys, bad input."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest

import sim_envs
from sim_envs.env import PROPRIO_DIM
from vla import ContractError, Observation
from vla.core.gym import observation_from_gym

SIZE = 48


@pytest.fixture(scope="module", params=sim_envs.TASKS)
def env(request):
    e = gymnasium.make(request.param, image_size=SIZE, dr_level="low")
    yield e
    e.close()


def _rollout(env, seed, n=3, options=None):
    obs, info = env.reset(seed=seed, options=options)
    frames = [obs]
    rng = np.random.default_rng(0)
    for _ in range(n):
        action = np.zeros(7, np.float32)
        action[:3] = rng.uniform(-0.02, 0.02, 3)
        action[6] = 1.0
        obs, *_ = env.step(action)
        frames.append(obs)
    return frames, info


def test_registry_lists_at_least_five_tasks_with_ids():
    assert len(sim_envs.TASKS) >= 5
    assert all(t.startswith("vla_sim/") and t.endswith("-v0") for t in sim_envs.TASKS)
    assert sim_envs.task_id("LiftCube") == "vla_sim/LiftCube-v0" == sim_envs.task_id("vla_sim/LiftCube-v0")
    rows = sim_envs.describe_tasks()
    assert [r["id"] for r in rows] == list(sim_envs.TASKS)
    assert all(r["description"] and len(r["templates"]) >= 3 for r in rows)


def test_reset_step_match_contract(env):
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for cam in ("primary", "wrist"):
        assert obs[cam].shape == (SIZE, SIZE, 3) and obs[cam].dtype == np.uint8
        assert obs[cam].std() > 1.0, f"{cam} image is blank"
    assert obs["proprio"].shape == (PROPRIO_DIM,) and obs["proprio"].dtype == np.float32
    assert np.all(np.isfinite(obs["proprio"]))
    assert isinstance(info["instruction"], str) and info["instruction"]
    assert info["success"] is False and info["seed"] == 0
    json.dumps(info["dr_params"])  # JSON-serializable, goes into episode_metadata
    o = observation_from_gym(obs, info)
    assert isinstance(o, Observation)
    o.validate(cameras=("primary", "wrist"), image_size=(SIZE, SIZE), proprio_dim=PROPRIO_DIM)
    obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 0.01, 0, 0, 0, 1], np.float32))
    assert env.observation_space.contains(obs)
    assert set(info) >= {"instruction", "success"} and isinstance(reward, float)
    assert not terminated and not truncated


def test_same_seed_same_episode_and_different_seeds_differ(env):
    a, info_a = _rollout(env, seed=5)
    b, info_b = _rollout(env, seed=5)
    for fa, fb in zip(a, b):
        for k in fa:
            np.testing.assert_array_equal(fa[k], fb[k])
    assert info_a["instruction"] == info_b["instruction"]
    layouts = set()
    for seed in range(4):
        env.reset(seed=seed)
        layouts.add(json.dumps(env.unwrapped.task_params, sort_keys=True))
    assert len(layouts) == 4, "initial states must be randomized across seeds"


def test_replay_from_dr_params_is_exact(env):
    first, info = _rollout(env, seed=11)
    # Another episode in between changes the model; replaying the recorded params restores it exactly.
    env.reset(seed=12)
    params = json.loads(json.dumps(info["dr_params"]))  # as stored on disk
    again, info2 = _rollout(env, seed=11, options={"dr_params": params})
    assert info2["dr_params"] == params
    for fa, fb in zip(first, again):
        for k in fa:
            np.testing.assert_array_equal(fa[k], fb[k])


def test_bad_actions_raise_contract_errors(env):
    env.reset(seed=0)
    with pytest.raises(ContractError, match="non-finite"):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0, 1]))
    with pytest.raises(ContractError, match="shape"):
        env.step(np.zeros(6))
    with pytest.raises(ContractError, match="gripper"):
        env.step(np.array([0, 0, 0, 0, 0, 0, 2.0]))


def test_unknown_task_level_and_options_fail_clearly():
    with pytest.raises(gymnasium.error.Error):
        gymnasium.make("vla_sim/FlyToTheMoon-v0")
    with pytest.raises(ValueError, match="registered"):
        sim_envs.task_id("FlyToTheMoon")
    with pytest.raises(ValueError, match="unknown domain-randomization level 'extreme'.*none"):
        gymnasium.make("vla_sim/LiftCube-v0", dr_level="extreme")
    with pytest.raises(ValueError, match="cameras"):
        gymnasium.make("vla_sim/LiftCube-v0", cameras=("side",))
    env = gymnasium.make("vla_sim/LiftCube-v0", image_size=16)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(seed=0, options={"dr_parms": {}})
    with pytest.raises(ValueError, match="dr_params is malformed"):
        env.reset(seed=0, options={"dr_params": {"level": "low"}})


def test_primary_only_and_render_mode():
    env = gymnasium.make("vla_sim/PushCube-v0", image_size=(32, 40), cameras=("primary",), render_mode="rgb_array")
    obs, _ = env.reset(seed=1)
    assert set(obs) == {"primary", "proprio"} and obs["primary"].shape == (32, 40, 3)
    assert env.render().shape == (32, 40, 3)
    env.close()


def test_time_limit_truncates():
    env = gymnasium.make("vla_sim/LiftCube-v0", image_size=16, max_episode_steps=2)
    env.reset(seed=0)
    hold = np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32)
    assert env.step(hold)[3] is False
    assert env.step(hold)[3] is True


def test_observations_share_no_memory(env):
    first, _ = env.reset(seed=0)
    second, *_ = env.step(np.array([0, 0, 0.02, 0, 0, 0, 1], np.float32))
    for a in first.values():
        for b in second.values():
            assert not np.shares_memory(a, b)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, sim_envs; assert 'mujoco' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_leaves_mujoco_gl_to_the_entry_points_and_registers_the_policy_kinds():
    """A library import must not choose the user's renderer (`vla.cli.hydra_app.default_headless_gl` does, in
    the commands); it does register sim_envs' policy kinds."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY")}
    code = ("import os, sim_envs; from vla.policy import registered_policies; "
            "assert 'MUJOCO_GL' not in os.environ, os.environ['MUJOCO_GL']; "
            "assert {'expert', 'no_vision'} <= set(registered_policies())")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_env_reports_the_task_objects_state_and_not_the_distractors():
    import gymnasium

    import sim_envs  # noqa: F401

    env = gymnasium.make("vla_sim/LiftCube-v0", dr_level="high", image_size=32, cameras=["primary"])
    _, info = env.reset(seed=4)
    inner = env.unwrapped
    assert inner.object_names == ["cube"]  # DR high parks distractors on the table: they are not task objects
    np.testing.assert_allclose(info["object_state"], inner.physics.body_pos("cube"), atol=1e-6)
    for _ in range(3):
        _, _, _, _, info = env.step(np.array([0, 0, 0.02, 0, 0, 0, 1], np.float32))
    np.testing.assert_allclose(info["object_state"], inner.physics.body_pos("cube"), atol=1e-6)
    env.close()


def test_object_state_puts_the_named_object_first():
    import gymnasium

    import sim_envs  # noqa: F401

    env = gymnasium.make("vla_sim/LiftNamedCube-v0", dr_level="low", image_size=32, cameras=["primary"])
    inner = env.unwrapped
    firsts = set()
    for target in range(3):  # the same scene, each cube named in turn
        _, info = env.reset(seed=11, options={"target": target})
        named = inner.task.candidate_bodies(target)[0]
        assert inner.object_order()[0] == named and sorted(inner.object_order()) == sorted(inner.object_names)
        np.testing.assert_allclose(info["object_state"][:3], inner.physics.body_pos(named), atol=1e-6)
        np.testing.assert_allclose(np.sort(info["object_state"]),
                                   np.sort(np.concatenate([inner.physics.body_pos(b) for b in inner.object_names])),
                                   atol=1e-6)
        firsts.add(named)
    assert len(firsts) == 3
    # a place task ends the state with its named goal: without the plate, "on the plate" cannot be judged
    env = gymnasium.make("vla_sim/PlaceCubeOnNamedPlate-v0", dr_level="low", image_size=32, cameras=["primary"])
    inner = env.unwrapped
    for target in range(4):  # 2 cubes x 2 plates
        _, info = env.reset(seed=11, options={"target": target})
        cube, plate = inner.task._pair(target)
        state = info["object_state"]
        assert state.shape == (3 * len(inner.object_names) + 3,)
        np.testing.assert_allclose(state[:3], inner.physics.body_pos(cube), atol=1e-6)
        np.testing.assert_allclose(state[-3:-1], inner.physics.body_pos(plate)[:2], atol=1e-6)
    env.close()
