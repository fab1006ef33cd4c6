"""gymnasium's own vector envs run the sim tasks (dict observations, per-env infos, privileged state via call).

AsyncVectorEnv needs `context="spawn"` (or "forkserver"): a process that has rendered holds an EGL/llvmpipe
context with worker threads, and a forked child deadlocks in it.
"""

from __future__ import annotations

import functools

import gymnasium
import numpy as np
import pytest

import sim_envs  # noqa: F401  (registers the ids)
from sim_envs.config import make_env
from sim_envs.experts import make_expert_for_task

SIZE = 32


def _make(task="LiftCube"):
    # A picklable factory (spawned workers import sim_envs, which registers the ids).
    return functools.partial(make_env, task, dr="low", image_size=SIZE)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_vector_env_steps_with_state_fed_experts(kind):
    if kind == "sync":
        envs = gymnasium.vector.SyncVectorEnv([_make(), _make()])
    else:
        envs = gymnasium.vector.AsyncVectorEnv([_make(), _make()], context="spawn")
    try:
        obs, info = envs.reset(seed=[3, 4])
        assert obs["primary"].shape == (2, SIZE, SIZE, 3) and obs["wrist"].dtype == np.uint8
        assert obs["proprio"].shape == (2, 8)
        assert list(info["seed"]) == [3, 4] and len(info["instruction"]) == 2
        experts = [make_expert_for_task("LiftCube") for _ in range(2)]
        states = envs.call("privileged_state")
        actions = np.stack([e.act_from_state(s) for e, s in zip(experts, states)])
        obs, reward, terminated, truncated, info = envs.step(actions)
        assert reward.shape == (2,) and obs["primary"].shape == (2, SIZE, SIZE, 3)
        assert set(info) >= {"instruction", "success"}
    finally:
        envs.close()


def test_vector_env_matches_single_env():
    single = gymnasium.make("vla_sim/PushCube-v0", image_size=SIZE, dr_level="low")
    o1, _ = single.reset(seed=9)
    envs = gymnasium.vector.SyncVectorEnv([_make("PushCube")])
    o2, _ = envs.reset(seed=9)
    np.testing.assert_array_equal(o1["primary"], o2["primary"][0])
    np.testing.assert_array_equal(o1["proprio"], o2["proprio"][0])
    envs.close()
