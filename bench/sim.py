"""Simulation benchmark: env throughput vs raw MuJoCo, and scripted-expert success per task and DR level.

    .venv/bin/python bench/sim.py              # ~3-6 min on a busy 2-core box; writes bench/results/sim.json
    .venv/bin/python bench/sim.py --quick      # fewer steps and episodes (a smoke run)

1. Throughput. `env.step` of `vla_sim/<task>-v0` (action validation, latency queue, IK controller, 50 physics
   steps at 10 Hz control, both cameras rendered at 224x224, proprio, success check, gymnasium wrappers) vs
   the raw loop on the same compiled scene in the same process: 50 x `mj_step` + `update_scene`/`render` of
   both cameras per control step, replaying the env's joint targets so both simulate the same motion. Rounds alternate between the two and the best round of each counts. Both
   wall-clock and CPU-time rates (process time, llvmpipe's render threads included) are recorded; the
   target uses CPU time, which other jobs on the shared machine barely disturb, and the wall-clock ratio is
   reported next to it. Target: env / raw >= 0.8.
2. Expert success. `sim_envs.experts.make_expert` on every task, `--episodes` seeds at level none (target
   >= 0.95 each) and `--episodes-dr` seeds at low / medium / high (reported, no target). Experts read
   privileged state, so these episodes render at 32 px to save time; images do not affect them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "sim.json"
sys.path.insert(0, str(ROOT))

from vla.cli.hydra_app import default_headless_gl  # noqa: E402

default_headless_gl()


def _actions(n: int) -> np.ndarray:
    """A smooth back-and-forth end-effector motion with gripper toggles (stays in the workspace)."""
    t = np.arange(n)
    a = np.zeros((n, 7), np.float32)
    a[:, 0] = 0.02 * np.sin(t / 5)
    a[:, 1] = 0.02 * np.cos(t / 7)
    a[:, 2] = 0.01 * np.sin(t / 3)
    a[:, 5] = 0.05 * np.sin(t / 4)
    a[:, 6] = (t // 10) % 2
    return a


def measure_throughput(task: str, steps: int, rounds: int, size: int = 224) -> dict:
    import gymnasium
    import mujoco

    import sim_envs

    env = gymnasium.make(sim_envs.task_id(task), image_size=size, dr_level="none", terminate_on_success=False,
                         max_episode_steps=10**6)
    env.reset(seed=0)
    base = env.unwrapped
    model, data = base.physics.model, base.physics.data
    n_sub = base.controller.n_substeps
    raw_renderer = mujoco.Renderer(model, size, size)
    actions = _actions(steps)

    def timed(fn) -> tuple[float, float]:
        """(wall, cpu) control steps per second of one round."""
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        return steps / (time.perf_counter() - w0), steps / (time.process_time() - c0)

    def run_env() -> None:
        for a in actions:
            env.step(a)

    # The raw loop replays the env's motion (its joint targets per control step, from the same start
    # state), so both loops simulate the same contacts and render the same frames.
    env.reset(seed=0)
    start = (data.qpos.copy(), data.qvel.copy(), data.act.copy(), data.ctrl.copy())
    ctrl_seq = []
    for a in actions:
        env.step(a)
        ctrl_seq.append(data.ctrl.copy())

    def run_raw() -> None:
        data.qpos[:], data.qvel[:], data.act[:], data.ctrl[:] = start
        mujoco.mj_forward(model, data)
        for ctrl in ctrl_seq:
            data.ctrl[:] = ctrl
            for _ in range(n_sub):
                mujoco.mj_step(model, data)
            for cam in base.cameras:
                raw_renderer.update_scene(data, camera=cam)
                raw_renderer.render()

    run_raw()  # warm-up of the raw renderer
    env_rates, raw_rates = [], []
    for _ in range(rounds):
        env.reset(seed=0)
        env_rates.append(timed(run_env))
        raw_rates.append(timed(run_raw))
    raw_renderer.close()
    env.close()
    r2 = lambda xs: [round(x, 2) for x in xs]  # noqa: E731
    return {"task": task, "image_size": size, "cameras": list(base.cameras), "physics_steps_per_control_step": n_sub,
            "steps_per_round": steps, "rounds": rounds,
            "env_steps_per_s_wall": r2(r[0] for r in env_rates), "raw_steps_per_s_wall": r2(r[0] for r in raw_rates),
            "env_steps_per_cpu_s": r2(r[1] for r in env_rates), "raw_steps_per_cpu_s": r2(r[1] for r in raw_rates),
            "env_best_wall": round(max(r[0] for r in env_rates), 2), "raw_best_wall": round(max(r[0] for r in raw_rates), 2),
            "env_best_cpu": round(max(r[1] for r in env_rates), 2), "raw_best_cpu": round(max(r[1] for r in raw_rates), 2)}


def expert_success(task: str, level: str, episodes: int, seed0: int = 0) -> dict:
    import gymnasium

    import sim_envs
    from sim_envs.experts import make_expert

    env = gymnasium.make(sim_envs.task_id(task), image_size=32, dr_level=level)
    expert = make_expert(env)
    successes, lengths = [], []
    t0 = time.perf_counter()
    for seed in range(seed0, seed0 + episodes):
        obs, info = env.reset(seed=seed)
        expert.reset(info["instruction"])
        steps, done = 0, False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act())
            steps += 1
            done = terminated or truncated
        successes.append(bool(info["success"]))
        lengths.append(steps)
    env.close()
    return {"task": task, "dr_level": level, "episodes": episodes, "successes": int(sum(successes)),
            "success_rate": round(float(np.mean(successes)), 4), "mean_steps": round(float(np.mean(lengths)), 1),
            "failed_seeds": [seed0 + i for i, s in enumerate(successes) if not s],
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer steps and episodes")
    parser.add_argument("--episodes", type=int, default=25, help="expert episodes per task at level none")
    parser.add_argument("--episodes-dr", type=int, default=10, help="expert episodes per task at low/medium/high")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.episodes_dr = 3, 2

    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    import sim_envs
    from sim_envs.tasks import TASK_CLASSES

    console = Console()
    load_before = [round(x, 2) for x in os.getloadavg()]
    t_start = time.time()

    steps, rounds = (30, 2) if args.quick else (60, 6)
    throughput = [measure_throughput(task, steps, rounds) for task in ("LiftCube", "OpenDrawer")]

    levels = ["none", "low", "medium", "high"]
    jobs = [(t, lv, args.episodes if lv == "none" else args.episodes_dr) for lv in levels for t in TASK_CLASSES]
    success = []
    for task, level, n in tqdm(jobs, desc="expert episodes (task x DR level)", unit="cell"):
        success.append(expert_success(task, level, n))

    targets = []
    for tp in throughput:
        ratio = tp["env_best_cpu"] / tp["raw_best_cpu"]
        targets.append({"name": f"env_steps_per_cpu_s_{tp['task']}_224px_2cams_vs_raw_mujoco", "value": tp["env_best_cpu"],
                        "baseline": tp["raw_best_cpu"], "ratio": round(ratio, 3), "target": 0.8, "met": bool(ratio >= 0.8),
                        "wall_clock_ratio": round(tp["env_best_wall"] / tp["raw_best_wall"], 3)})
    for s in success:
        if s["dr_level"] == "none":
            targets.append({"name": f"expert_success_{s['task']}_dr_none", "value": s["success_rate"],
                            "baseline": None, "target": 0.95, "met": bool(s["success_rate"] >= 0.95),
                            "episodes": s["episodes"]})

    table = Table(title="sim throughput (control steps per CPU-second / per wall-second, best round)")
    for col in ("task", "env", "raw mj_step+render", "ratio (cpu)", "ratio (wall)", "target"):
        table.add_column(col)
    for tp, tg in zip(throughput, targets):
        table.add_row(tp["task"], f"{tp['env_best_cpu']:.1f} / {tp['env_best_wall']:.1f}",
                      f"{tp['raw_best_cpu']:.1f} / {tp['raw_best_wall']:.1f}", f"{tg['ratio']:.2f}",
                      f"{tg['wall_clock_ratio']:.2f}", ">= 0.8 " + ("met" if tg["met"] else "NOT met"))
    console.print(table)
    table = Table(title="scripted expert success (episodes)")
    table.add_column("task")
    for lv in levels:
        table.add_column(lv)
    for task in TASK_CLASSES:
        row = [task]
        for lv in levels:
            s = next(x for x in success if x["task"] == task and x["dr_level"] == lv)
            row.append(f"{s['success_rate']:.2f} ({s['successes']}/{s['episodes']})")
        table.add_row(*row)
    console.print(table)

    result = {
        "benchmark": "sim",
        "command": ".venv/bin/python bench/sim.py" + (" --quick" if args.quick else ""),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_before": load_before, "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "note": ("Measured on a shared 2-core machine while other jobs ran (see load averages); absolute steps/s "
                 "are noisy, the ratios compare env and raw rounds interleaved in the same process (best of each); the "
                 "target uses CPU-time rates (process time incl. llvmpipe threads), the wall-clock ratio is reported too. "
                 "Rendering is llvmpipe (software OpenGL) via EGL. Expert episodes render at 32 px (experts read "
                 "privileged state, not pixels)."),
        "tasks": list(sim_envs.TASKS),
        "throughput": throughput,
        "expert_success": success,
        "targets": targets,
        "seconds": round(time.time() - t_start, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.output} in {result['seconds']:.0f} s; "
                  f"targets met: {sum(t['met'] for t in targets)}/{len(targets)}")


if __name__ == "__main__":
    main()
