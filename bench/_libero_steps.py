"""Helper of bench/libero.py, run by the LIBERO interpreter: env steps/s of the raw `OffScreenRenderEnv` and of the
same steps through our adapter (the worker's `next_actions`: raw observation -> policy server -> env action),
rounds interleaved in one process on one env. Prints one JSON object on its last line.

    python bench/_libero_steps.py JOB.json     # JOB: host, port, suite, task, steps, rounds, wait_steps, resolution
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def replay_actions(n: int) -> np.ndarray:
    """A smooth end-effector motion with gripper toggles, LIBERO's convention (-1 open / +1 close)."""
    t = np.arange(n)
    a = np.zeros((n, 7))
    a[:, 0] = 0.3 * np.sin(t / 6)
    a[:, 1] = 0.3 * np.cos(t / 8)
    a[:, 2] = 0.2 * np.sin(t / 5)
    a[:, 5] = 0.1 * np.sin(t / 4)
    a[:, 6] = np.where((t // 10) % 2, 1.0, -1.0)
    return a


def main() -> None:
    # run as a script, this file's directory heads sys.path, and its bench/libero.py would shadow the package
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    os.environ.setdefault("MUJOCO_GL", "egl")
    from libero.libero import benchmark

    from sim_envs.libero.worker import Worker, _libero, bddl_path

    job = json.loads(Path(sys.argv[1]).read_text())
    _, _, OffScreenRenderEnv = _libero()
    suite = benchmark.get_benchmark_dict()[job["suite"]]()
    task = suite.get_task(job["task"])
    state = suite.get_task_init_states(job["task"])[0]
    res, n = int(job["resolution"]), int(job["steps"])
    t0 = time.perf_counter()
    env = OffScreenRenderEnv(bddl_file_name=str(bddl_path(task)), camera_heights=res, camera_widths=res)
    build_s = time.perf_counter() - t0
    worker = Worker({**job, "policy_timeout_s": 60.0, "gripper": "continuous", "execute_steps": None,
                     "results": os.devnull, "max_steps": n})
    actions = replay_actions(n)

    def start():
        t0 = time.perf_counter()
        env.seed(0)
        env.reset()
        obs = env.set_init_state(state)
        for _ in range(int(job["wait_steps"])):
            obs, _, _, _ = env.step([0, 0, 0, 0, 0, 0, -1])
        return obs, time.perf_counter() - t0

    def raw():
        obs, reset_s = start()
        w0, c0 = time.perf_counter(), time.process_time()
        for a in actions:
            obs, _, _, _ = env.step(a.tolist())
        return time.perf_counter() - w0, time.process_time() - c0, reset_s

    def ours():
        obs, reset_s = start()
        worker.client.reset(task.language)
        row, queue = {"policy_s": 0.0, "policy_queries": 0}, []
        w0, c0 = time.perf_counter(), time.process_time()
        for t in range(n):
            if not queue:
                queue = worker.next_actions(obs, task.language, t, row, None)
            obs, _, _, _ = env.step(queue.pop(0).tolist())
        return time.perf_counter() - w0, time.process_time() - c0, reset_s

    rounds = {"raw": [], "ours": []}
    for _ in range(int(job["rounds"])):
        rounds["ours"].append(ours())
        rounds["raw"].append(raw())
    env.close()
    print(json.dumps({"steps": n, "env_build_s": build_s, "rounds": rounds}))


if __name__ == "__main__":
    main()
