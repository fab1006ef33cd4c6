"""`vla-collect suite=libero_spatial`: scripted-expert LIBERO demonstrations as RLDS in the `libero_*_no_noops` layout.

    summary = collect_libero("libero_spatial", LiberoConfig(tasks=[0], episodes=20), "outputs/data")
    # -> outputs/data/libero_spatial_no_noops/1.0.0, loadable with the registered `libero_spatial_no_noops` spec

The episodes run as `vla-eval suite=... policy=libero_expert` runs them (`sim_envs.libero.runner.run_libero`: the
same workers in LIBERO's venv, the same protocol: fixed initial states, seeding, wait steps, budgets, the env's
success predicate), with `libero.record` set so each worker saves its episodes' steps (npz). This process then
writes them with `vla.data.rlds_writer.RLDSWriter` in the layout of OpenVLA's regenerated datasets
(`experiments/robot/libero/regenerate_libero_dataset.py`):
- `steps/observation/image`, `wrist_image`: 256x256 (`libero.resolution`) agentview and eye-in-hand frames,
  stored upright (rotated 180 degrees, as the regeneration stores them);
- `steps/observation/state` (8,): eef position, axis-angle (robosuite's `quat2axisangle`), the two finger
  joints; `steps/observation/joint_state` (7,);
- `steps/action` (7,): the executed OSC delta action, gripper -1 open / +1 close (LIBERO's polarity);
- `steps/language_instruction`: the task's name-derived instruction (`task.language`);
- no-op steps removed with the regeneration's rule (`is_noop`: translation and rotation norm < 1e-4 and the
  gripper command unchanged from the last kept step); only successful episodes unless `keep_failed`.
What differs: `episode_metadata` is ours (episode_id, success, seed = initial-state index, task) instead of
the regeneration's `file_path`, and the demonstrations are the expert's, not LIBERO's human ones.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sim_envs.libero.runner import LiberoConfig, run_libero
from sim_envs.libero.suites import resolve_suites
from vla.core.intervals import wilson_interval

logger = logging.getLogger(__name__)

#: The suites the scripted expert handles (one `On` / `In` goal).
EXPERT_SUITES = ("libero_spatial", "libero_object")
NOOP_THRESHOLD = 1e-4


def is_noop(action: np.ndarray, prev_action: np.ndarray | None = None, threshold: float = NOOP_THRESHOLD) -> bool:
    """OpenVLA's rule: no motion and (after the first kept step) the same gripper command as the last kept one."""
    moves = float(np.linalg.norm(np.asarray(action)[:-1])) >= threshold
    if prev_action is None:
        return not moves
    return not moves and float(action[-1]) == float(prev_action[-1])


def keep_mask(actions: np.ndarray, threshold: float = NOOP_THRESHOLD) -> np.ndarray:
    """Which steps survive the no-op filter (the previous action is the last *kept* one, as in the regeneration)."""
    keep = np.zeros(len(actions), bool)
    prev = None
    for i, a in enumerate(actions):
        if not is_noop(a, prev, threshold):
            keep[i] = True
            prev = a
    return keep


def episode_from_record(path: Path, *, suite: str, task: str, task_index: int, init_index: int):
    """A recorded worker episode (npz) -> `vla.core.episode.Episode` with no-ops removed (None if nothing is left).

    The Episode holds the contract's gripper (1 = open); the writer's `action_gripper="libero"` stores it back
    as LIBERO's -1 open / +1 close, exactly for the expert's binary commands."""
    from vla.core.episode import Episode, EpisodeMetadata

    with np.load(path) as z:
        rec = {k: z[k] for k in z.files}
    keep = keep_mask(rec["action"])
    if not keep.any():
        return None, 0
    action = rec["action"][keep].astype(np.float32)
    action[:, -1] = (1.0 - np.clip(action[:, -1], -1.0, 1.0)) / 2.0  # LIBERO -1 open / +1 close -> 1 = open
    meta = EpisodeMetadata(episode_id=f"{suite}/task{task_index:02d}/state{init_index:02d}", success=bool(rec["success"]),
                           seed=int(init_index), task=f"{suite}/{task}")
    ep = Episode(images={"primary": rec["primary"][keep], "wrist": rec["wrist"][keep]}, state=rec["state"][keep],
                 action=action, instruction=str(rec["instruction"]), metadata=meta,
                 extra_state={"joint_state": rec["joint_state"][keep]})
    return ep, int((~keep).sum())


def collect_libero(suite: str, cfg: LiberoConfig, output_dir: str | Path, *, name: str | None = None,
                   keep_failed: bool = False, episodes_per_shard: int = 50, overwrite: bool = False,
                   work_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the scripted expert on `suite` (tasks and initial states from `cfg`) and write the RLDS dataset
    `<output_dir>/<name>/1.0.0` (name default `<suite>_no_noops`); return (and save as
    `<output_dir>/<name>/collect_summary.json`) the per-task expert success and what was written."""
    from vla.data.rlds_writer import RLDSWriter
    from vla.policy import PolicyContext

    if suite not in EXPERT_SUITES:
        raise ValueError(f"vla-collect suite={suite}: the scripted expert handles only {list(EXPERT_SUITES)}")
    name = name or f"{suite}_no_noops"
    output_dir = Path(output_dir)
    if (output_dir / name / "1.0.0" / "dataset_info.json").exists() and not overwrite:
        raise FileExistsError(f"{output_dir / name / '1.0.0'} already holds a dataset; pass overwrite=true or another name")
    work = Path(work_dir) if work_dir else output_dir / name / "collect_work"
    record = work / "episodes"
    shutil.rmtree(record, ignore_errors=True)
    t0 = time.perf_counter()
    cfg = replace(cfg, record=str(record))
    run_libero(["libero_expert"], cfg, suites=resolve_suites(suite), out_dir=work,
                         context=PolicyContext(), progress=progress)
    rows = [json.loads(line) for line in (work / "libero_expert" / "libero_episodes.jsonl").open()]
    per_task: dict[str, dict] = {}
    written = failed_kept = dropped = steps = noops = 0
    res = int(cfg.resolution)
    writer = RLDSWriter(output_dir, name, cameras=("primary", "wrist"), image_size=(res, res), state_dim=8,
                        episodes_per_shard=episodes_per_shard, overwrite=overwrite, action_gripper="libero",
                        extra_state={"joint_state": 7},
                        description=f"{name}: scripted-expert LIBERO demonstrations in the layout of OpenVLA's "
                                    "regenerated libero_*_no_noops datasets (sim_envs.libero.collect).")
    with writer:
        for r in rows:
            d = per_task.setdefault(r["task"], {"attempted": 0, "succeeded": 0, "errors": 0})
            d["attempted"] += 1
            d["succeeded"] += int(bool(r["success"]))
            d["errors"] += int(r.get("error") is not None)
            path = r.get("record_path")
            if not path or not (r["success"] or keep_failed):
                dropped += 1
                continue
            ep, n_noops = episode_from_record(Path(path), suite=suite, task=r["task"],
                                               task_index=int(r["task_index"]), init_index=int(r["init_index"]))
            if ep is None:
                dropped += 1
                continue
            writer.write(ep)
            written += 1
            failed_kept += int(not r["success"])
            steps += len(ep)
            noops += n_noops
    for d in per_task.values():
        d["success_rate"] = d["succeeded"] / max(d["attempted"], 1)
        d["ci95"] = list(wilson_interval(d["succeeded"], d["attempted"]))
    shutil.rmtree(record, ignore_errors=True)
    summary = {"suite": suite, "dataset_dir": str(output_dir / name / "1.0.0") if written else None,
               "attempted": len(rows), "written": written, "failed_kept": failed_kept, "dropped": dropped,
               "steps_written": steps, "noop_steps_removed": noops, "per_task": per_task,
               "wall_s": time.perf_counter() - t0, "expert_report": str(work / "libero_expert" / "libero.json"),
               "tasks": cfg.tasks, "episodes": cfg.episodes, "max_steps": cfg.max_steps}
    (output_dir / name / "collect_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
