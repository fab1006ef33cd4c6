"""Demo stage 8: the trained VLA drives the simulated arm through the ROS 2 bridge (DDS on loopback).

The simulated arm runs in a child process and speaks the robot's topics; the bridge node (with its safety
layer) and the policy run here. The same held-out seeds as the first evaluation episodes are used, so the
bridge's success can be set next to `vla-eval`'s on identical initial states.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

logger = logging.getLogger(__name__)


def run_bridge_stage(
    *,
    checkpoint: Path,
    task_id: str,
    dr_level: str,
    image_size: int,
    cameras: Sequence[str],
    seeds: Sequence[int],
    eval_success: dict[int, bool],
    out_dir: Path,
    unnorm_key: str | None = None,
) -> dict[str, Any]:
    """`unnorm_key`: which of the checkpoint's statistics un-normalize its actions (the task's dataset; needed
    when the checkpoint was trained on a mixture)."""
    from robot_bridge.app import run_sim_in_loop, sim_in_loop_config

    cfg = sim_in_loop_config(
        {"kind": "vla", "path": str(checkpoint), "unnorm_key": unnorm_key},
        env_id=task_id,
        seeds=list(seeds),
        env_kwargs={"dr_level": dr_level, "image_size": image_size, "cameras": list(cameras)},
    )
    summary = run_sim_in_loop(cfg, out_dir)
    per_seed = {int(e["seed"]): bool(e["success"]) for e in summary.get("episodes", [])}
    agree = [per_seed[s] == eval_success[s] for s in per_seed if s in eval_success]
    latency = summary.get("obs_to_command_ms") or {}
    result = {
        "episodes": len(per_seed),
        "success_rate": summary.get("success_rate"),
        "success_ci95": summary.get("success_ci95"),
        "per_seed": per_seed,
        "vla_eval_per_seed": {s: eval_success[s] for s in per_seed if s in eval_success},
        "agreement_with_vla_eval": (sum(agree) / len(agree)) if agree else None,
        "obs_to_command_ms": latency,
        "status_reasons": summary.get("status_reasons"),
        "wall_s": summary.get("wall_s"),
        "targets": [
            {"name": "bridge vs vla-eval: same outcome on the same seeds (fraction)",
             "value": (sum(agree) / len(agree)) if agree else None, "baseline": None, "target": 1.0,
             "met": bool(agree) and all(agree)},
        ],
    }
    if latency.get("p99") is not None:
        result["targets"].append({
            "name": "bridge obs-to-command latency p99 (ms), tiny VLA in-process", "value": latency["p99"],
            "baseline": None, "target": 1000.0 / cfg.bridge.node.rate_hz, "met": latency["p99"] < 1000.0 / cfg.bridge.node.rate_hz,
        })
    return result
