"""`vla-demo`: the config's checks and the whole loop end to end on tiny settings.

The end-to-end test runs the demo in a subprocess (as `make demo` does: MuJoCo rendering and TensorFlow stay
out of the pytest process) on two tasks and checks what it writes: summary.json's structure (per-task success,
the language swap against the blind baseline, the side-by-side video's two instructions, the DR ratio), the
checkpoint's model options, the videos. Success rates of a 3-step model are not checked; the targets are
reported, not tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from demo.config import DemoConfig
from demo.language_stage import language_targets

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_config_rejects_bad_values_naming_them():
    with pytest.raises(ValueError, match="cameras must be a non-empty subset of \\[primary, wrist\\]"):
        DemoConfig(cameras=["top"])
    with pytest.raises(ValueError, match="execute_steps must be >= 1"):
        DemoConfig(execute_steps=0)
    with pytest.raises(ValueError, match="episodes must be >= 2"):
        DemoConfig(episodes=1)
    with pytest.raises(ValueError, match="policy_cameras must be a non-empty subset of cameras \\['primary'\\]"):
        DemoConfig(cameras=["primary"], policy_cameras=["wrist"])
    with pytest.raises(ValueError, match="task_weights needs one weight per task \\(2: "):
        DemoConfig(tasks=["LiftNamedCube", "LiftOrPushCube"], task_weights=[1.0])
    with pytest.raises(ValueError, match="tasks must name at least one task"):
        DemoConfig(tasks=[])
    with pytest.raises(ValueError, match="language_seeds must be >= 1"):
        DemoConfig(language_seeds=0)
    with pytest.raises(ValueError, match="world_model_episodes must be >= 0"):
        DemoConfig(world_model_episodes=-1)


def test_default_tasks_are_the_language_tasks_mixed_with_equal_weights():
    cfg = DemoConfig()
    assert cfg.tasks == ["LiftNamedCube", "PlaceCubeOnNamedPlate", "LiftOrPushCube", "PlaceSideCubeOnPlate"]
    assert cfg.weights() == [1.0] * 4 and cfg.vision_film is True
    assert DemoConfig(tasks=["LiftNamedCube", "LiftOrPushCube"], task_weights=[1, 3]).weights() == [1.0, 3.0]


def test_demo_overrides_compose_into_a_valid_train_config(tmp_path):
    """The demo's model and trainer choices are valid `vla-train` overrides; train_overrides win over them."""
    from omegaconf import OmegaConf

    from vla.train.config import compose_train_config, to_train_config

    cfg = DemoConfig(cameras=["primary", "wrist"], policy_cameras=["wrist"], action_chunk=4,
                     train_overrides=["trainer.steps=7"])
    composed = compose_train_config([f"data.datasets=[{{path: {tmp_path}}}]", f"output_dir={tmp_path / 'train'}",
                                     *cfg.model_overrides(8), *cfg.trainer_overrides(), *cfg.train_overrides])
    train = to_train_config(OmegaConf.create({k: v for k, v in composed.items() if k != "hydra"}))
    assert train.model.cameras == ["wrist"]  # the policy's cameras, not every recorded one
    assert (train.model.decoding, train.model.action_chunk, train.model.action_head) == ("parallel", 4, "l1")
    assert (train.model.use_proprio, train.model.proprio_dim) == (True, 8)
    assert train.model.vision_film is True  # instruction-conditioned vision towers (vla/model/film.py)
    assert train.trainer.steps == 7  # train_overrides come last
    assert train.trainer.batch_size == cfg.batch_size
    assert train.data.image_augmentation is False
    assert train.trainer.mode.value == "freeze_vision"  # the grounded vision is kept (history.md L10) ...
    assert "trainer.mode=freeze_vision" not in DemoConfig(ground_steps=0).trainer_overrides()  # ... not a random one


def _summary(vla: float, nov: float, n: int = 40, language: dict | None = None) -> dict:
    return {"success": {"tiny_vla": {"mean_task_success": vla, "n_episodes": n},
                        "no_vision": {"mean_task_success": nov, "n_episodes": n}},
            **({"language": {"targets": language_targets(language)}} if language is not None else {})}


def test_ratio_target_treats_zero_baseline_as_one_episode():
    """0/40 for the blind baseline means < 1/40, so the tiny VLA needs >= 3/40 for the 3x target."""
    from demo.main import demo_targets

    def ratio(vla: float, nov: float) -> dict:
        return demo_targets(_summary(vla, nov), 100.0, DemoConfig())[2]

    assert ratio(1 / 40, 0.0)["met"] is False and ratio(1 / 40, 0.0)["value"] == 1.0
    assert ratio(3 / 40, 0.0)["met"] is True
    assert ratio(0.5, 0.2)["met"] is False and ratio(0.6, 0.2)["met"] is True
    assert ratio(0.6, 0.2)["value"] == 3.0


def test_language_targets_are_reported_unmet_when_missed_or_not_measured():
    from demo.main import demo_targets

    good = {"swap_success": 0.8, "swap_wrong_target": 0.05, "blind_success": 0.3, "blind_wrong_target": 0.4,
            "chance": 0.33}
    bad = {**good, "swap_success": 0.3, "swap_wrong_target": 0.2}
    assert [t["met"] for t in language_targets(good)] == [True, True, True]
    assert [t["met"] for t in language_targets(bad)] == [False, False, False]  # swap 0.3 is not above blind 0.3
    assert [(t["value"], t["met"]) for t in language_targets(None)] == [(None, False)] * 3  # no task to swap
    names = [t["name"] for t in demo_targets(_summary(0.6, 0.1, language=good), 100.0, DemoConfig())]
    assert names[3:6] == [t["name"] for t in language_targets(good)]


def test_summary_json_is_strict_json_with_undefined_figures_as_null():
    from demo.main import finite_or_none

    summary = {"targets": [{"name": "Spearman", "value": float("nan")}, {"value": float("inf"), "baseline": 0.5}],
               "stages": {"total": 1.5}, "note": "x"}
    text = json.dumps(finite_or_none(summary), allow_nan=False)
    assert json.loads(text) == {"targets": [{"name": "Spearman", "value": None}, {"value": None, "baseline": 0.5}],
                                "stages": {"total": 1.5}, "note": "x"}


def test_side_by_side_video_holds_both_episodes_under_their_titles(tmp_path):
    """Two episodes of different lengths in one mp4: the shorter holds its last frame, each half has a title."""
    import numpy as np

    from sim_envs.video import read_mp4, write_side_by_side

    left = [np.full((40, 60, 3), 200, np.uint8)] * 5
    right = [np.full((40, 60, 3), 50, np.uint8)] * 3
    path = write_side_by_side([left, right], ['"lift the red cube": no success', '"lift the blue cube": wrong target'],
                              tmp_path / "sbs.mp4")
    frames = read_mp4(path)
    assert len(frames) == 5  # the longer episode
    h, w, _ = frames[-1].shape
    assert w >= 120 and h > 40 and h % 2 == 0 and w % 2 == 0  # two halves side by side, a title band above
    bottom = frames[-1][-20:]
    assert bottom[:, :50].mean() > 150 and bottom[:, -50:].mean() < 100  # left bright, right dark (held)
    with pytest.raises(ValueError, match="one title per frame"):
        write_side_by_side([left, right], ["only one"], tmp_path / "x.mp4")


def _run_demo(out: Path, *overrides: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "demo.main", f"output_dir={out}", *overrides], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_demo_end_to_end_writes_summary_videos_and_checkpoint(tmp_path):
    out = tmp_path / "demo"
    tasks = ["LiftNamedCube", "PlaceSideCubeOnPlate"]  # 3 and 2 instructions per scene
    r = _run_demo(out, f"tasks=[{','.join(tasks)}]", "task_weights=[1.0,2.0]", "episodes=2", "ground_steps=3", "ground_scenes=1",
                  "ground_frames=1", "eval_episodes=2",
                  "eval_envs=2", "videos=1", "train_steps=3", "batch_size=4", "image_size=56", "action_chunk=4",
                  "execute_steps=2", "language_seeds=1", "robustness_episodes=1", "with_world_model=false",
                  "with_bridge=false", 'train_overrides=["trainer.val_every=0","trainer.save_every=0"]')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # strict JSON (no NaN / Infinity, which json.dumps writes by default and other parsers reject)
    summary = json.loads((out / "summary.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"summary.json holds the non-JSON constant {c}"))

    stages = summary["stages"]
    assert set(stages) == {"collect", "ground", "train", "evaluate", "language", "side_by_side", "robustness",
                           "total"}
    assert all(isinstance(v, (int, float)) and v >= 0 for v in stages.values())
    assert stages["total"] >= sum(v for k, v in stages.items() if k != "total") - 1.0

    # one dataset per task, mixed with the given weights
    assert [t.split("/")[-1] for t in summary["tasks"]] == [f"{t}-v0" for t in tasks]
    assert [summary["datasets"][t]["weight"] for t in tasks] == [1.0, 2.0]
    assert all(Path(summary["datasets"][t]["path"]).is_dir() for t in tasks)
    # grounding pretraining rendered every candidate of each scene (1 scene: 3 + 2 samples) and training started there
    assert summary["grounding"]["train_samples"] == 5 and (out / "ground" / "grounding.json").is_file()
    saved = next((out / "train" / "checkpoints").glob("step_*/config.yaml")).read_text()
    assert f"init_from: {out / 'ground'}" in saved

    assert set(summary["success"]) == {"tiny_vla", "no_vision", "random"}
    for name, s in summary["success"].items():
        assert s["n_episodes"] == 4 and set(s["per_task"]) == set(tasks), name  # 2 per task
        assert s["n_errors"] == 0, (name, s)
        for task, a in s["per_task"].items():
            assert a["n_episodes"] == 2, (name, task)
            lo, hi = a["ci95"]
            assert 0.0 <= lo <= a["success_rate"] <= hi <= 1.0, (name, task, a)
        assert s["mean_task_success"] == pytest.approx(sum(a["success_rate"] for a in s["per_task"].values()) / 2)
    videos = summary["success"]["tiny_vla"]["video_paths"]
    assert len(videos) == 2 and all(Path(v).is_file() and Path(v).stat().st_size > 0 for v in videos)  # 1 per task

    language = summary["language"]
    assert language["tasks"] == tasks and language["skipped_tasks"] == []
    assert {t: language["per_task"][t]["instructions_per_scene"] for t in tasks} == {
        "LiftNamedCube": 3, "PlaceSideCubeOnPlate": 2}
    assert language["chance"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    for key in ("swap_success", "swap_wrong_target", "blind_success"):
        assert 0.0 <= language[key] <= 1.0, key
    report = json.loads((out / "language" / "language.json").read_text())
    assert report["tiny_vla"]["swap"]["n_episodes"] == 5 and report["tiny_vla"]["blind"]["n_episodes"] == 5
    assert (out / "language" / "language.png").stat().st_size > 0

    video = summary["side_by_side"]
    assert video["task"] == "LiftNamedCube" and video["same_initial_state"] is True
    assert [e["target"] for e in video["episodes"]] == [0, 1]
    a, b = video["episodes"]
    assert a["instruction"] != b["instruction"] and a["named"] != b["named"]
    assert all(e["outcome"] in ("success on the named target", "success on the named target (and moved another "
                                "object)", "wrong target", "no success") for e in video["episodes"])
    assert video["different_outcomes"] == (a["outcome"] != b["outcome"])
    assert video["video"] == str(out / "language" / "side_by_side.mp4") and Path(video["video"]).stat().st_size > 0

    robustness = summary["robustness"]
    assert set(robustness["levels"]) == {"none", "high"}
    assert all(lv["n_episodes"] == 2 for lv in robustness["levels"].values())  # 1 per task per level

    targets = summary["targets"]
    assert [t["name"] for t in targets] == [
        "total wall time (s)", "tiny VLA success at DR low (mean over tasks)",
        "tiny VLA success / no-vision success (means over tasks; 0/n counts as 1/n)",
        "language swap: tiny VLA success on the named target (mean over tasks)",
        "language swap: tiny VLA wrong-target rate (mean over tasks)",
        "language swap success - blind-language success (must be > 0)",
        "tiny VLA success at DR high / at DR none (means over tasks)"]
    for t in targets:
        assert set(t) == {"name", "value", "baseline", "target", "met"}, t
        assert isinstance(t["met"], bool)
    assert targets[0]["value"] == pytest.approx(stages["total"], abs=0.2)
    assert targets[1]["value"] == summary["success"]["tiny_vla"]["mean_task_success"]
    assert targets[3]["value"] == language["swap_success"] and targets[5]["baseline"] == language["blind_success"]
    if robustness["ratio_high_to_none"] is None:  # nothing succeeded at DR none: undefined, so unmet
        assert targets[6]["value"] is None and targets[6]["met"] is False

    # the demo's model options reached the trainer and the saved policy, with one statistics entry per task
    model_cfg = json.loads((Path(summary["checkpoint"]) / "config.json").read_text())
    assert (model_cfg["decoding"], model_cfg["action_chunk"], model_cfg["action_head"]) == ("parallel", 4, "l1")
    assert model_cfg["cameras"] == ["wrist"] and model_cfg["use_proprio"] is True  # policy_cameras
    assert model_cfg["action_queries"] is True and model_cfg["vision_film"] is True
    assert model_cfg["vision_backbone"] == "conv_keypoints"
    assert sorted(model_cfg["norm_stats"]) == sorted(summary["datasets"][t]["unnorm_key"] for t in tasks)
    assert summary["config"]["cameras"] == ["primary", "wrist"]  # both recorded (the world model reads both)
    for name in summary["success"]:
        assert (out / "eval" / name / "eval_info.json").is_file(), name
    assert (out / "robustness" / "tiny_vla" / "eval_info.json").is_file()


def test_unknown_key_fails_with_hydra_error(tmp_path):
    r = _run_demo(tmp_path / "demo", "episode=3", timeout=300)
    assert r.returncode != 0
    assert "Key 'episode' not in 'DemoConfig'" in r.stderr and "Hint: vla-demo's keys" in r.stderr
    bad = _run_demo(tmp_path / "demo", "cameras=[top]", timeout=300)
    assert bad.returncode != 0
    assert "cameras must be a non-empty subset of [primary, wrist], got ['top']" in bad.stdout + bad.stderr
    assert "Hint: vla-demo's keys" in bad.stderr  # a bad value gets the hint too
    renamed = _run_demo(tmp_path / "demo", "task=LiftCube", timeout=300)  # the key before issue 18
    assert renamed.returncode != 0
    assert "did you mean 'tasks'?" in renamed.stderr and "tasks=[LiftCube]" in renamed.stderr
