"""`vla-eval protocol=robustness` and `protocol=language`: the issue-18 protocols through the command.

The command runs in a subprocess (it renders; tests never render next to TensorFlow), on tiny images and a
few steps; the expert is the policy, so the numbers are the plumbing's, not a learned policy's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sim_envs.results import EpisodeResult


def _cli(args, cwd):
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    code = "from sim_envs.cli.eval import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def _ep(level, success, policy="p", task="t", target=0, k=1, named="", wrong=False, templates="train"):
    return EpisodeResult(policy=policy, task=task, dr_level=level, seed=0, success=success, steps=1, target=target,
                         num_targets=k, named=named, wrong_target=wrong, templates=templates)


def test_robustness_report_divides_by_the_nominal_success():
    from sim_envs.robustness_eval import summarize_robustness

    rs = [_ep("nominal", s) for s in (1, 1, 1, 0)] + [_ep("camera@2", s) for s in (1, 0, 0, 0)] + \
         [_ep("camera@1", s) for s in (1, 1, 1, 1)] + [_ep("none", 1), _ep("high", 0)]
    rep = summarize_robustness({"p": rs})["p"]
    assert rep["nominal"]["success_rate"] == 0.75
    assert [(r["magnitude"], r["ratio_to_nominal"]) for r in rep["dimensions"]["camera"]] == [(1, 4 / 3), (2, 1 / 3)]
    assert rep["worst_middle"] == ("camera", pytest.approx(1 / 3))
    assert rep["combined"]["high"]["ratio_to_none"] == 0.0


def test_language_report_has_chance_per_named_referent_and_the_paraphrase_ratio():
    from sim_envs.language_eval import summarize_language

    swap = [_ep("low", t == 0, target=t, k=2, named=f"color={c}", wrong=t == 1) for t, c in ((0, "red"), (1, "blue"))] * 2
    para = [_ep("low", True, target=t, k=2, named="x", templates="heldout") for t in (0, 1)]
    rep = summarize_language({"swap": {"p": swap}, "paraphrase": {"p": para}})["p"]
    t = rep["swap"]["per_task"]["t"]
    assert (t["success_rate"], t["wrong_target_rate"], t["chance"]) == (0.5, 0.5, 0.5)
    assert t["per_named"]["color=red"]["success_rate"] == 1.0 and t["per_named"]["color=blue"]["n_wrong_target"] == 2
    assert rep["paraphrase_ratio"] == 2.0


@pytest.mark.slow
def test_vla_eval_robustness_protocol(tmp_path):
    r = _cli(["protocol=robustness", "policy=expert", "tasks=[LiftCube]", "seeds=2", "sim=fast", "sim.image_size=32",
              "sim.max_episode_steps=30", "num_envs=1", "robustness.dimensions=[camera,latency]",
              "robustness.magnitudes=[2]", "robustness.combined=[none]", "video.episodes_per_cell=0",
              f"output_dir={tmp_path}"], tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rep = json.loads((run_dir / "robustness.json").read_text())["expert"]
    assert rep["nominal"]["n_episodes"] == 2 and set(rep["dimensions"]) == {"camera", "latency"}
    assert [row["magnitude"] for row in rep["dimensions"]["latency"]] == [2]
    assert rep["combined"]["none"]["n_episodes"] == 2 and (run_dir / "robustness.png").is_file()
    assert "robustness: success" in r.stderr
    bad = _cli(["protocol=robustness", "robustness.dimensions=[camra]", f"output_dir={tmp_path}"], tmp_path)
    assert bad.returncode == 2 and "valid dimensions" in bad.stdout + bad.stderr


@pytest.mark.slow
def test_vla_eval_language_protocol(tmp_path):
    """Swap and paraphrase on a language task: every candidate of each scene is named once, success judged on it."""
    r = _cli(["protocol=language", "policy=expert", "tasks=[LiftNamedCube]", "dr=none", "seeds=1", "sim=fast",
              "sim.image_size=32", "sim.cameras=[primary]", "num_envs=1", "video.episodes_per_cell=0",
              "language.conditions=[swap,paraphrase]", f"output_dir={tmp_path}"], tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rep = json.loads((run_dir / "language.json").read_text())["expert"]
    task = rep["swap"]["per_task"]["vla_sim/LiftNamedCube-v0"]
    assert task["n_episodes"] == 3 and task["chance"] == pytest.approx(1 / 3) and len(task["per_named"]) == 3
    assert task["success_rate"] == 1.0 and task["wrong_target_rate"] == 0.0
    assert rep["paraphrase"]["n_episodes"] == 3 and rep["paraphrase_ratio"] == 1.0
    assert (run_dir / "language.png").is_file()
    bad = _cli(["protocol=language", "policy=expert", "tasks=[LiftCube]", "dr=none", "seeds=1", f"output_dir={tmp_path}"],
               tmp_path)
    assert bad.returncode == 2 and "one candidate per scene" in bad.stdout + bad.stderr
