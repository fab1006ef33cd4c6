"""`vla-demo`: the config's checks and the whole loop end to end on tiny settings.

The end-to-end test runs the demo in a subprocess (as `make demo` does: MuJoCo rendering and TensorFlow stay
out of the pytest process) and checks what it writes: summary.json's structure, the checkpoint's model
options, the videos. Success rates of a 3-step model are not checked; the targets are reported, not tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from demo.config import DemoConfig

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
    assert train.trainer.steps == 7  # train_overrides come last
    assert train.trainer.batch_size == cfg.batch_size
    assert train.data.image_augmentation is False


def test_ratio_target_treats_zero_baseline_as_one_episode():
    """0/40 for the blind baseline means < 1/40, so the tiny VLA needs >= 3/40 for the 3x target."""
    from demo.main import demo_targets

    def ratio(vla: float, nov: float) -> dict:
        summary = {"success": {"tiny_vla": {"success_rate": vla, "n_episodes": 40},
                               "no_vision": {"success_rate": nov, "n_episodes": 40}}}
        return demo_targets(summary, 100.0, DemoConfig())[2]

    assert ratio(1 / 40, 0.0)["met"] is False and ratio(1 / 40, 0.0)["value"] == 1.0
    assert ratio(3 / 40, 0.0)["met"] is True
    assert ratio(0.5, 0.2)["met"] is False and ratio(0.6, 0.2)["met"] is True
    assert ratio(0.6, 0.2)["value"] == 3.0


def test_summary_json_is_strict_json_with_undefined_figures_as_null():
    from demo.main import _finite_or_none

    summary = {"targets": [{"name": "Spearman", "value": float("nan")}, {"value": float("inf"), "baseline": 0.5}],
               "stages": {"total": 1.5}, "note": "x"}
    text = json.dumps(_finite_or_none(summary), allow_nan=False)
    assert json.loads(text) == {"targets": [{"name": "Spearman", "value": None}, {"value": None, "baseline": 0.5}],
                                "stages": {"total": 1.5}, "note": "x"}


def _run_demo(out: Path, *overrides: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "demo.main", f"output_dir={out}", *overrides], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_demo_end_to_end_writes_summary_videos_and_checkpoint(tmp_path):
    out = tmp_path / "demo"
    r = _run_demo(out, "episodes=4", "eval_episodes=2", "eval_envs=2", "videos=1", "train_steps=3", "batch_size=4",
                  "image_size=56", "action_chunk=4", "execute_steps=2", "with_world_model=false", "with_bridge=false",
                  'train_overrides=["trainer.val_every=0","trainer.save_every=0"]')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # strict JSON (no NaN / Infinity, which json.dumps writes by default and other parsers reject)
    summary = json.loads((out / "summary.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"summary.json holds the non-JSON constant {c}"))

    stages = summary["stages"]
    assert set(stages) == {"collect", "train", "evaluate", "total"}
    assert all(isinstance(v, (int, float)) and v >= 0 for v in stages.values())
    assert stages["total"] >= stages["collect"] + stages["train"] + stages["evaluate"] - 1.0

    assert set(summary["success"]) == {"tiny_vla", "no_vision", "random"}
    for name, s in summary["success"].items():
        assert s["n_episodes"] == 2, name
        assert 0.0 <= s["success_rate"] <= 1.0
        lo, hi = s["ci95"]
        assert 0.0 <= lo <= s["success_rate"] <= hi <= 1.0, (name, s)
        assert s["n_errors"] == 0, (name, s)
    videos = summary["success"]["tiny_vla"]["video_paths"]
    assert len(videos) == 1 and Path(videos[0]).is_file() and Path(videos[0]).stat().st_size > 0

    targets = summary["targets"]
    assert [t["name"] for t in targets[:3]] == [
        "total wall time (s)", "tiny VLA success at DR low",
        "tiny VLA success / no-vision success (0/n counts as 1/n)"]
    for t in targets:
        assert set(t) == {"name", "value", "baseline", "target", "met"}, t
        assert isinstance(t["met"], bool)
    assert targets[0]["value"] == pytest.approx(stages["total"], abs=0.2)
    assert targets[1]["value"] == summary["success"]["tiny_vla"]["success_rate"]

    # the demo's model options reached the trainer and the saved policy
    model_cfg = json.loads((Path(summary["checkpoint"]) / "config.json").read_text())
    assert (model_cfg["decoding"], model_cfg["action_chunk"], model_cfg["action_head"]) == ("parallel", 4, "l1")
    assert model_cfg["cameras"] == ["wrist"] and model_cfg["use_proprio"] is True  # policy_cameras
    assert model_cfg["action_queries"] is True
    assert summary["config"]["cameras"] == ["primary", "wrist"]  # both recorded (the world model reads both)
    for name in summary["success"]:
        assert (out / "eval" / name / "eval_info.json").is_file(), name


def test_unknown_key_fails_with_hydra_error(tmp_path):
    r = _run_demo(tmp_path / "demo", "episode=3", timeout=300)
    assert r.returncode != 0
    assert "Key 'episode' not in 'DemoConfig'" in r.stderr and "Hint: vla-demo's keys" in r.stderr
    bad = _run_demo(tmp_path / "demo", "cameras=[top]", timeout=300)
    assert bad.returncode != 0
    assert "cameras must be a non-empty subset of [primary, wrist], got ['top']" in bad.stdout + bad.stderr
    assert "Hint: vla-demo's keys" in bad.stderr  # a bad value gets the hint too
