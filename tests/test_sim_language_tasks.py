"""Tasks where the instruction decides: the swap (same seed, other target = same scene, other instruction), success
judged on the named target, wrong-target when the expert acts on another candidate, template splits, bad options."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest

import sim_envs
from sim_envs.env import TabletopEnv
from sim_envs.eval_envs import EvalSettings, make_vector_env
from sim_envs.config import SimConfig
from sim_envs.experts import make_expert_for_task
from sim_envs.tasks import TASK_CLASSES
from sim_envs.tasks.lift import LiftCube

LANGUAGE_TASKS = ("LiftNamedCube", "LiftNamedShape", "PlaceCubeOnNamedPlate", "PlaceSideCubeOnPlate", "LiftOrPushCube")
SIZE = 32


def _env(task: str, **kw) -> gymnasium.Env:
    return gymnasium.make(f"vla_sim/{task}-v0", image_size=SIZE, **kw)


def _layout(env) -> dict:
    return {k: v for k, v in env.unwrapped.task_params.items() if k not in ("target", "template", "templates")}


@pytest.mark.parametrize("task", LANGUAGE_TASKS)
def test_every_target_shares_the_scene_and_changes_the_instruction(task):
    env = _env(task, dr_level="low")  # DR and sensor noise on: their streams must not see the target either
    obs0, info0 = env.reset(seed=7)
    n, candidates = info0["num_targets"], json.loads(info0["candidates_json"])
    assert n == len(candidates) >= 2 and info0["wrong_target"] is False and not info0["success"]
    layout, template, instructions = _layout(env), env.unwrapped.task_params["template"], set()
    for k in range(n):
        obs, info = env.reset(seed=7, options={"target": k})
        assert info["target"] == k and info["candidates_json"] == info0["candidates_json"]
        for cam in ("primary", "wrist"):
            np.testing.assert_array_equal(obs[cam], obs0[cam])
        np.testing.assert_array_equal(obs["proprio"], obs0["proprio"])
        assert _layout(env) == layout and info["dr_params"] == info0["dr_params"]
        assert env.unwrapped.task_params["template"] == template  # the wording stays, the referent changes
        instructions.add(info["instruction"])
        if k == info0["target"]:  # the drawn target is one of them, with the same wording
            assert info["instruction"] == info0["instruction"]
    assert len(instructions) == n
    env.close()


@pytest.mark.parametrize("task", LANGUAGE_TASKS)
def test_success_on_the_named_target_and_wrong_target_on_another(task):
    """The expert planned for the named candidate succeeds cleanly; planned for another one (while the instruction
    still names the first), it never succeeds and the episode is flagged wrong-target."""
    env = _env(task, cameras=("primary",))
    base = env.unwrapped
    for plan_for in (1, 0):  # the instruction always names candidate 1
        obs, info = env.reset(seed=3, options={"target": 1})
        expert = make_expert_for_task(task, lambda: base.privileged_state(target=plan_for))
        expert.reset(info["instruction"])
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act())
            assert info["target"] == 1
            done = terminated or truncated or info["wrong_target"]
            if plan_for != 1:
                assert not info["success"]
        assert info["success"] == (plan_for == 1) and info["wrong_target"] == (plan_for != 1)
    env.close()


def test_wrong_target_stays_set_for_the_rest_of_the_episode():
    env = _env("LiftNamedCube", cameras=("primary",))
    base = env.unwrapped
    obs, info = env.reset(seed=0, options={"target": 0})
    expert = make_expert_for_task("LiftNamedCube", lambda: base.privileged_state(target=2))
    expert.reset(info["instruction"])
    while not info["wrong_target"]:
        obs, _, _, truncated, info = env.step(expert.act())
        assert not truncated
    # Put the wrong cube back where it started: the state check turns False, the episode's flag does not.
    base.physics.set_free_body("cube2", base.task.starts["cube2"])
    obs, _, _, _, info = env.step(np.array([0, 0, 0.04, 0, 0, 0, 1.0], np.float32))
    assert not base.task.wrong_target(base.physics) and info["wrong_target"]
    obs, info = env.reset(seed=0, options={"target": 0})
    assert info["wrong_target"] is False
    env.close()


def test_place_cube_on_plate_distractor_is_the_wrong_target():
    env = _env("PlaceCubeOnPlate", cameras=("primary",))
    base = env.unwrapped
    obs, info = env.reset(seed=2)
    assert info["num_targets"] == 1 and json.loads(info["candidates_json"])[0]["plate"]

    def distractor_state():
        p = base.physics
        return {**base.privileged_state(), "object_pos": p.body_pos("distractor"),
                "object_yaw": p.body_yaw("distractor")}

    expert = make_expert_for_task("PlaceCubeOnPlate", distractor_state)
    expert.reset(info["instruction"])
    while not info["wrong_target"]:
        obs, _, terminated, truncated, info = env.step(expert.act())
        assert not info["success"] and not truncated
    env.close()


def test_single_referent_tasks_report_one_candidate():
    env = _env("LiftCube", cameras=("primary",))
    obs, info = env.reset(seed=0)
    assert (info["target"], info["num_targets"], info["wrong_target"]) == (0, 1, False)
    assert json.loads(info["candidates_json"]) == [{"color": env.unwrapped.task_params["color"]}]
    obs, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32))
    assert {"instruction", "target", "num_targets", "candidates_json", "wrong_target", "success"} <= set(info)
    env.close()


def test_heldout_templates_are_never_training_templates():
    train = {t for cls in TASK_CLASSES.values() for t in cls.templates}
    for name, cls in TASK_CLASSES.items():
        assert len(cls.heldout_templates) >= 2, name
        assert not set(cls.heldout_templates) & train, name
    for name in LANGUAGE_TASKS:
        assert len(TASK_CLASSES[name].templates) >= 3
    rows = {r["id"]: r for r in sim_envs.describe_tasks()}
    assert rows["vla_sim/LiftNamedCube-v0"]["heldout_templates"] == list(TASK_CLASSES["LiftNamedCube"].heldout_templates)


@pytest.mark.parametrize("templates", ["train", "heldout"])
def test_template_options_pick_the_wording(templates):
    env = _env("LiftOrPushCube", cameras=("primary",))
    cls = TASK_CLASSES["LiftOrPushCube"]
    pool = cls.templates if templates == "train" else cls.heldout_templates
    for i, template in enumerate(pool):
        _, info = env.reset(seed=1, options={"target": 2, "templates": templates, "template": i})
        assert info["instruction"] == template.format(**json.loads(info["candidates_json"])[2])
        assert env.unwrapped.task_params["templates"] == templates
    _, info = env.reset(seed=1, options={"templates": "heldout"})
    assert info["instruction"] in {t.format(**json.loads(info["candidates_json"])[info["target"]]) for t in
                                   cls.heldout_templates}
    env.close()


def test_bad_reset_options_fail_clearly():
    env = _env("LiftNamedCube", cameras=("primary",))
    with pytest.raises(ValueError, match=r"unknown reset options \['colour'\]; supported: .*'target'.*'templates'"):
        env.reset(seed=0, options={"colour": "red"})
    with pytest.raises(ValueError, match="3 candidate"):
        env.reset(seed=0, options={"target": 3})
    with pytest.raises(ValueError, match="3 candidate"):
        env.reset(seed=0, options={"target": -1})
    with pytest.raises(ValueError, match="templates must be one of"):
        env.reset(seed=0, options={"templates": "test"})
    with pytest.raises(ValueError, match=r"template must be an int in \[0, 2\)"):
        env.reset(seed=0, options={"templates": "heldout", "template": 2})
    with pytest.raises(ValueError, match="target 5 out of range"):
        env.unwrapped.privileged_state(target=5)
    single = _env("LiftCube", cameras=("primary",))
    with pytest.raises(ValueError, match="1 candidate"):
        single.reset(seed=0, options={"target": 1})
    env.close()
    single.close()


def test_a_task_without_heldout_templates_says_so():
    class NoParaphrases(LiftCube):
        heldout_templates = ()

    env = TabletopEnv(NoParaphrases(), image_size=16, cameras=("primary",))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="no 'heldout' instruction templates"):
        env.reset(seed=0, options={"templates": "heldout"})
    env.close()


def test_vector_env_passes_the_language_fields_through():
    settings = EvalSettings(sim=SimConfig(image_size=16, cameras=["primary"]), progress=False)
    envs = make_vector_env("LiftOrPushCube", "none", 2, settings)
    try:
        obs, info = envs.reset(seed=[5, 5], options={"target": 3})
        assert list(info["target"]) == [3, 3] and list(info["num_targets"]) == [4, 4]
        assert info["candidates_json"][0] == info["candidates_json"][1]
        assert json.loads(info["candidates_json"][0])[3]["verb"] == "push"
        assert list(info["wrong_target"]) == [False, False] and "push" in info["instruction"][0]
        obs, _, _, _, info = envs.step(np.tile(np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32), (2, 1)))
        assert list(info["target"]) == [3, 3] and info["wrong_target"].dtype == bool
    finally:
        envs.close()


def test_image_xy_lands_on_the_named_cube_in_the_wrist_image():
    """Grounding's keypoint target (`sim_envs.grounding.image_xy`; tested here, a rendering module): the named
    object's projection, x right and y down in [-1, 1]. At the projected pixel the image has the cube's colour."""
    from sim_envs.config import make_env
    from sim_envs.grounding import image_xy
    from sim_envs.tasks.base import COLORS

    env = make_env("LiftNamedCube", sim=SimConfig(image_size=84), dr="none")
    hits = 0
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        colour = next(c for c in COLORS if f" {c} " in f" {info['instruction']} ")
        xy = image_xy(env.unwrapped.physics, "wrist", env.unwrapped.privileged_state()["object_pos"])
        assert np.all(np.abs(xy) <= 1), xy  # the named cube is in the wrist view at the start
        col, row = np.clip(np.round((xy + 1) / 2 * 83).astype(int), 0, 83)
        pixel = obs["wrist"][row, col].astype(float)
        distances = {c: np.abs(np.array(rgba[:3]) * 255 - pixel).sum() for c, rgba in COLORS.items()}
        hits += min(distances, key=distances.get) == colour
    env.close()
    assert hits >= 3  # lighting can shade a cube's pixel towards a neighbouring colour (orange/yellow)

