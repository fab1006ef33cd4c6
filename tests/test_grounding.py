"""Grounding pretraining (sim_envs.grounding): labels from the simulator's ground truth, rendered in spawned
processes, a checkpoint `vla-train init_from=` reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("mujoco")

from sim_envs.config import SimConfig  # noqa: E402
from sim_envs.grounding import GroundingSettings, grounding_label, pretrain_grounding, render_samples  # noqa: E402


def test_label_is_the_named_object_and_its_goal_relative_to_the_gripper():
    ee = np.array([0.45, 0.0, 0.23])
    lift = grounding_label({"ee_pos": ee, "object_pos": np.array([0.55, 0.1, 0.02])})
    np.testing.assert_allclose(lift, [1.0, 1.0, 1.0, 1.0], atol=1e-6)  # a lift's goal is the object itself
    place = grounding_label({"ee_pos": ee, "object_pos": np.array([0.55, 0.1, 0.02]),
                             "place_pos": np.array([0.35, -0.2, 0.03])})
    np.testing.assert_allclose(place, [1.0, 1.0, -1.0, -2.0], atol=1e-6)
    push = {"ee_pos": ee, "object_pos": np.array([0.45, 0.0, 0.02]), "target_pos": np.array([0.55, 0.0, 0.0])}
    np.testing.assert_allclose(grounding_label({**push, "verb": "push"})[2:], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(grounding_label({**push, "verb": "lift"})[2:], [0.0, 0.0], atol=1e-6)


def test_every_candidate_of_a_scene_is_named_once_with_its_own_label():
    settings = GroundingSettings(tasks=["LiftNamedCube"], sim=SimConfig(image_size=32), scenes=1,
                                 frames_per_rollout=1, workers=1)
    samples = render_samples(settings, [0], progress=False)
    assert [s[3] for s in samples] == [0, 1, 2] and len({s[1] for s in samples}) == 3
    for s in samples[1:]:
        np.testing.assert_array_equal(s[0]["wrist"], samples[0][0]["wrist"])  # the same image ...
    assert len({tuple(np.round(s[2], 4)) for s in samples}) == 3  # ... three different answers
    for s in samples:  # a lift's goal is the named cube itself: the same image position
        np.testing.assert_array_equal(s[5]["wrist"], s[4]["wrist"])


def test_scenes_cycle_through_several_dr_levels():
    from dataclasses import replace

    from sim_envs.grounding import scene_level

    settings = GroundingSettings(tasks=["PlaceSideCubeOnPlate"], sim=SimConfig(image_size=32), dr=["low", "high"],
                                 scenes=2, frames_per_rollout=1, workers=1)
    assert settings.dr == ("low", "high") and [scene_level(settings, s) for s in range(3)] == ["low", "high", "low"]
    mixed = render_samples(settings, [0, 1], progress=False)
    low = render_samples(replace(settings, dr="low"), [0, 1], progress=False)
    assert len(mixed) == len(low) == 4  # two candidates per scene
    np.testing.assert_array_equal(mixed[0][0]["wrist"], low[0][0]["wrist"])  # scene 0: low either way
    assert not np.array_equal(mixed[2][0]["wrist"], low[2][0]["wrist"])  # scene 1: high DR, other colours and light
    assert not np.allclose(mixed[0][5]["wrist"], mixed[0][4]["wrist"])  # a place task's goal is the plate
    with pytest.raises(ValueError, match="dr names no level"):
        GroundingSettings(dr=[])


def test_pretrain_grounding_writes_a_checkpoint_vla_train_can_start_from(tmp_path):
    from sim_envs.grounding import heldout_scenes, keypoint_error
    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.policy import load_checkpoint
    from vla.model.presets import load_preset_config
    from vla.model.processing_vla import VLAProcessor

    mc = load_preset_config("tiny", image_size=32, cameras=["wrist"], vision_film=True,
                            vision_backbone="conv_keypoints", decoding="parallel", action_chunk=2, action_head="l1")
    tasks = ["LiftNamedCube", "PlaceSideCubeOnPlate"]  # 3 and 2 candidates per scene
    settings = GroundingSettings(tasks=tasks, sim=SimConfig(image_size=32), scenes=2, heldout_scenes=1,
                                 frames_per_rollout=2, max_expert_steps=3, steps=3, workers=1)
    out, report = pretrain_grounding(settings, mc, tmp_path / "ground", progress=False)
    assert report["train_samples"] == 2 * 5 * 2 and report["heldout_samples"] == 5 * 2
    assert np.isfinite(report["heldout_l1"]) and report["heldout_l1_mean_label"] > 0
    assert report["heldout_l1"] == pytest.approx((report["heldout_l1_object"] + report["heldout_l1_goal"]) / 2)
    per_task = report["heldout_l1_per_task"]  # samples weigh by count: 6 of LiftNamedCube, 4 of the place task
    assert list(per_task) == tasks
    assert report["heldout_l1"] == pytest.approx((6 * per_task[tasks[0]]["all"] + 4 * per_task[tasks[1]]["all"]) / 10)
    assert json.loads((out / "grounding.json").read_text())["settings"]["tasks"] == tasks
    # the saved checkpoint gives the same keypoint errors on the same held-out scenes (how a trained policy is checked)
    policy_model, policy_processor = load_checkpoint(out)
    held = heldout_scenes(settings, progress=False)
    for task in tasks:
        assert keypoint_error(policy_model, policy_processor, held[task], ["wrist"]) == pytest.approx(
            per_task[task].get("keypoint"), abs=1e-5)
        assert keypoint_error(policy_model, policy_processor, held[task], ["wrist"], goal=True) == pytest.approx(
            per_task[task].get("goal_keypoint"), abs=1e-5)
    model = VLAForActionPrediction.from_pretrained(str(out))
    assert model.config.vision_film and model.config.vision_backbone == "conv_keypoints"
    assert VLAProcessor.from_pretrained(out).cameras == ["wrist"]
    with pytest.raises(ValueError, match="cameras"):
        pretrain_grounding(GroundingSettings(sim=SimConfig(image_size=32, cameras=["primary"]), steps=1), mc,
                           tmp_path / "bad", progress=False)


def test_vla_ground_command_writes_the_checkpoint_and_names_a_misspelt_key(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    cmd = [sys.executable, "-m", "sim_envs.cli.ground", "tasks=[PlaceSideCubeOnPlate]", "scenes=1", "heldout_scenes=1",
           "levels=[low,high]", "goal_keypoint_weight=1.0",
           "steps=2", "frames_per_rollout=1", "workers=1", "sim.image_size=32", "model.image_size=32",
           "model.cameras=[wrist]", "model.vision_backbone=conv_keypoints", "model.vision_film=true",
           f"output_dir={tmp_path / 'g'}"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "held-out L1" in r.stdout + r.stderr and (tmp_path / "g" / "config.json").is_file()
    report = json.loads((tmp_path / "g" / "grounding.json").read_text())
    assert report["train_samples"] == 2  # left and right
    assert report["settings"]["dr"] == ["low", "high"] and report["settings"]["goal_keypoint_weight"] == 1.0
    bad = subprocess.run([sys.executable, "-m", "sim_envs.cli.ground", "stpes=2"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode != 0 and "did you mean 'steps'?" in bad.stderr


def test_keypoint_weights_move_the_supervised_keypoints_towards_the_named_object_and_its_goal(tmp_path):
    from vla.model.presets import load_preset_config

    mc = load_preset_config("tiny", image_size=32, cameras=["wrist"], vision_film=True,
                            vision_backbone="conv_keypoints", decoding="parallel", action_chunk=2, action_head="l1")
    base = dict(tasks=["PlaceSideCubeOnPlate"], sim=SimConfig(image_size=32), scenes=4, heldout_scenes=1,
                frames_per_rollout=1, max_expert_steps=2, steps=200, workers=1, lr=1e-3)
    _, off = pretrain_grounding(GroundingSettings(**base), mc, tmp_path / "off", progress=False)
    _, on = pretrain_grounding(GroundingSettings(**base, keypoint_weight=1.0, goal_keypoint_weight=1.0), mc,
                               tmp_path / "on", progress=False)
    assert off["heldout_keypoint_error"] is not None and on["heldout_goal_keypoint_error"] is not None
    # on its training frames (8 here; held-out needs far more data) the supervised keypoints come to the named cube
    # and to the plate
    assert on["train_keypoint_error_last50"] < 0.7 * off["train_keypoint_error_last50"]
    assert on["train_goal_keypoint_error_last50"] < 0.7 * off["train_goal_keypoint_error_last50"]
