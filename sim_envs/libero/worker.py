"""The benchmark side of `vla-eval suite=...`: LIBERO episodes in LIBERO's own venv, the policy over TCP.

`sim_envs.libero.runner` starts one process per worker with the LIBERO interpreter (`.venv-libero`: LIBERO
needs robosuite 1.4 and mujoco < 4, we use mujoco 4) and a job file; the worker builds each task's
`OffScreenRenderEnv`, runs the standard protocol (`sim_envs.libero.suites`) and asks the policy server for
actions (`vla.serving.policy_server.RemotePolicy`, JSON header + raw bytes). It writes one JSON line per
finished episode to the job's `results` file, so the runner can follow progress and keep what finished if
a worker dies.

    python -m sim_envs.libero.worker JOB.json              # run a job (what the runner does)
    python -m sim_envs.libero.worker --describe SUITE OUT  # OUT.json: the suite's tasks, instructions, states

Imports numpy, `vla.serving`, `vla.core`, `sim_envs.libero.{suites,conventions}` and LIBERO; never torch,
TensorFlow or mujoco 4 (it runs with only `vla` and `sim_envs` on its path).

Each episode re-seeds its env (`env.seed(job.seed)`) before the reset: the reference seeds once per task and
runs the 50 states in order, so its episode k depends on episodes 0..k-1; here an episode depends only on its
initial state, whichever worker or shard runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

logger = logging.getLogger("sim_envs.libero.worker")


def _libero():
    os.environ.setdefault("MUJOCO_GL", "egl")
    from libero.libero import benchmark, get_libero_path
    from libero.libero.envs import OffScreenRenderEnv

    return benchmark, get_libero_path, OffScreenRenderEnv


def bddl_path(task) -> Path:
    _, get_libero_path, _ = _libero()
    return Path(get_libero_path("bddl_files")) / task.problem_folder / task.bddl_file


def describe(suite_name: str) -> dict:
    """The suite's tasks: index, name, both instructions (name-derived and BDDL), number of initial states."""
    from libero.libero.envs.bddl_utils import get_problem_info

    benchmark, _, _ = _libero()
    suite = benchmark.get_benchmark_dict()[suite_name]()
    tasks = []
    for i in range(suite.n_tasks):
        task = suite.get_task(i)
        info = get_problem_info(str(bddl_path(task)))
        tasks.append({"index": i, "name": task.name, "language": task.language,
                      "bddl_language": " ".join(str(info["language_instruction"]).split()),
                      "initial_states": int(len(suite.get_task_init_states(i)))})
    return {"suite": suite_name, "tasks": tasks}


def _state_hash(state: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(state, np.float64).tobytes()).hexdigest()[:16]


class Worker:
    """Runs one job: {host, port, suite, instruction, tasks: [{index, episodes: [state indices]}], max_steps,
    wait_steps, execute_steps, gripper, resolution, seed, policy_timeout_s, video_dir, video_states, video_fps,
    results, expert, record}. With `expert` true the scripted expert (`sim_envs.libero.expert`) acts, here, from the
    simulator's state; otherwise the policy server at host:port. With `record` (a directory) every episode's
    steps after the wait steps are saved there as `<suite>_taskNN_stateKK.npz` (`record_episode`), for
    `sim_envs.libero.collect` to write as RLDS."""

    def __init__(self, job: dict) -> None:
        from sim_envs.libero.suites import NOOP_ACTION
        from vla.serving.policy_server import RemotePolicy

        self.job = job
        self.noop = list(NOOP_ACTION)
        self.expert = bool(job.get("expert"))
        self.client = None if self.expert else RemotePolicy(job["host"], int(job["port"]), connect_timeout_s=30.0,
                                                            timeout_s=float(job["policy_timeout_s"]))
        self.results = Path(job["results"])
        self.results.parent.mkdir(parents=True, exist_ok=True)

    def run(self) -> None:
        benchmark, _, OffScreenRenderEnv = _libero()
        suite = benchmark.get_benchmark_dict()[self.job["suite"]]()
        res = int(self.job["resolution"])
        for entry in self.job["tasks"]:
            task = suite.get_task(int(entry["index"]))
            states = suite.get_task_init_states(int(entry["index"]))
            # the expert reads the simulator's state, not images: render only for its videos (10x the step rate)
            render = not self.expert or bool(self.job.get("record")) or \
                bool(set(entry["episodes"]) & set(self.job.get("video_states", [])))
            t0 = time.perf_counter()
            env = OffScreenRenderEnv(bddl_file_name=str(bddl_path(task)), camera_heights=res, camera_widths=res,
                                     use_camera_obs=render, has_offscreen_renderer=render)
            build_s = time.perf_counter() - t0
            instruction = task.language if self.job["instruction"] == "task_name" else \
                " ".join(str(env.language_instruction).split())
            try:
                for k in entry["episodes"]:
                    row = self.episode(env, task, int(entry["index"]), int(k), states[int(k)], instruction)
                    row["env_build_s"], build_s = build_s, 0.0
                    with self.results.open("a") as f:
                        f.write(json.dumps(row) + "\n")
            finally:
                env.close()
        if self.client is not None:
            self.client.close()

    def episode(self, env, task, task_index: int, k: int, state: np.ndarray, instruction: str) -> dict:
        from vla.serving.policy_server import PolicyServerError

        job = self.job
        row = {"suite": job["suite"], "task_index": task_index, "task": task.name, "init_index": k,
               "instruction": instruction, "success": False, "steps": 0, "error": None, "video_path": None,
               "initial_state_hash": _state_hash(state), "policy_queries": 0, "policy_s": 0.0, "env_s": 0.0,
               "loop_s": 0.0}
        video = None
        if k in job.get("video_states", []):
            from sim_envs.video import EpisodeVideo

            video = EpisodeVideo(instruction, header=f"{job['suite']} task {task_index} state {k}")
        t_start = time.perf_counter()
        try:
            env.seed(int(job["seed"]))
            env.reset()
            obs = env.set_init_state(state)
            for _ in range(int(job["wait_steps"])):
                obs, _, _, _ = env.step(self.noop)
            expert = None
            if self.expert:
                from sim_envs.libero.expert import LiberoExpert

                expert = LiberoExpert(env)
                expert.reset()
            else:
                self.client.reset(instruction)
            queue: list[np.ndarray] = []
            record: dict[str, list] | None = {"obs": [], "action": []} if job.get("record") else None
            steps, max_steps = 0, int(job["max_steps"])
            if video is not None:
                video.add(_upright(obs), "step 0")
            t_loop = time.perf_counter()
            while steps < max_steps:
                if not queue:
                    queue = self.next_actions(obs, instruction, steps, row, expert)
                action = queue.pop(0)
                if record is not None:
                    record["obs"].append(_recorded(obs))
                    record["action"].append(np.asarray(action, np.float64))
                t0 = time.perf_counter()
                obs, _, done, _ = env.step(action.tolist())
                row["env_s"] += time.perf_counter() - t0
                steps += 1
                if video is not None:
                    video.add(_upright(obs), f"step {steps}" + ("  success" if done else ""))
                if done:  # the env's goal predicate (`_check_success`) holds
                    row["success"] = True
                    break
            row["steps"] = steps
            row["loop_s"] = time.perf_counter() - t_loop
            if record is not None and record["action"]:
                row["record_path"] = str(record_episode(record, row, Path(job["record"])))
        except PolicyServerError as e:
            row["error"] = f"policy: {e}"
        except Exception as e:  # an env failure ends this episode as a failure; the job goes on
            row["error"] = f"{type(e).__name__}: {e}"
            logger.error("episode %s/%d/%d failed:\n%s", job["suite"], task_index, k, traceback.format_exc())
        row["wall_s"] = time.perf_counter() - t_start
        if video is not None and video.frames:
            name = f"{job['suite']}_task{task_index:02d}_state{k:02d}_{'success' if row['success'] else 'failure'}.mp4"
            row["video_path"] = str(video.save(Path(job["video_dir"]) / name, fps=float(job["video_fps"])))
        return row

    def next_actions(self, obs: dict, instruction: str, steps: int, row: dict, expert) -> list[np.ndarray]:
        """The LIBERO actions to execute next: the expert's one, or the policy's chunk (its first
        `execute_steps`) mapped to LIBERO's gripper convention."""
        from sim_envs.libero.conventions import env_actions, raw_observation

        if expert is not None:
            return [expert.act(obs)]
        t0 = time.perf_counter()
        chunk = np.atleast_2d(self.client.act(raw_observation(obs, instruction, timestamp=steps / 20.0)))
        row["policy_s"] += time.perf_counter() - t0
        row["policy_queries"] += 1
        n = self.job.get("execute_steps") or len(chunk)
        return list(env_actions(chunk[:n], self.job["gripper"]))


def _recorded(obs: dict) -> dict[str, np.ndarray]:
    """One step as OpenVLA's `regenerate_libero_dataset.py` stores it: both cameras upright (rotated 180
    degrees), state = eef position, axis-angle (robosuite's raw `quat2axisangle`), the two finger joints (8,)."""
    from sim_envs.libero.conventions import policy_state, raw_observation

    raw = raw_observation(obs, "")
    return {**_upright(obs), "state": policy_state(raw.proprio, "oft8", "raw"),
            "joint_state": np.asarray(obs.get("robot0_joint_pos", np.zeros(7)), np.float64).reshape(-1)[:7]}


def record_episode(record: dict, row: dict, out: Path) -> Path:
    """Save a recorded episode (every step, LIBERO's actions as executed: gripper -1 open / +1 close) as npz."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{row['suite']}_task{row['task_index']:02d}_state{row['init_index']:02d}.npz"
    frames = record["obs"]
    np.savez(path, primary=np.stack([f["primary"] for f in frames]), wrist=np.stack([f["wrist"] for f in frames]),
             state=np.stack([f["state"] for f in frames]).astype(np.float32),
             joint_state=np.stack([f["joint_state"] for f in frames]).astype(np.float32),
             action=np.stack(record["action"]).astype(np.float32), instruction=np.array(row["instruction"]),
             success=np.array(bool(row["success"])))
    return path


def _upright(obs: dict) -> dict[str, np.ndarray]:
    from sim_envs.libero.conventions import CAMERA_KEYS

    return {name: np.ascontiguousarray(obs[key][::-1, ::-1]) for name, key in CAMERA_KEYS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", nargs="?", help="job JSON file written by sim_envs.libero.runner")
    parser.add_argument("--describe", nargs=2, metavar=("SUITE", "OUT"),
                        help="write the suite's tasks as JSON to OUT and exit (LIBERO prints to stdout itself)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.describe:
        Path(args.describe[1]).write_text(json.dumps(describe(args.describe[0])))
        return 0
    if not args.job:
        parser.error("give a job file or --describe SUITE")
    Worker(json.loads(Path(args.job).read_text())).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
