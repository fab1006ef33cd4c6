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


#: Two planned scenes of a colour task (colours drawn per seed) and of a verb x colour task.
SCENES = {7: [{"color": "red"}, {"color": "blue"}, {"color": "green"}],
          8: [{"color": "yellow"}, {"color": "red"}, {"color": "blue"}]}
VERB_SCENES = {7: [{"verb": v, "color": c} for v in ("lift", "push") for c in ("red", "blue")]}


def test_swap_targets_select_candidates_by_name_in_every_scene():
    from sim_envs.language_eval import select_swap_targets

    assert select_swap_targets("vla_sim/LiftNamedCube-v0", ["red", "Blue"], SCENES) == {7: [0, 1], 8: [1, 2]}
    assert select_swap_targets("vla_sim/LiftOrPushCube-v0", ["lift+red", "push blue", "verb=push"], VERB_SCENES) \
        == {7: [0, 2, 3]}


def test_swap_target_absent_from_the_scene_is_a_clear_error():
    from sim_envs.language_eval import select_swap_targets

    with pytest.raises(ValueError, match=r"'purpel' is not a candidate of LiftNamedCube in any planned scene; its "
                                         r"scenes offer \['blue', 'green', 'red', 'yellow'\].*"):
        select_swap_targets("vla_sim/LiftNamedCube-v0", ["red", "purpel"], SCENES)
    with pytest.raises(ValueError, match=r"'green' is not a candidate of LiftNamedCube's scene at 1 of the 2 planned "
                                         r"seeds \(seed 8 offers \['yellow', 'red', 'blue'\]\).*seeds whose scenes "
                                         r"hold every name \(\[7\]\)"):
        select_swap_targets("vla_sim/LiftNamedCube-v0", ["red", "green"], SCENES)


def test_swap_targets_config_forms_and_their_errors():
    from sim_envs.language_eval import resolve_swap_targets

    tasks = ["vla_sim/LiftNamedCube-v0", "vla_sim/LiftNamedShape-v0"]
    assert resolve_swap_targets(None, tasks) == {}
    assert resolve_swap_targets(["red"], tasks) == {t: ["red"] for t in tasks}
    assert resolve_swap_targets({"LiftNamedShape": ["cube", "ball"]}, tasks) == {tasks[1]: ["cube", "ball"]}
    with pytest.raises(ValueError, match=r"names task 'PlaceSideCubeOnPlate', which this run does not evaluate"):
        resolve_swap_targets({"PlaceSideCubeOnPlate": ["left"]}, tasks)
    with pytest.raises(ValueError, match="must be a non-empty list of candidate names"):
        resolve_swap_targets([], tasks)


def test_swap_targets_fail_before_any_episode_runs(monkeypatch):
    """The protocol probes the planned scenes, and a bad name stops it before a policy acts."""
    from sim_envs import language_eval

    monkeypatch.setattr(language_eval, "scene_candidates", lambda task, settings, level="none": (3, 2))
    monkeypatch.setattr(language_eval, "probe_scenes", lambda task, seeds, settings, level="none":
                        {s: SCENES[7] for s in seeds})
    monkeypatch.setattr(language_eval, "evaluate_policies", lambda *a, **k: pytest.fail("an episode ran"))
    with pytest.raises(ValueError, match="'yellow' is not a candidate of LiftNamedCube"):
        language_eval.run_language_protocol({"p": None}, {"p": None}, ["LiftNamedCube"], "none", 2, None,
                                            swap_targets=["red", "yellow"])


def test_a_swap_subset_plans_only_the_named_candidates_and_its_chance_is_one_over_its_size():
    from sim_envs.language_eval import plan_language_episodes, summarize_language

    task = "vla_sim/LiftNamedCube-v0"
    specs = plan_language_episodes(["LiftNamedCube"], "none", [7, 8], None, "heldout", {task: (3, 2)},
                                   {task: {7: [0, 1], 8: [1, 2]}})
    assert [(s.seed, s.target, s.templates) for s in specs] == [(7, 0, "heldout"), (7, 1, "heldout"),
                                                                (8, 1, "heldout"), (8, 2, "heldout")]
    rs = [EpisodeResult(policy="p", task=task, dr_level="none", seed=s.seed, success=s.target == 1, steps=1,
                        target=s.target, num_targets=3) for s in specs]
    assert summarize_language({"swap": {"p": rs}})["p"]["swap"]["per_task"][task]["chance"] == 0.5


@pytest.mark.slow
def test_vla_eval_language_swap_targets(tmp_path):
    """language.swap_targets through the command: a subset runs only the named shapes, a bad name stops first."""
    args = ["protocol=language", "policy=expert", "tasks=[LiftNamedShape]", "dr=none", "seeds=1", "sim=fast",
            "sim.image_size=32", "sim.cameras=[primary]", "num_envs=1", "video.episodes_per_cell=0",
            "language.conditions=[swap]", "plot=false"]
    bad = _cli([*args, "language.swap_targets=[cube,pyramid]", f"output_dir={tmp_path / 'bad'}"], tmp_path)
    assert bad.returncode == 2, (bad.stdout + bad.stderr)[-3000:]
    assert "'pyramid' is not a candidate of LiftNamedShape" in bad.stdout + bad.stderr
    assert "['ball', 'cube', 'cylinder']" in bad.stdout + bad.stderr
    assert not list((tmp_path / "bad").rglob("*.jsonl"))
    r = _cli([*args, "language.swap_targets=[cube,ball]", f"output_dir={tmp_path / 'ok'}"], tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    (run_dir,) = [p for p in (tmp_path / "ok").iterdir() if p.is_dir()]
    report = json.loads((run_dir / "language.json").read_text())["expert"]
    task = report["swap"]["per_task"]["vla_sim/LiftNamedShape-v0"]
    assert task["n_episodes"] == 2 and set(task["per_named"]) == {"shape=cube", "shape=ball"} and task["chance"] == 0.5
