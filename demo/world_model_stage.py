"""Demo stage 4: world-model rehearsal of the trained VLA and the baselines, next to their sim results.

It runs in a spawned child process: the closed-loop part renders with MuJoCo, and MuJoCo's software
renderer crashes in a process that has loaded TensorFlow (as the demo's collection stage has). Policies
cross the process boundary as specs (checkpoint path, baseline name), not as objects.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from pathlib import Path
from typing import Any, Sequence

logger = logging.getLogger(__name__)


def _child(args: dict[str, Any], result_path: str) -> None:
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(args["torch_threads"])  # spinning extra threads cost several-fold on a busy 2-core box
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from sim_envs.baselines import make_policy
    from world_model.demo_stage import run

    policies = {}
    for name, spec in args["policies"].items():
        _, p = make_policy(spec, tasks=[args["env_id"]], dataset=args["dataset_dir"], seed=args["seed"])
        policies[name] = p() if callable(p) and not hasattr(p, "act") else p
    out = run(args["dataset_dir"], policies, args["out_dir"], budget_s=args["budget_s"], env_id=args["env_id"],
              env_kwargs=args["env_kwargs"], sim_results=args["sim_results"],
              num_initial_states=args["num_initial_states"], max_steps=args["max_steps"])
    Path(result_path).write_text(json.dumps(out, default=str))


def run_world_model_stage(
    *,
    dataset_dir: Path,
    checkpoint: Path,
    env_id: str,
    env_kwargs: dict[str, Any],
    sim_results: dict[str, Sequence[Any]],
    out_dir: Path,
    budget_s: float,
    num_initial_states: int,
    max_steps: int,
    seed: int = 0,
    torch_threads: int = 1,
) -> dict[str, Any]:
    """Train the world model on the demo's episodes and compare policies in imagination vs sim."""
    specs = {"tiny_vla": str(checkpoint), "no_vision": "no_vision", "random": "random"}
    args = {
        "dataset_dir": str(dataset_dir), "out_dir": str(out_dir), "budget_s": budget_s, "env_id": env_id,
        "env_kwargs": env_kwargs, "policies": specs, "seed": seed, "torch_threads": torch_threads, "num_initial_states": num_initial_states,
        "max_steps": max_steps,
        "sim_results": {n: [r.to_json() for r in res] for n, res in sim_results.items() if n in specs},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    result_path = out_dir / "stage_result.json"
    proc = mp.get_context("spawn").Process(target=_child, args=(args, str(result_path)))
    proc.start()
    proc.join()
    if proc.exitcode != 0 or not result_path.is_file():
        raise RuntimeError(f"the world-model stage failed in its child process (exit code {proc.exitcode}); see the log above")
    return json.loads(result_path.read_text())
