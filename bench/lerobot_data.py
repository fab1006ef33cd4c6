"""LeRobot-dataset loading benchmark: our loader vs LeRobot's own `LeRobotDataset` + torch `DataLoader`.

    .venv/bin/python bench/lerobot_data.py           # ~5 min on a busy 2-core box; writes bench/results/lerobot_data.json
    .venv/bin/python bench/lerobot_data.py --quick   # fewer batches, one repeat (a smoke run)

The data: one LeRobot v3.0 dataset written by LeRobot 0.4.4 itself (`LeRobotDataset.create` / `add_frame` /
`save_episode` / `finalize`, in .venv-lerobot), in two variants with the same frames: `image` (PNG frames in the
parquet) and `video` (AV1 mp4, LeRobot's default encoding). 24 episodes x 40 frames, one 256x256 camera (a moving
texture, so the codecs have real work), 8-D state, 7-D action.
Both pipelines deliver shuffled batches of 32 frames (camera, state, action, task) as torch tensors, with the same
CPU budget: 2 DataLoader worker processes (one per core; torch 1 thread each), in the same run:
- ours: `vla.data.loader.RLDSLoader(...).batches(32)` over the dataset directory (`image_size` 256: no resize, no
  augmentation, actions normalized with the dataset's statistics), shuffle buffer of 500 frames; PNG frames decoded
  by FFmpeg's decoder (PyAV), video segments decoded once per episode.
- LeRobot: `LeRobotDataset(root, video_backend="pyav")` (torchcodec, its default, is a CUDA build on PyPI) in a
  `DataLoader(batch_size=32, shuffle=True, num_workers=2, persistent_workers=True)`: a random frame per item, PNG
  decoded by PIL, the video decoded from the keyframe before the frame.
Each measurement runs in its own subprocess; frames/s and CPU time (user + system of the process and its workers)
after warm-up batches; memory is the peak summed PSS of the process and its workers (bench/data.py's probe). Runs
are interleaved in rotating order, `--repeats` times; figures are medians, with each run's 1-min load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "lerobot_data.json"
WORK = ROOT / "outputs" / "bench_lerobot_data"
LEROBOT_PY = ROOT / ".venv-lerobot" / "bin" / "python"
BATCH, BUFFER, WORKERS = 32, 500, 2
EPISODES, STEPS, SIZE = 24, 40, 256
KINDS = ("image", "video")
PIPELINES = ("ours", "lerobot")

#: Runs in .venv-lerobot: LeRobot writes the benchmark dataset.
WRITE = r'''
import sys, numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
root, kind, episodes, steps, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
features = {"observation.images.front": {"dtype": kind, "shape": (size, size, 3), "names": ["height", "width", "channels"]},
            "observation.state": {"dtype": "float32", "shape": (8,), "names": None},
            "action": {"dtype": "float32", "shape": (7,), "names": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]}}
ds = LeRobotDataset.create("local/bench", fps=10, features=features, root=root, use_videos=kind == "video",
                           image_writer_threads=0)
rng = np.random.default_rng(0)
texture = rng.integers(0, 256, (size + steps * 3, size + steps * 3, 3)).astype(np.float32)
for k in range(3):  # smooth it: a scene-like texture, not white noise
    texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1) + np.roll(texture, 1, (0, 1))) / 4
for e in range(episodes):
    tex = np.roll(texture, 37 * e, axis=(0, 1))
    for t in range(steps):
        frame = np.clip(tex[3 * t: 3 * t + size, 2 * t: 2 * t + size] + 20 * np.sin(t / 5 + e), 0, 255).astype(np.uint8)
        ds.add_frame({"observation.images.front": frame, "observation.state": rng.normal(size=8).astype(np.float32),
                      "action": np.r_[rng.normal(0, .02, 6), rng.uniform()].astype(np.float32), "task": f"task {e % 4}"})
    ds.save_episode()
ds.finalize()
'''


def lerobot_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(ROOT / "tests" / "lerobot_compat"), "HF_HUB_OFFLINE": "1",
                "HF_HOME": str(WORK / "hf_home"), "TOKENIZERS_PARALLELISM": "false"})
    return env


def ensure_dataset(kind: str) -> Path:
    root = WORK / f"{kind}_{EPISODES}x{STEPS}_{SIZE}px"
    if not (root / "meta" / "info.json").is_file():
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        WORK.mkdir(parents=True, exist_ok=True)
        script = WORK / "write_dataset.py"
        script.write_text(WRITE)
        t0 = time.perf_counter()
        subprocess.run([str(LEROBOT_PY), str(script), str(root), kind, str(EPISODES), str(STEPS), str(SIZE)],
                       check=True, env=lerobot_env(), capture_output=True)
        print(f"LeRobot wrote the {kind} dataset in {time.perf_counter() - t0:.1f} s: {root}")
    return root


# ------------------------------------------------------------------------------------------ measurement
def _time(batches, warmup: int, n: int, check) -> dict:
    from data import _cpu_seconds, _threads  # bench/data.py: the same CPU and thread probes

    t0 = time.perf_counter()
    check(next(batches))
    first = time.perf_counter() - t0
    for _ in range(warmup):
        check(next(batches))
    t1, c1 = time.perf_counter(), _cpu_seconds()
    for _ in range(n):
        check(next(batches))
    dt, cpu = time.perf_counter() - t1, _cpu_seconds() - c1
    return {"frames_per_s": n * BATCH / dt, "seconds": dt, "first_batch_s": first, "frames": n * BATCH,
            "cpu_ms_per_frame": 1000 * cpu / (n * BATCH), "load_avg_1min": os.getloadavg()[0], "threads": _threads()}


def batches_ours(root: str) -> Any:
    from vla.data.config import DataConfig, DatasetEntry
    from vla.data.loader import RLDSLoader

    cfg = DataConfig(datasets=[DatasetEntry(path=root)], cameras=["primary"], image_size=SIZE, image_augmentation=False,
                     shuffle_buffer=BUFFER, num_workers=WORKERS, num_streams=WORKERS, chunk_size=BATCH,
                     statistics_cache=str(WORK / "statistics"))
    return iter(RLDSLoader(cfg).batches(BATCH)), lambda b: b["images"]["primary"].shape == (BATCH, SIZE, SIZE, 3) or _bad(b)


def batches_lerobot(root: str) -> Any:
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/bench", root=root, video_backend="pyav")
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=WORKERS, drop_last=True,
                                         persistent_workers=True)  # its workers live across epochs (CPU counted)

    def endless():
        while True:
            yield from loader

    return endless(), lambda b: b["observation.images.front"].shape == (BATCH, 3, SIZE, SIZE) or _bad(b)


def _bad(batch: Any) -> None:
    raise AssertionError(f"unexpected batch: { {k: getattr(v, 'shape', None) for k, v in batch.items()} }")


def measure_child(args: argparse.Namespace) -> None:
    import torch

    from data import PeakMemory  # bench/data.py

    torch.set_num_threads(1)
    with PeakMemory() as mem:
        batches, check = (batches_ours if args.child == "ours" else batches_lerobot)(args.dataset)
        out = _time(batches, args.warmup, args.batches, check)
    out.update({"peak_pss_mb": mem.peak_pss / 2**20, "own_peak_rss_mb": PeakMemory.own_peak_rss() / 2**20})
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # DataLoader workers of an endless iterator: leave without joining them


def run_child(pipeline: str, kind: str, root: Path, warmup: int, n: int) -> dict:
    py, env = (sys.executable, dict(os.environ)) if pipeline == "ours" else (str(LEROBOT_PY), lerobot_env())
    cmd = [py, str(Path(__file__).resolve()), "--child", pipeline, "--dataset", str(root), "--warmup", str(warmup),
           "--batches", str(n)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"{pipeline} on {kind} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------- driver
def run_plan(roots: dict[str, Path], repeats: int, warmup: int, n: int) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {f"{p}_{k}": [] for k in KINDS for p in PIPELINES}
    for rep in range(repeats):
        for kind in KINDS:
            order = PIPELINES if rep % 2 == 0 else PIPELINES[::-1]
            for pipeline in order:
                r = run_child(pipeline, kind, roots[kind], warmup, n)
                runs[f"{pipeline}_{kind}"].append(r)
                print(f"  {pipeline:8s} {kind:6s} {r['frames_per_s']:7.1f} frames/s  {r['cpu_ms_per_frame']:6.2f} CPU ms/frame"
                      f"  peak PSS {r['peak_pss_mb']:6.0f} MB  load {r['load_avg_1min']:.1f}", flush=True)
    return runs


def build_result(args: argparse.Namespace, runs: dict[str, list[dict]], roots: dict[str, Path], load_before) -> dict:
    med = {k: {m: statistics.median([r[m] for r in v]) for m in ("frames_per_s", "cpu_ms_per_frame", "peak_pss_mb", "first_batch_s")}
           for k, v in runs.items()}
    targets = []
    for kind in KINDS:
        ratio = med[f"ours_{kind}"]["frames_per_s"] / med[f"lerobot_{kind}"]["frames_per_s"]
        targets.append({"name": f"frames/s of our loader vs LeRobotDataset + DataLoader on LeRobot's own {kind} dataset, "
                                f"same data, same run, 2 workers each, batch 32 (median of {args.repeats} interleaved runs)",
                        "value": round(ratio, 2), "baseline": 1.0, "target": ">= 2.0", "met": ratio >= 2.0})
    size = {k: sum(f.stat().st_size for f in roots[k].rglob("*") if f.is_file()) / 2**20 for k in KINDS}
    return {
        "benchmark": "lerobot_data", "command": ".venv/bin/python bench/lerobot_data.py" + (" --quick" if args.quick else ""),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "setup": {"dataset": f"LeRobot v3.0 written by lerobot 0.4.4: {EPISODES} episodes x {STEPS} frames, one "
                             f"{SIZE}x{SIZE} camera, 8-D state, 7-D action", "dataset_mb": {k: round(v, 1) for k, v in size.items()},
                  "video_codec": "av1 (LeRobot's default, libsvtav1 via PyAV)", "batch_size": BATCH, "workers": WORKERS,
                  "our_shuffle_buffer_frames": BUFFER, "lerobot_video_backend": "pyav", "warmup_batches": args.warmup,
                  "measured_batches": args.batches, "repeats": args.repeats},
        "frames_per_s": {k: round(v["frames_per_s"], 1) for k, v in med.items()},
        "frames_per_s_range": {k: [round(min(r["frames_per_s"] for r in v), 1), round(max(r["frames_per_s"] for r in v), 1)]
                               for k, v in runs.items()},
        "cpu_ms_per_frame": {k: round(v["cpu_ms_per_frame"], 2) for k, v in med.items()},
        "peak_pss_mb": {k: round(v["peak_pss_mb"], 0) for k, v in med.items()},
        "first_batch_s": {k: round(v["first_batch_s"], 2) for k, v in med.items()},
        "runs": runs,
        "note": "Shared 2-core machine; every run's 1-min load average is recorded. Same CPU budget for both: 2 "
                "DataLoader workers, torch 1 thread each. LeRobot decodes video per item (seek to the keyframe "
                "before the frame, decode up to it: its pyav backend); ours decodes each episode's segment once, "
                "sequentially, and shuffles decoded frames in a buffer (so its memory grows with the buffer: "
                f"{BUFFER} frames of {SIZE}x{SIZE}x3 = {BUFFER * SIZE * SIZE * 3 / 2**20:.0f} MB here). Peak PSS counts "
                "the process and its workers, shared pages once.",
        "targets": targets,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one repeat, fewer batches (smoke run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--child", choices=PIPELINES, help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.batches, args.warmup = 1, 12, 2
    return args


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    args = parse_args()
    if args.child:
        measure_child(args)
        return
    if not (LEROBOT_PY.parent.parent / ".installed.stamp").is_file():
        sys.exit("bench/lerobot_data.py needs LeRobot in .venv-lerobot: run `make lerobot-venv` (see "
                 ".venv-lerobot/INSTALL_FAILED if it could not be installed)")
    load_before = os.getloadavg()
    roots = {k: ensure_dataset(k) for k in KINDS}
    runs = run_plan(roots, args.repeats, args.warmup, args.batches)
    result = build_result(args, runs, roots, load_before)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for t in result["targets"]:
        print(f"{t['name']}: {t['value']} (target {t['target']}, {'met' if t['met'] else 'NOT met'})")
    print(f"peak PSS MB: {result['peak_pss_mb']}  ->  {RESULTS}")


if __name__ == "__main__":
    main()
