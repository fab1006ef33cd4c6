"""The end-effector delta controller: tracks commanded deltas, respects workspace/joint/velocity limits,
turns the gripper command into finger motion; the scene uses the real Panda model."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import sim_envs  # noqa: F401
from sim_envs.controller import ControllerConfig
from sim_envs.robot import mat_to_rpy, rpy_to_mat


@pytest.fixture(scope="module")
def env():
    e = gymnasium.make("vla_sim/LiftCube-v0", image_size=16, cameras=("primary",), terminate_on_success=False)
    yield e
    e.close()


def test_scene_uses_the_gymnasium_robotics_panda(env):
    model = env.unwrapped.physics.model
    names = [model.joint(i).name for i in range(model.njnt)]
    assert [n for n in names if n.startswith("robot:panda0_joint")] == [f"robot:panda0_joint{i}" for i in range(1, 8)]
    assert model.nu == 9 and model.ncam == 2


def test_tracks_translation_and_yaw(env):
    obs, _ = env.reset(seed=0)
    p0 = obs["proprio"].copy()
    step = np.array([0.02, -0.015, 0.01, 0, 0, 0.1, 1], np.float32)
    for _ in range(4):
        obs, *_ = env.step(step)
    moved = obs["proprio"][:3] - p0[:3]
    np.testing.assert_allclose(moved, 4 * step[:3], atol=0.006)
    assert abs(obs["proprio"][5] - p0[5] - 0.4) < 0.03
    assert np.all(np.abs(obs["proprio"][3:5]) < 0.03), "roll/pitch must stay put when not commanded"


def test_workspace_and_per_step_limits(env):
    obs, _ = env.reset(seed=0)
    cfg = env.unwrapped.controller.config
    z0 = obs["proprio"][2]
    obs, *_ = env.step(np.array([0, 0, -0.5, 0, 0, 0, 1], np.float32))  # clipped to max_delta_pos
    assert z0 - obs["proprio"][2] < cfg.max_delta_pos + 0.005
    for _ in range(12):
        obs, *_ = env.step(np.array([0, 0, -0.05, 0, 0, 0, 1], np.float32))
    assert obs["proprio"][2] > env.unwrapped.controller.workspace[0][2] - 0.006, "the grip site must not go below the workspace floor"
    phys = env.unwrapped.physics
    q = phys.arm_q()
    assert np.all(q >= phys.arm_range[:, 0]) and np.all(q <= phys.arm_range[:, 1])


def test_joint_velocity_limit_caps_joint_steps(env):
    env.reset(seed=0)
    ctrl = env.unwrapped.controller
    q0 = env.unwrapped.physics.arm_q()
    env.step(np.array([0.05, 0.05, 0.05, 0.3, 0.3, 0.3, 1], np.float32))
    dq = np.abs(env.unwrapped.physics.arm_q() - q0)
    assert np.all(dq <= np.asarray(env.unwrapped.robot.velocity_limits) * ctrl.control_dt + 0.02)


def test_gripper_closes_and_opens(env):
    obs, _ = env.reset(seed=0)
    assert obs["proprio"][6:].sum() > 0.075
    for _ in range(5):
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 0.0], np.float32))
    assert obs["proprio"][6:].sum() < 0.01
    for _ in range(5):
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32))
    assert obs["proprio"][6:].sum() > 0.07


def test_control_rate_is_configurable():
    env = gymnasium.make("vla_sim/LiftCube-v0", image_size=16, control_hz=20)
    assert abs(env.unwrapped.control_dt - 0.05) < 1e-9
    with pytest.raises(ValueError, match="control_hz"):
        ControllerConfig(control_hz=0)


def test_rpy_roundtrip():
    rpy = np.array([0.2, -0.3, 1.1])
    np.testing.assert_allclose(mat_to_rpy(rpy_to_mat(rpy)), rpy, atol=1e-12)
