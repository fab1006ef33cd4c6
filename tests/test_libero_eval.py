"""LIBERO as a suite of vla-eval: the suite table, planning and shards, merging, statistics keys (fast, no LIBERO),
and real LIBERO episodes in the LIBERO venv against a policy server on loopback (slow).

The slow tests need `.venv-libero` (`make libero-venv`, which `make test` runs); they skip, saying why, where
it could not be installed. Episodes are cut to a few steps (`libero.max_steps`): a LIBERO step renders two
256-px cameras on llvmpipe (~0.3 s here), env construction and reset take ~5-10 s each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim_envs.libero.runner import (
    LiberoConfig,
    Planned,
    blocks,
    merge_runs,
    parse_shard,
    plan_hash,
    plan_suite,
    suite_unnorm_key,
    write_policy_outputs,
)
from sim_envs.libero.suites import SUITES, STANDARD_SUITES, get_suite, resolve_suites
from sim_envs.libero.venv import unavailable_reason
from vla.core.types import Observation, Policy
from vla.policy import PolicyContext, register_policy

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ fast
def test_suite_table_budgets_instructions_and_keys():
    assert {s: SUITES[s].max_steps for s in (*STANDARD_SUITES, "libero_90")} == {
        "libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400}
    pro = [s for s in SUITES.values() if s.perturbation]
    assert len(pro) == 16 and all(s.instruction == "bddl" and s.max_steps == SUITES[s.base].max_steps for s in pro)
    assert get_suite("libero_goal_swap").unnorm_keys == ("libero_goal", "libero_goal_no_noops")
    assert [s.name for s in resolve_suites("standard")] == list(STANDARD_SUITES)
    assert len(resolve_suites(["pro", "libero_spatial_lan"])) == 16
    with pytest.raises(ValueError, match="Did you mean 'libero_spatial'.*Valid suites"):
        get_suite("libero_spacial")


def _description(n_tasks=3, states=50):
    return {"suite": "libero_spatial", "tasks": [
        {"index": i, "name": f"task_{i}", "language": f"do {i}", "bddl_language": f"Do {i}", "initial_states": states}
        for i in range(n_tasks)]}


def test_plan_selects_tasks_and_states_and_shards_cover_it_once():
    plan = plan_suite(_description(), tasks="all", episodes=50)
    assert len(plan) == 150 and plan[0] == Planned("libero_spatial", 0, "task_0", 0) and plan[50].task_index == 1
    assert [(p.task_index, p.init_index) for p in plan_suite(_description(), tasks=["task_2", 0], episodes=[7, 3])] == [
        (2, 7), (2, 3), (0, 7), (0, 3)]
    with pytest.raises(ValueError, match="initial states"):
        plan_suite(_description(), episodes=51)
    with pytest.raises(ValueError, match="task indices"):
        plan_suite(_description(), tasks=[5])
    parts = blocks(plan, 4)
    assert [len(b) for b in parts] == [38, 38, 37, 37]
    assert [p for b in parts for p in b] == plan  # contiguous, in order, each episode once
    assert parse_shard("3/4") == (3, 4) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "1-2", "x"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def _row(suite, task_index, k, success):
    return {"suite": suite, "task_index": task_index, "task": f"task_{task_index}", "init_index": k,
            "instruction": f"do {task_index}", "success": success, "steps": 3, "error": None, "video_path": None,
            "initial_state_hash": f"{task_index}-{k}", "policy_queries": 3, "policy_s": 0.1, "env_s": 1.0,
            "wall_s": 2.0}


def _write_shard(root: Path, plan, i, n, name="p"):
    rows = [_row(p.suite, p.task_index, p.init_index, success=p.init_index % 2 == 0) for p in blocks(plan, n)[i]]
    meta = {"conventions": {}, "max_steps": {}, "budget_overridden": False, "wait_steps": 10,
            "plan": {"n_episodes": len(plan), "hash": plan_hash(plan)}, "eval_s": 1.0}
    d = root / f"s{i}"
    write_policy_outputs(name, rows, d, meta)
    (d / "shard.json").write_text(json.dumps({"shard": [i, n], "plan_hash": plan_hash(plan),
                                              "plan_episodes": len(plan), "policies": [name]}))
    return d


def test_merge_recombines_shards_and_refuses_gaps_repeats_and_mixed_plans(tmp_path):
    plan = plan_suite(_description(n_tasks=2), episodes=4)
    for i in range(3):
        _write_shard(tmp_path / "run", plan, i, 3)
    reports = merge_runs([tmp_path / "run"], tmp_path / "merged")
    rep = reports["p"]["suites"]["libero_spatial"]
    assert (rep["n_episodes"], rep["n_success"]) == (8, 4)
    assert set(rep["per_task"]) == {"task_0", "task_1"} and rep["per_task"]["task_0"]["n_success"] == 2
    lo, hi = rep["ci95"]
    assert 0 < lo < 0.5 < hi < 1
    info = json.loads((tmp_path / "merged" / "p" / "eval_info.json").read_text())
    assert info["aggregated"]["n_episodes"] == 8 and set(info["per_group"]["dr_level"]) == {"libero_spatial"}

    (tmp_path / "run" / "s1" / "shard.json").unlink()
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        merge_runs([tmp_path / "run"], tmp_path / "m2")
    _write_shard(tmp_path / "run", plan, 1, 3)
    _write_shard(tmp_path / "other", plan_suite(_description(n_tasks=1), episodes=4), 0, 3)
    with pytest.raises(ValueError, match="different plans"):
        merge_runs([tmp_path / "run", tmp_path / "other"], tmp_path / "m3")
    with pytest.raises(FileNotFoundError, match="no shard.json"):
        merge_runs([tmp_path / "nothing"], tmp_path / "m4")


def test_statistics_key_per_suite_as_the_reference_picks_it(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"norm_stats": {"libero_spatial_no_noops": {}, "bridge_orig": {}}}))
    (ckpt / "dataset_statistics.json").write_text(json.dumps({"libero_goal": {}}))
    from sim_envs.libero.conventions import LiberoConventions

    ctx, auto = PolicyContext(), LiberoConventions()
    spec = f"vla:path={ckpt}"
    assert suite_unnorm_key(spec, get_suite("libero_spatial"), auto, ctx) == "libero_spatial_no_noops"
    assert suite_unnorm_key(spec, get_suite("libero_spatial_swap"), auto, ctx) == "libero_spatial_no_noops"
    assert suite_unnorm_key(spec, get_suite("libero_goal_lan"), auto, ctx) == "libero_goal"
    with pytest.raises(ValueError, match=r"no statistics for libero_object.*'bridge_orig', 'libero_goal'"):
        suite_unnorm_key(spec, get_suite("libero_object"), auto, ctx)
    assert suite_unnorm_key(spec, get_suite("libero_object"), LiberoConventions(unnorm_key="bridge_orig"), ctx) == "bridge_orig"
    assert suite_unnorm_key(f"{spec},unnorm_key=mine", get_suite("libero_object"), auto, ctx) == "mine"
    assert suite_unnorm_key("noop", get_suite("libero_object"), auto, ctx) is None


def test_missing_libero_interpreter_says_how_to_install(tmp_path):
    reason = unavailable_reason(str(tmp_path / "nope" / "python"))
    assert "make libero-venv" in reason and str(tmp_path / "nope") in reason
    with pytest.raises(ValueError, match="workers"):
        LiberoConfig(workers=0)


# ------------------------------------------------------------------------------------------------ slow: real LIBERO
@pytest.fixture(scope="module")
def libero_available():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


class Recorder(Policy):
    """Remembers what it was shown; moves down at 1 cm per step with the gripper closing from step 2."""

    cameras = ("primary", "wrist")
    seen: list[Observation] = []
    resets: list[str] = []

    def reset(self, instruction):
        Recorder.resets.append(instruction)

    def act(self, observation):
        Recorder.seen.append(observation)
        a = np.zeros(7, np.float32)
        a[2] = -0.5
        a[6] = 1.0 if len(Recorder.seen) < 2 else 0.0
        return a


@register_policy("libero_test_recorder", summary="test: records the observations LIBERO sends")
def _recorder(opts, ctx):
    return Recorder()


@pytest.mark.slow
def test_libero_episodes_through_the_policy_server(libero_available, tmp_path):
    from sim_envs.libero.runner import run_libero
    from sim_envs.video import read_mp4

    Recorder.seen.clear()
    Recorder.resets.clear()
    cfg = LiberoConfig(tasks=[0], episodes=2, max_steps=4, videos_per_task=1)
    reports = run_libero(["libero_test_recorder"], cfg, suites=resolve_suites("libero_spatial"), out_dir=tmp_path,
                         context=PolicyContext(), progress=False)
    rep = reports["libero_test_recorder"]
    suite = rep["suites"]["libero_spatial"]
    assert suite["n_episodes"] == 2 and suite["n_errors"] == 0 and suite["avg_steps"] == 4
    instruction = "pick up the black bowl between the plate and the ramekin and place it on the plate"
    assert Recorder.resets == [instruction] * 2  # the name-derived task.language, as OpenVLA's eval
    assert len(Recorder.seen) == 8  # one query per step (chunks of one)
    obs = Recorder.seen[0]
    assert set(obs.images) == {"primary", "wrist"} and obs.images["primary"].shape == (256, 256, 3)
    assert obs.proprio.shape == (8,) and 1.0 < obs.proprio[2] < 1.3 and abs(abs(obs.proprio[3]) - np.pi) < 0.2
    assert rep["conventions"]["libero_spatial"]["preset"] == "native"
    rows = [json.loads(line) for line in (tmp_path / "libero_test_recorder" / "libero_episodes.jsonl").open()]
    assert [r["init_index"] for r in rows] == [0, 1] and rows[0]["initial_state_hash"] != rows[1]["initial_state_hash"]
    assert all(r["success"] is False and r["policy_queries"] == 4 for r in rows)
    video = Path(rows[0]["video_path"])
    assert video.is_file() and rows[1]["video_path"] is None and len(read_mp4(video)) == 5  # reset + 4 steps
    info = json.loads((tmp_path / "libero_test_recorder" / "eval_info.json").read_text())
    assert info["per_task"][0]["task"].startswith("libero_spatial/pick_up_the_black_bowl_between")
    assert rep["budget_overridden"] is True and rep["max_steps"] == {"libero_spatial": 4}
    # the policy's actions moved the arm down: later observations have a lower end effector
    assert Recorder.seen[3].proprio[2] < Recorder.seen[0].proprio[2] - 0.005


@pytest.mark.slow
def test_sharded_cli_runs_merge_into_one_result(libero_available, tmp_path):
    """Two shards of a LIBERO-PRO suite through `vla-eval`, then `vla-eval merge=`: the BDDL's paraphrased
    instruction reaches the policy, each episode runs once, the merged result covers the plan."""
    common = ["suite=libero_spatial_lan", "policy=noop", "libero.tasks=[0]", "libero.episodes=2",
              "libero.max_steps=2", "libero.videos_per_task=0"]
    for i in range(2):
        r = subprocess.run([sys.executable, "-m", "sim_envs.cli.eval", *common, f"shard={i}/2",
                            f"hydra.run.dir={tmp_path}/shards/{i}"], capture_output=True, text=True, cwd=REPO,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-m", "sim_envs.cli.eval", f"merge=[{tmp_path}/shards]",
                        f"hydra.run.dir={tmp_path}/merged"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((tmp_path / "merged" / "noop" / "libero.json").read_text())
    suite = rep["suites"]["libero_spatial_lan"]
    assert suite["n_episodes"] == 2 and suite["n_errors"] == 0
    task = next(iter(suite["per_task"].values()))
    assert task["instruction"] == "lift the black bowl between the plate and ramekin and set it on the plate"
    assert len(rep["merged_from"]) == 2 and rep["conventions"]["libero_spatial_lan"]["gripper"] == "continuous"


@pytest.mark.slow
def test_scripted_expert_succeeds_through_the_protocol(libero_available, tmp_path):
    """`policy=libero_expert` acts inside the worker from privileged poses; the env's predicate says it succeeded
    (one task of each suite it handles; bench/libero.py measures every task)."""
    from sim_envs.libero.runner import run_libero

    cfg = LiberoConfig(tasks=[0], episodes=1, videos_per_task=0)
    reports = run_libero(["libero_expert"], cfg, suites=resolve_suites(["libero_spatial", "libero_object"]),
                         out_dir=tmp_path, context=PolicyContext(), progress=False)
    suites = reports["libero_expert"]["suites"]
    assert {s: (r["n_success"], r["n_errors"]) for s, r in suites.items()} == {
        "libero_spatial": (1, 0), "libero_object": (1, 0)}
    assert all(r["avg_steps"] < 200 and r["policy_queries"] == 0 for r in suites.values())
