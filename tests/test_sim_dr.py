"""Domain randomization: shipped levels load through the schema, sampling stays in range, levels change the
rendered scene and the physics, sensor noise and latency take effect, configs compose with hydra."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest

import sim_envs  # noqa: F401
from sim_envs.config import SimConfig, load_sim_config, make_env, register_configs
from sim_envs.domain_randomization import (
    DRConfig,
    PhysicsDRConfig,
    SceneDRConfig,
    SensorDRConfig,
    TableLayout,
    available_levels,
    load_dr_config,
    sample_dr_params,
)


def test_shipped_levels_load_and_grow():
    assert available_levels() == ["high", "low", "medium", "none"]
    cfgs = {lv: load_dr_config(lv) for lv in ("none", "low", "medium", "high")}
    assert all(isinstance(c, DRConfig) and c.level == lv for lv, c in cfgs.items())
    widths = [c.physics.friction_scale[1] - c.physics.friction_scale[0] for c in cfgs.values()]
    assert widths == sorted(widths) and widths[0] == 0
    assert cfgs["high"].sensor.action_latency_steps[1] == 2


def test_sampling_is_seeded_json_and_in_range():
    cfg = load_dr_config("high")
    a = sample_dr_params(cfg, np.random.default_rng(1), named_geoms=["cube"], n_lights=2)
    b = sample_dr_params(cfg, np.random.default_rng(1), named_geoms=["cube"], n_lights=2)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    for _ in range(50):
        p = sample_dr_params(cfg, np.random.default_rng(_), named_geoms=["cube"], n_lights=2)
        lo, hi = cfg.physics.object_mass_scale
        assert lo <= p["physics"]["object_mass_scale"] <= hi
        assert 0 <= p["sensor"]["action_latency_steps"] <= 2
        assert np.all(np.abs(p["visual"]["object_rgb_delta"]["cube"]) <= cfg.visual.object_rgb_jitter)
    none = sample_dr_params(load_dr_config("none"), np.random.default_rng(0), named_geoms=["cube"], n_lights=2)
    assert none["physics"] == {k: 1.0 for k in none["physics"]} and none["sensor"]["image_noise_std"] == 0


def test_shipped_levels_leave_the_scene_group_off_and_draw_nothing_for_it():
    for level in ("none", "low", "medium", "high"):
        p = sample_dr_params(load_dr_config(level), np.random.default_rng(3), named_geoms=["cube"], n_lights=2)
        assert p["scene"] == {"init_joint_delta": [0.0] * 7, "distractors": []}
    # Recorded episodes stay valid: the same seed draws what it drew before the group existed (values taken
    # from the code before it), and the rng is left where it was.
    for level, friction, after in (("low", 0.9002980167017672, 0.47130966518183137),
                                   ("high", 1.4734602747664127, 0.030346007662471197)):
        rng = np.random.default_rng(3)
        p = sample_dr_params(load_dr_config(level), rng, named_geoms=["cube"], n_lights=2)
        assert (p["physics"]["friction_scale"], rng.random()) == (friction, after)
    cfg = DRConfig(scene=SceneDRConfig(distractors=[1, 2], init_joint_jitter=0.1))
    with pytest.raises(ValueError, match="pass layout="):
        sample_dr_params(cfg, np.random.default_rng(0), named_geoms=["cube"], n_lights=2)
    layout = TableLayout([(np.array([0.45, 0.0]), np.array([0.55, 0.0]), 0.03)])
    p = sample_dr_params(cfg, np.random.default_rng(0), named_geoms=["cube"], n_lights=2, layout=layout)
    assert 1 <= len(p["scene"]["distractors"]) <= 2 and np.all(np.abs(p["scene"]["init_joint_delta"]) <= 0.1)
    assert layout.clearance(np.array([0.5, 0.1])) == pytest.approx(0.07)
    assert layout.clearance(np.array([0.4, 0.0])) == pytest.approx(0.02)
    assert json.loads(json.dumps(p)) == p


def test_bad_level_values_are_rejected():
    with pytest.raises(ValueError, match="friction_scale"):
        DRConfig(physics=PhysicsDRConfig(friction_scale=[1.5, 0.5]))
    with pytest.raises(ValueError, match="action_latency_steps"):
        DRConfig(sensor=SensorDRConfig(action_latency_steps=[2, 1]))
    with pytest.raises(ValueError, match="unknown domain-randomization level.*<dimension>@<magnitude>"):
        load_dr_config("ultra")
    with pytest.raises(ValueError, match=r"distractors must be \[low, high\] with 0 <= low <= high <= 4"):
        DRConfig(scene=SceneDRConfig(distractors=[0, 5]))
    with pytest.raises(ValueError, match="init_joint_jitter"):
        DRConfig(scene=SceneDRConfig(init_joint_jitter=-0.1))


def test_levels_change_images_and_model_and_none_restores_nominal():
    env = gymnasium.make("vla_sim/LiftCube-v0", image_size=48, dr_level="high")
    base = env.unwrapped
    nominal_friction = base.randomizer.nominal["geom_friction"][:, 0].copy()
    imgs, frictions = [], []
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        imgs.append(obs["primary"].astype(int))
        frictions.append(base.physics.model.geom_friction[0, 0] / nominal_friction[0])
    assert len({round(f, 6) for f in frictions}) == 3
    assert np.abs(imgs[0] - imgs[1]).mean() > 1.0
    # Replaying the level-none parameters of the same env restores the nominal model.
    none_params = sample_dr_params(load_dr_config("none"), np.random.default_rng(0), named_geoms=["cube"], n_lights=2)
    env.reset(seed=0, options={"dr_params": none_params})
    np.testing.assert_array_equal(base.physics.model.geom_friction[:, 0], nominal_friction)


def test_action_latency_delays_the_motion():
    env = gymnasium.make("vla_sim/LiftCube-v0", image_size=16)
    obs, info = env.reset(seed=0)
    params = json.loads(json.dumps(info["dr_params"]))
    params["sensor"]["action_latency_steps"] = 2
    up = np.array([0, 0, 0.03, 0, 0, 0, 1], np.float32)
    for latency, expect_move in ((0, True), (2, False)):
        params["sensor"]["action_latency_steps"] = latency
        obs, _ = env.reset(seed=0, options={"dr_params": params})
        z0 = obs["proprio"][2]
        obs, *_ = env.step(up)
        assert (obs["proprio"][2] - z0 > 0.01) == expect_move


def test_sim_configs_and_hydra_composition():
    assert load_sim_config("fast").image_size == 64
    with pytest.raises(ValueError, match="unknown sim config"):
        load_sim_config("huge")
    env = make_env("StackCube", sim="fast", dr="medium")
    obs, info = env.reset(seed=0)
    assert obs["primary"].shape == (64, 64, 3) and info["dr_params"]["level"] == "medium"

    from hydra import compose, initialize_config_module

    register_configs()
    with initialize_config_module(config_module="configs", version_base=None):
        cfg = compose(config_name=None, overrides=["+sim=fast", "+dr=low", "dr.physics.friction_scale=[0.8,1.2]"])
    from omegaconf import OmegaConf

    sim = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SimConfig), cfg.sim))
    dr = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DRConfig), cfg.dr))
    assert sim.image_size == 64 and dr.level == "low" and dr.physics.friction_scale == [0.8, 1.2]
