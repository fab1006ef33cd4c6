"""Robot descriptions (`sim_envs.robots`): both arms build as real MuJoCo scenes, the controller tracks on both,
the experts succeed on both, the simulated bridge arm names the robot's joints, and a description naming a
joint or site its model lacks fails with the field and the fix."""

from __future__ import annotations

import dataclasses

import gymnasium
import numpy as np
import pytest

import sim_envs  # noqa: F401
from sim_envs.config import SimConfig
from sim_envs.experts import make_expert
from sim_envs.robots import ROBOTS, get_robot
from sim_envs.robots.description import RobotDescription
from sim_envs.scene import SceneBuilder

pytestmark = pytest.mark.renders  # envs render their observations (keep this module in the render invocation)

ROBOT_NAMES = sorted(ROBOTS)


def _env(robot: str, task: str = "LiftCube", **kwargs):
    return gymnasium.make(f"vla_sim/{task}-v0", robot=robot, image_size=16, cameras=("primary",), **kwargs)


@pytest.fixture(scope="module", params=ROBOT_NAMES)
def env(request):
    e = _env(request.param, terminate_on_success=False)
    yield e
    e.close()


def test_registry_and_unknown_robot():
    assert {"panda", "ur5e"} <= set(ROBOTS)
    assert get_robot(ROBOTS["ur5e"]) is ROBOTS["ur5e"]
    with pytest.raises(ValueError, match=r"unknown robot 'ur6'.*panda.*ur5e"):
        SimConfig(robot="ur6")


def test_scene_has_the_described_robot_driven_by_position_servos(env):
    base = env.unwrapped
    robot, model, phys = base.robot, base.physics.model, base.physics
    n = len(robot.arm_joints)
    assert n == {"panda": 7, "ur5e": 6}[robot.name]
    assert model.nu == n + len(robot.finger_joints)
    # Every actuator is a position servo (force = kp * (ctrl - q)): the UR5e's torque motors were converted.
    np.testing.assert_allclose(model.actuator_biasprm[:, 1], -model.actuator_gainprm[:, 0])
    assert np.all(model.actuator_gainprm[:, 0] > 0)
    assert all(model.body_gravcomp[model.jnt_bodyid[model.joint(j).id]] == 1.0 for j in robot.arm_joints)
    for cam in ("primary", "wrist"):
        assert model.camera(cam).id >= 0
    obs, _ = env.reset(seed=0)
    assert obs["proprio"].shape == (8,)
    np.testing.assert_allclose(phys.arm_q(), robot.q_home, atol=0.02)
    # Home: grip site about 0.25 m above the table in front of the robot, pointing down (rpy near 0), open.
    assert abs(obs["proprio"][2] - 0.25) < 0.02 and 0.35 < obs["proprio"][0] < 0.55
    assert np.all(np.abs(obs["proprio"][3:6]) < 0.05)
    assert phys.gripper_opening() > 0.95


def test_controller_tracks_translation_and_yaw(env):
    obs, _ = env.reset(seed=0)
    p0 = obs["proprio"].copy()
    step = np.array([0.02, -0.015, 0.01, 0, 0, 0.1, 1], np.float32)
    for _ in range(4):
        obs, *_ = env.step(step)
    np.testing.assert_allclose(obs["proprio"][:3] - p0[:3], 4 * step[:3], atol=0.006)
    assert abs(obs["proprio"][5] - p0[5] - 0.4) < 0.03
    assert np.all(np.abs(obs["proprio"][3:5]) < 0.03), "roll/pitch must stay put when not commanded"
    ctrl = env.unwrapped.controller
    low, _ = ctrl.workspace
    for _ in range(10):
        obs, *_ = env.step(np.array([0, 0, -0.05, 0, 0, 0, 1], np.float32))
    assert obs["proprio"][2] > low[2] - 0.006, "the grip site must not go below the robot's workspace floor"


def test_gripper_closes_and_opens(env):
    obs, _ = env.reset(seed=0)
    travel = env.unwrapped.robot.finger_travel
    assert obs["proprio"][6:].sum() > 0.95 * travel
    for _ in range(5):
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 0.0], np.float32))
    assert obs["proprio"][6:].sum() < 0.1 * travel
    for _ in range(5):
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32))
    assert obs["proprio"][6:].sum() > 0.9 * travel


@pytest.mark.parametrize("robot", ROBOT_NAMES)
@pytest.mark.parametrize("task", ["LiftCube", "PlaceCubeOnPlate"])
def test_expert_succeeds_on_both_robots(robot, task):
    e = _env(robot, task, dr_level="low")
    try:
        for seed in (1_000_000, 1_000_001):
            obs, info = e.reset(seed=seed)
            expert = make_expert(e)
            expert.reset(info["instruction"])
            done = False
            while not done:
                obs, _, term, trunc, info = e.step(expert.act(None))
                done = term or trunc
            assert info["success"], f"{robot} expert failed {task} seed {seed}"
    finally:
        e.close()


def test_dr_params_of_another_robot_are_refused():
    panda, ur5e = _env("panda", dr_level="medium"), _env("ur5e")
    try:
        _, info = panda.reset(seed=3)
        params = {**info["dr_params"], "scene": {**info["dr_params"]["scene"], "init_joint_delta": [0.01] * 7}}
        with pytest.raises(ValueError, match=r"init_joint_delta must hold 6 numbers.*'ur5e'.*another robot"):
            ur5e.reset(seed=3, options={"dr_params": params})
    finally:
        panda.close()
        ur5e.close()


@pytest.mark.parametrize("field, value, kind", [
    ("arm_joints", ("ur5e_shoulder_pan_joint", "ur5e_shoulder_lift_joint", "ur5e_elbow_joint", "ur5e_wrist_1_joint",
                    "ur5e_wrist_2_joint", "ur5e_wrist_9_joint"), "joint"),
    ("hidden_sites", ("ur5e_gripper_no_such_site",), "site"),
    ("hand_body", "ur5e_no_hand", "body"),
])
def test_description_naming_a_missing_part_fails_with_field_and_fix(field, value, kind):
    bad = dataclasses.replace(get_robot("ur5e"), **{field: value})
    with pytest.raises(ValueError, match=rf"robot 'ur5e': {field} names {kind}\(s\) .* fix RobotDescription\.{field}"):
        SceneBuilder.tabletop(bad)


def test_description_with_inconsistent_lengths_fails():
    with pytest.raises(ValueError, match=r"q_home has 7 values but 6 are needed.*fix RobotDescription.q_home"):
        dataclasses.replace(get_robot("ur5e"), q_home=(0.0,) * 7)
    with pytest.raises(ValueError, match="at least 6"):
        dataclasses.replace(get_robot("panda"), arm_joints=get_robot("panda").arm_joints[:5], q_home=(0.0,) * 5,
                            velocity_limits=(1.0,) * 5)
    assert isinstance(get_robot("panda"), RobotDescription)


class _Recorder:
    """The transport edge of the simulated arm: keeps what would go out on DDS, by topic."""

    def __init__(self):
        self.sent: dict[str, list] = {}

    def publisher(self, topic, msg_type, qos):
        return lambda msg: self.sent.setdefault(topic, []).append(msg)

    def subscribe(self, topic, msg_type, qos, callback):
        pass


@pytest.mark.parametrize("joint_states", ["robot", "proprio"])
def test_sim_arm_publishes_the_robots_joint_names(joint_states):
    from robot_bridge.config import BridgeConfig
    from robot_bridge.sim_arm import SimArm, SimArmConfig

    bridge = BridgeConfig()
    bridge.output.command = "twist"
    cfg = SimArmConfig(env_id="vla_sim/LiftCube-v0", joint_states=joint_states,
                       env_kwargs={"robot": "ur5e", "image_size": 16, "cameras": ["primary"]})
    transport = _Recorder()
    arm = SimArm(cfg, bridge, transport)
    try:
        obs, _ = arm.env.reset(seed=0)
        arm._set_obs(obs)
        msg = transport.sent[bridge.topics.joint_states][-1]
        if joint_states == "robot":
            ur5e = get_robot("ur5e")
            assert list(msg.name) == [*ur5e.arm_joints, *ur5e.finger_joints]
            np.testing.assert_allclose(msg.position[:6], arm.env.unwrapped.physics.arm_q())
            assert len(msg.velocity) == 8
        else:
            assert list(msg.name) == [f"proprio_{i}" for i in range(8)]
            np.testing.assert_allclose(msg.position, obs["proprio"], rtol=1e-6)
    finally:
        arm.env.close()
    with pytest.raises(ValueError, match="joint_states must be one of"):
        SimArmConfig(joint_states="names")


def test_another_robots_dataset_gets_its_own_name():
    from sim_envs.collect import default_dataset_name

    assert default_dataset_name(["LiftCube"], "low") == "sim_liftcube_low"  # the Panda's names are unchanged
    assert default_dataset_name(["vla_sim/LiftCube-v0"], "low", "ur5e") == "sim_ur5e_liftcube_low"
