"""Scripted experts solve every task at DR level none (a few seeds here; bench/sim.py measures 20+ per task)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import sim_envs
from sim_envs.experts import EXPERTS, make_expert
from sim_envs.tasks import TASK_CLASSES
from vla import Policy


def test_every_task_has_an_expert():
    assert set(EXPERTS) == set(TASK_CLASSES)


@pytest.mark.parametrize("task", sim_envs.TASKS)
def test_expert_succeeds(task):
    env = gymnasium.make(task, image_size=16, cameras=("primary",))
    expert = make_expert(env)
    assert isinstance(expert, Policy)
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        expert.reset(info["instruction"])
        done = False
        while not done:
            action = expert.act(sim_envs.to_observation(obs, info))
            assert action.shape == (7,) and np.all(np.isfinite(action))
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        assert info["success"], f"{task} expert failed on seed {seed}"
    env.close()


def test_make_expert_rejects_other_envs():
    with pytest.raises(TypeError, match="TabletopEnv"):
        make_expert(gymnasium.make("CartPole-v1"))
