"""Perturbation sweep levels: each dimension perturbs only its part of the episode, magnitude 0 is the nominal
scene, distractors sit on free table spots, episodes replay from dr_params, bad names fail clearly."""

from __future__ import annotations

import json
from dataclasses import asdict

import gymnasium
import numpy as np
import pytest

import sim_envs
from sim_envs.domain_randomization import DRConfig, SceneDRConfig, load_dr_config
from sim_envs.perturbations import (
    DIMENSIONS,
    MAGNITUDES,
    level_config,
    parse_level,
    perturbation_config,
    sweep_levels,
)
from sim_envs.scene import DISTRACTOR_PREFIX, DISTRACTOR_SHAPES, N_DISTRACTORS


def _flat(cfg: DRConfig) -> dict:
    d = asdict(cfg)
    return {f"{g}.{k}": v for g in ("visual", "physics", "sensor", "scene") for k, v in d[g].items()}


def _env(task: str = "LiftCube", size: int = 32):
    return gymnasium.make(sim_envs.task_id(task), image_size=size)


def _reset(env, cfg: DRConfig, seed: int = 1):
    env.unwrapped.dr_config = cfg
    obs, info = env.reset(seed=seed)
    base = env.unwrapped
    return obs, info, base.privileged_state(), base.physics.model


def _diff(a, b) -> float:
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).max())


def test_levels_are_data_owning_disjoint_fields():
    nominal = _flat(DRConfig())
    owners: dict[str, str] = {}
    for dim in DIMENSIONS:
        assert len(MAGNITUDES[dim]) == 3
        for mag in (1, 2, 3):
            cfg = perturbation_config(dim, mag)
            assert cfg.level == f"{dim}@{mag}" and parse_level(cfg.level) == (dim, mag)
            changed = {k for k, v in _flat(cfg).items() if v != nominal[k]}
            assert changed and changed <= set(MAGNITUDES[dim][0]), (dim, mag, changed)
            for key in changed:
                assert owners.setdefault(key, dim) == dim
        assert _flat(perturbation_config(dim, 0)) == nominal
    # middle = medium and large = high wherever the combined levels have the field
    for mag, shipped in ((2, "medium"), (3, "high")):
        ref = _flat(load_dr_config(shipped))
        for dim in ("camera", "lighting", "texture", "noise", "physics"):
            assert all(ref[k] == v for k, v in MAGNITUDES[dim][mag - 1].items()), (dim, mag)

    levels = sweep_levels(["camera", "latency"], [0, 2])
    assert list(levels) == ["nominal", "camera@2", "latency@2"]
    assert len(sweep_levels()) == 1 + 3 * len(DIMENSIONS)
    assert level_config("high") == load_dr_config("high") and load_dr_config("robot_init@3").scene.init_joint_jitter == 0.2
    assert level_config("nominal") == DRConfig(level="nominal")


@pytest.mark.parametrize("call, match", [
    (lambda: perturbation_config("weather", 1), r"unknown perturbation dimension 'weather'.*camera.*robot_init"),
    (lambda: perturbation_config("camera", 4), r"integer 0-3 .*3 = large"),
    (lambda: perturbation_config("camera", 1.5), r"integer 0-3"),
    (lambda: sweep_levels(["camera", "wind"]), r"'wind'.*valid dimensions"),
    (lambda: sweep_levels([]), r"at least one"),
    (lambda: parse_level("camera"), r"<dimension>@<magnitude 0-3>.*camera"),
    (lambda: parse_level("camera@x"), r"<dimension>@<magnitude"),
    (lambda: level_config("camera@7"), r"integer 0-3"),
    (lambda: level_config("ultra"), r"unknown level 'ultra'.*robot_init.*none"),
    (lambda: load_dr_config("lighting@9"), r"integer 0-3"),
])
def test_bad_names_fail_naming_the_valid_ones(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_each_dimension_changes_only_its_part():
    env = _env()
    obs0, info0, st0, model = _reset(env, perturbation_config("camera", 0))
    nominal = {k: getattr(model, k).copy() for k in ("geom_friction", "body_mass", "cam_pos", "light_diffuse",
                                                     "geom_matid", "actuator_gainprm")}
    for dim in DIMENSIONS:
        obs, info, st, model = _reset(env, perturbation_config(dim, 2))
        image = _diff(obs["primary"], obs0["primary"])
        assert (image > 0) == (dim not in ("physics", "latency")), (dim, image)
        # The simulated state at step 0: only the arm's start pose moves the arm; nothing moves the task objects
        # beyond the settling of a heavier or lighter cube.
        assert (_diff(st["ee_pos"], st0["ee_pos"]) > 1e-3) == (dim == "robot_init"), dim
        assert _diff(st["object_pos"], st0["object_pos"]) < (1e-4 if dim == "physics" else 1e-9), dim
        # Observed proprio: the true one, plus noise only where the level adds it.
        assert (_diff(obs["proprio"], obs0["proprio"]) > 0) == (dim in ("noise", "robot_init")), dim
        assert (_diff(model.geom_friction, nominal["geom_friction"]) > 0) == (dim == "physics"), dim
        assert (_diff(model.cam_pos, nominal["cam_pos"]) > 0) == (dim == "camera"), dim
        assert (_diff(model.light_diffuse, nominal["light_diffuse"]) > 0) == (dim == "lighting"), dim
        assert len(env.unwrapped._latency) == (1 if dim == "latency" else 0), dim
        on_table = info["dr_params"]["scene"]["distractors"]
        assert len(on_table) == (2 if dim == "distractors" else 0), dim
    # magnitude 0 of every dimension is the nominal episode, bit for bit
    for dim in DIMENSIONS:
        obs, info, st, model = _reset(env, perturbation_config(dim, 0))
        for key in obs:
            np.testing.assert_array_equal(obs[key], obs0[key])
        assert {k: v for k, v in info["dr_params"].items() if k != "level"} == \
               {k: v for k, v in info0["dr_params"].items() if k != "level"}
    env.close()


def test_latency_delays_the_effect_of_an_action():
    env = _env(size=16)
    up = np.array([0, 0, 0.03, 0, 0, 0, 1], np.float32)
    for level, first_move in (("latency@0", 0), ("latency@2", 1), ("latency@3", 2)):
        obs, _, _, _ = _reset(env, level_config(level))
        z = [obs["proprio"][2]]
        for _ in range(3):
            obs, *_ = env.step(up)
            z.append(obs["proprio"][2])
        moved = [i for i in range(3) if z[i + 1] - z[i] > 0.01]
        assert moved and moved[0] == first_move, (level, np.round(z, 3))
    env.close()


@pytest.mark.parametrize("task", ["PlaceCubeOnPlate", "PushCube", "OpenDrawer"])
def test_distractors_sit_on_free_table_spots(task):
    env = _env(task, size=24)
    base = env.unwrapped
    model, data = base.physics.model, base.physics.data
    pool = {model.body(f"{DISTRACTOR_PREFIX}{i}").id for i in range(N_DISTRACTORS)}
    robot_root = model.body_rootid[model.body("robot_base").id]
    task_geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] not in pool
                  and model.geom_bodyid[g] != 0 and model.body_rootid[model.geom_bodyid[g]] != robot_root]
    counts = []
    for seed in range(6):
        obs0, *_ = _reset(env, perturbation_config("distractors", 0), seed)
        obs, info, _, _ = _reset(env, perturbation_config("distractors", 3), seed)
        placed = info["dr_params"]["scene"]["distractors"]
        counts.append(len(placed))
        assert _diff(obs["primary"], obs0["primary"]) > 0
        for d in placed:
            shape = DISTRACTOR_SHAPES[d["slot"]]
            pos = data.body(f"{DISTRACTOR_PREFIX}{d['slot']}").xpos
            assert abs(pos[2] - shape.half_height) < 2e-3 and np.allclose(pos[:2], d["xy"], atol=2e-3), (seed, d)
            for g in task_geoms:  # apart from every task part (bounding circles), and touching none
                gap = np.linalg.norm(pos[:2] - data.geom_xpos[g, :2]) - model.geom_rbound[g] - shape.footprint_radius
                assert gap > 0.015, (seed, d["slot"], model.geom(g).name)
        for a, b in zip(data.contact.geom1, data.contact.geom2):  # distractors touch the table, nothing else
            if model.geom_bodyid[a] in pool or model.geom_bodyid[b] in pool:
                assert "table" in (model.geom(a).name, model.geom(b).name), (seed, model.geom(a).name, model.geom(b).name)
    assert sum(counts) >= 4 * len(counts) - 2, counts  # the region fits all four nearly always
    env.close()


def test_episodes_replay_exactly_from_dr_params():
    cfg = DRConfig(level="both", scene=SceneDRConfig(distractors=[2, 4], init_joint_jitter=0.2))
    env = gymnasium.make(sim_envs.task_id("PlaceCubeOnPlate"), image_size=24, dr_config=cfg)
    obs, info = env.reset(seed=5)
    params = json.loads(json.dumps(info["dr_params"]))
    assert params["scene"]["distractors"] and any(params["scene"]["init_joint_delta"])
    step = np.array([0.02, -0.01, -0.02, 0, 0, 0, 1], np.float32)
    ref = [obs] + [env.step(step)[0] for _ in range(3)]
    # A nominal env holds the same pool, so the parameters alone rebuild the episode.
    other = gymnasium.make(sim_envs.task_id("PlaceCubeOnPlate"), image_size=24, dr_level="none")
    for e in (env, other):
        obs, info = e.reset(seed=5, options={"dr_params": params})
        for i, want in enumerate(ref):
            for key in want:
                np.testing.assert_array_equal(obs[key], want[key], err_msg=f"step {i} {key}")
            obs = e.step(step)[0]
    # Parameters recorded before the scene group existed replay the nominal scene.
    legacy = {k: v for k, v in params.items() if k != "scene"}
    obs_legacy, _ = other.reset(seed=5, options={"dr_params": legacy})
    obs_none, _ = other.reset(seed=5)
    for key in obs_none:
        np.testing.assert_array_equal(obs_legacy[key], obs_none[key])
    env.close(), other.close()
