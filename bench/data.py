"""Data-loading benchmark: our TensorFlow-free torch loader vs OpenVLA's reference tf.data pipeline.

    .venv/bin/python bench/data.py            # ~6-10 min on a busy 2-core box; writes bench/results/data.json
    .venv/bin/python bench/data.py --quick    # fewer batches, one repeat (a smoke run)

Both pipelines deliver the same training batches from the same RLDS data (written here with our
`RLDSWriter`: 224x224 JPEG frames, synthetic scenes), in the same run:
  batch 32, one camera decoded, resized to 224x224, OpenVLA's fine-tuning augmentation (random resized crop
  0.9, brightness, contrast, saturation, hue), actions normalized with the dataset's q01/q99 statistics,
  shuffle buffer of 2000 encoded frames, handed over as torch tensors.
- ours: `vla.data.loader.RLDSLoader(...).batches(32)` with one DataLoader worker process per usable core
  (2 here; torch 1 thread each), and once with 1 worker.
- reference: tfds `builder_from_directory` -> `as_dataset(decoders={"steps": SkipDecoding()})` (as dlimp's
  `from_rlds`) -> per-trajectory standardization and normalization (`traj_map`, 1 thread) -> flatten
  (interleave) -> shuffle -> per-frame decode, lanczos3 resize, augmentation (`map`, num_parallel_calls=16
  as OpenVLA's RLDSDataset sets it) -> batch -> numpy -> torch: the structure of OpenVLA's
  `make_dataset_from_rlds` / `apply_frame_transforms` / `make_interleaved_dataset` (dlimp is not installed
  here; its ops are written out with the same TF calls). Headline: with the same CPU budget as ours (tf.data's
  private pool and inter-op pool of one thread per core, 1 intra-op thread); also as OpenVLA leaves it
  (unbounded: TF's default pools, ~70 threads), recorded beside.
Each measurement runs in its own subprocess; frames/s and CPU time (user + system of the process and its
children) are measured after warm-up batches; memory is the peak over the run of the summed PSS
(proportional set size: shared pages counted once) of the process and its children (the loader workers),
sampled every 0.25 s, plus the main process's own peak RSS. The three headline pipelines run interleaved,
in rotating order, `--repeats` times (3); every figure is the median over a pipeline's runs, with the
frames/s range and each run's 1-min load average recorded. Targets are frames/s ratios of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "data.json"
WORK = ROOT / "outputs" / "bench_data"
BATCH = 32
BUFFER = 2000
EPISODES_1X, STEPS = 60, 40


# ------------------------------------------------------------------------------------------- memory probe
class PeakMemory:
    """Samples the summed PSS of this process and its children in a thread.

    Reads /proc/<pid>/smaps_rollup (one line per process, cheap); parsing the full smaps as psutil's
    memory_full_info does takes the target's memory-map lock long enough to slow a loader down.
    """

    def __init__(self, interval: float = 0.25) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _pss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:  # a worker that just exited
            pass
        return 0

    def _sample(self) -> None:
        pids = [self.proc.pid] + [c.pid for c in self.proc.children(recursive=True)]
        self.peak_pss = max(self.peak_pss, sum(self._pss(pid) for pid in pids))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()

    @staticmethod
    def own_peak_rss() -> int:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children (the loader workers)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _time_batches(batches, warmup: int, n: int, check) -> dict:
    t0 = time.perf_counter()
    first = next(batches)
    check(first)
    t_first = time.perf_counter() - t0
    for _ in range(warmup):
        check(next(batches))
    t1, c1 = time.perf_counter(), _cpu_seconds()
    for _ in range(n):
        check(next(batches))
    dt, cpu = time.perf_counter() - t1, _cpu_seconds() - c1
    threads = _threads()
    return {"frames_per_s": n * BATCH / dt, "seconds": dt, "first_batch_s": t_first, "frames": n * BATCH,
            "cpu_ms_per_frame": 1000 * cpu / (n * BATCH), "load_avg_1min": os.getloadavg()[0], "threads": threads}


def _threads() -> int:
    """Threads of this process and its children (the pipeline's parallelism as the scheduler sees it)."""
    import psutil

    me = psutil.Process()
    return me.num_threads() + sum(c.num_threads() for c in me.children(recursive=True))


# ---------------------------------------------------------------------------------------------- ours
def measure_ours(dataset: str, workers: int, warmup: int, n: int, stats_cache: str) -> dict:
    import torch

    from vla.data.config import DataConfig, DatasetEntry
    from vla.data.loader import RLDSLoader

    torch.set_num_threads(1)
    cfg = DataConfig(datasets=[DatasetEntry(path=dataset)], cameras=["primary"], image_size=224,
                     image_augmentation=True, shuffle_buffer=BUFFER, num_workers=workers, num_streams=max(2, workers),
                     chunk_size=BATCH, statistics_cache=stats_cache)

    def check(b):
        assert b["images"]["primary"].shape == (BATCH, 224, 224, 3) and b["images"]["primary"].dtype == torch.uint8
        assert b["action"].shape == (BATCH, 7) and b["action"].dtype == torch.float32

    with PeakMemory() as mem:
        out = _time_batches(RLDSLoader(cfg).batches(BATCH), warmup, n, check)
    out.update(peak_pss_bytes=mem.peak_pss, main_peak_rss_bytes=mem.own_peak_rss())
    assert "tensorflow" not in sys.modules
    return out


# ----------------------------------------------------------------------------------------- reference
def measure_reference(dataset: str, warmup: int, n: int, stats_cache: str, threads: int = 0) -> dict:
    """OpenVLA's pipeline structure on tf.data (see the module docstring).

    threads=0: as OpenVLA configures it (frame transforms with num_parallel_calls=16, one trajectory thread,
    TF's default thread pools). threads=k: the same CPU budget as our k loader workers: tf.data's private
    thread pool of k threads, one intra-op thread per op, k inter-op threads (as one would configure it on a
    k-core box); the pipeline itself is unchanged."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds
    import torch

    torch.set_num_threads(1)
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    from vla.data.oxe import spec_for_directory
    from vla.data.statistics import get_dataset_statistics

    stats = get_dataset_statistics(dataset, spec_for_directory(dataset), cache_dir=stats_cache)

    def tf_norm(x, s):
        lo, hi = tf.constant(s.q01, tf.float32), tf.constant(s.q99, tf.float32)
        y = tf.clip_by_value(2 * (x - lo) / (hi - lo + 1e-8) - 1, -1, 1)
        y = tf.where(tf.constant(s.mask), y, x)
        return tf.where(tf.constant(s.min == s.max), tf.zeros_like(y), y)

    def traj_map(ep):  # restructure (standardize) + normalize + window of 1 (chunk_act_obs), per trajectory
        steps = ep["steps"]
        t = tf.shape(steps["action"])[0]
        idx = tf.range(t)[:, None]  # window_size 1, future_action_window_size 0
        return {
            "image": tf.gather(steps["observation"]["image"], idx)[:, 0],
            "proprio": tf_norm(tf.gather(steps["observation"]["state"], idx)[:, 0], stats.proprio),
            "action": tf_norm(steps["action"], stats.action),
            "language_instruction": steps["language_instruction"],
            "dataset_name": tf.fill([t], "bench"),
        }

    def augment(image, seed):  # dlimp.augment_image with OpenVLA's kwargs, op order and clipping
        image = tf.image.convert_image_dtype(image, tf.float32)
        seeds = tf.random.stateless_uniform([5, 2], seed=seed, minval=None, maxval=None, dtype=tf.int32)
        scale = tf.random.stateless_uniform([1], seeds[0], 0.9, 0.9)
        side = tf.clip_by_value(tf.sqrt(scale), 0, 1)
        off = tf.random.stateless_uniform([1], seeds[0], 0, 1 - side)
        box = tf.stack([off, off, off + side, off + side], axis=1)
        image = tf.image.crop_and_resize(image[None], box, [0], (224, 224))[0]
        image = tf.clip_by_value(image, 0, 1)
        image = tf.clip_by_value(tf.image.stateless_random_brightness(image, 0.2, seeds[1]), 0, 1)
        image = tf.clip_by_value(tf.image.stateless_random_contrast(image, 0.8, 1.2, seeds[2]), 0, 1)
        image = tf.clip_by_value(tf.image.stateless_random_saturation(image, 0.8, 1.2, seeds[3]), 0, 1)
        image = tf.clip_by_value(tf.image.stateless_random_hue(image, 0.05, seeds[4]), 0, 1)
        return tf.image.convert_image_dtype(image, tf.uint8)

    def frame_map(frame, seed):  # decode_and_resize + augment
        image = tf.io.decode_image(frame["image"], expand_animations=False, dtype=tf.uint8)
        image = tf.image.resize(image, (224, 224), method="lanczos3", antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        frame["image"] = augment(image, seed)
        return frame

    builder = tfds.builder_from_directory(dataset)
    ds = builder.as_dataset(split="train", decoders={"steps": tfds.decode.SkipDecoding()}, shuffle_files=True)
    ds = ds.repeat().map(traj_map, num_parallel_calls=1)  # OpenVLA: traj_transform_threads = #datasets
    ds = ds.interleave(tf.data.Dataset.from_tensor_slices, cycle_length=tf.data.AUTOTUNE,
                       num_parallel_calls=tf.data.AUTOTUNE)  # dlimp flatten
    ds = ds.shuffle(BUFFER, seed=0)
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds)).map(frame_map, num_parallel_calls=16)  # OpenVLA's frame_transform_kwargs
    ds = ds.batch(BATCH).prefetch(2)
    if threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        ds = ds.with_options(options)

    def batches():
        for b in ds.as_numpy_iterator():  # handed to torch as OpenVLA's RLDSDataset does
            yield {"images": {"primary": torch.from_numpy(b["image"])}, "action": torch.from_numpy(b["action"]),
                   "instruction": [s.decode() for s in b["language_instruction"]]}

    def check(b):
        assert b["images"]["primary"].shape == (BATCH, 224, 224, 3) and b["images"]["primary"].dtype == torch.uint8
        assert b["action"].shape == (BATCH, 7) and b["action"].dtype == torch.float32
        assert np.all(np.abs(b["action"][:, :6].numpy()) <= 1)

    with PeakMemory() as mem:
        out = _time_batches(batches(), warmup, n, check)
    out.update(peak_pss_bytes=mem.peak_pss, main_peak_rss_bytes=mem.own_peak_rss())
    return out


# ------------------------------------------------------------------------------------------- driver
def ensure_dataset(name: str, episodes: int) -> str:
    from vla.data.rlds_reader import RLDSReader
    from vla.data.synthetic import write_synthetic_dataset

    path = WORK / name / "1.0.0"
    try:
        if RLDSReader(path).num_episodes("train") == episodes:
            return str(path)
    except (FileNotFoundError, ValueError):
        pass
    write_synthetic_dataset(WORK, name, num_episodes=episodes, num_steps=STEPS, image_size=(224, 224),
                            cameras=("primary",), episodes_per_shard=10, progress=True)
    return str(path)


def run_child(args: list[str]) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    # start_new_session: each measured pipeline is its own session, hence its own scheduler autogroup on Linux,
    # so both compete with the other jobs on the box on the same terms (not with this driver process)
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, timeout=1800,
                         start_new_session=True)
    if out.returncode != 0:
        raise RuntimeError(f"measurement {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


def summarize(runs: list[dict]) -> dict:
    """Medians over a pipeline's runs (frames/s, CPU per frame, memory, load) and the spread of frames/s."""
    fps = [r["frames_per_s"] for r in runs]
    return {"frames_per_s": _median(fps), "frames_per_s_min": min(fps), "frames_per_s_max": max(fps),
            "cpu_ms_per_frame": _median([r["cpu_ms_per_frame"] for r in runs]),
            "cores_used": _median([r["cpu_ms_per_frame"] * r["frames_per_s"] / 1000 for r in runs]),
            "peak_pss_bytes": _median([r["peak_pss_bytes"] for r in runs]),
            "main_peak_rss_bytes": _median([r["main_peak_rss_bytes"] for r in runs]),
            "first_batch_s": _median([r["first_batch_s"] for r in runs]),
            "threads": max(r["threads"] for r in runs), "load_avg_1min": _median([r["load_avg_1min"] for r in runs]),
            "runs": len(runs)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer batches and repeats (smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the headline pipelines")
    parser.add_argument("--measure", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=40, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--tf-threads", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure_child(args: argparse.Namespace) -> None:
    """One measured pipeline in this (child) process; its figures go to stdout as one JSON line."""
    stats_cache = str(WORK / "statistics")
    if args.measure == "ours":
        print(json.dumps(measure_ours(args.dataset, args.workers, args.warmup, args.batches, stats_cache)))
    else:
        print(json.dumps(measure_reference(args.dataset, args.warmup, args.batches, stats_cache,
                                           args.workers if args.tf_threads else 0)))


def measurement_plan(repeats: int, budget: str, d1: str, d4: str, quick: bool) -> list[tuple[str, list[str]]]:
    """The headline pipelines interleaved, the order rotated each repeat (no pipeline always runs first), then
    the 4x-dataset and one-worker runs."""
    headline = [("ours", ["--measure", "ours", "--workers", budget, "--dataset", d1]),
                ("reference", ["--measure", "reference", "--tf-threads", "--workers", budget, "--dataset", d1]),
                ("reference_openvla_default", ["--measure", "reference", "--dataset", d1])]
    plan = []
    for i in range(repeats):
        plan += headline[i % 3:] + headline[:i % 3]
    plan += [("ours_4x_dataset", ["--measure", "ours", "--workers", budget, "--dataset", d4])] * (1 if quick else 2)
    plan += [("ours_1_worker", ["--measure", "ours", "--workers", "1", "--dataset", d1])]
    return plan


def run_plan(console, plan: list[tuple[str, list[str]]], n: str) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name, _ in plan}
    for name, a in plan:
        with console.status(f"measuring {name}"):
            r = run_child(a + ["--batches", n])
        r["load_avg_1min_after"] = os.getloadavg()[0]
        runs[name].append(r)
        console.print(f"{name}: {r['frames_per_s']:.0f} frames/s, {r['cpu_ms_per_frame']:.2f} CPU ms/frame, "
                      f"peak PSS {r['peak_pss_bytes'] / 2**20:.0f} MiB, load {r['load_avg_1min']:.1f}")
    return runs


NOTE = ("Measured on a shared 2-core machine while other jobs ran (the 1-min load average of every run is "
        "recorded). Both headline pipelines get the same CPU budget, one busy thread per usable core: our "
        "loader with that many worker processes (torch: 1 thread each), tf.data with its private thread "
        "pool of that size, 1 intra-op thread and that many inter-op threads, as the reference would be "
        "configured for this box. 'reference_openvla_default' is the same tf.data pipeline with OpenVLA's "
        "settings unbounded (num_parallel_calls=16, AUTOTUNE, TF's default pools: ~70 threads); under "
        "contention its many threads win it a larger share of the box, so frames/s ratios against it "
        "measure scheduling as much as work. CPU ms per frame (user + system of all the pipeline's "
        "processes, per delivered frame) is the load-robust measure of the work each pipeline does; on "
        "an idle box, where a CPU-bound pipeline gets all cores, frames/s follows it. Figures are medians "
        "over runs interleaved in rotating order. 'threads' counts every live thread (TF creates its pools "
        "even when tf.data is bounded; idle threads cost nothing).")


def ratios(runs: dict[str, list[dict]], med: dict[str, dict]) -> dict[str, Any]:
    ours, ref, ref_default = med["ours"], med["reference"], med["reference_openvla_default"]
    # per repeat: each ours run against the reference run next to it (same load), a spread for the median ratio
    paired = [o["frames_per_s"] / r["frames_per_s"] for o, r in zip(runs["ours"], runs["reference"])]
    return {
        "frames_per_s_vs_reference": round(ours["frames_per_s"] / ref["frames_per_s"], 3),
        "frames_per_s_vs_reference_paired_runs": [round(x, 3) for x in paired],
        "cpu_efficiency_vs_reference": round(ref["cpu_ms_per_frame"] / ours["cpu_ms_per_frame"], 3),
        "frames_per_s_vs_reference_openvla_default": round(ours["frames_per_s"] / ref_default["frames_per_s"], 3),
        "cpu_efficiency_vs_reference_openvla_default": round(ref_default["cpu_ms_per_frame"] / ours["cpu_ms_per_frame"], 3),
        "peak_pss_4x_vs_1x": round(med["ours_4x_dataset"]["peak_pss_bytes"] / ours["peak_pss_bytes"], 3),
    }


def build_result(args, runs: dict[str, list[dict]], setup: dict, load_before) -> dict[str, Any]:
    med = {k: summarize(v) for k, v in runs.items()}
    r = ratios(runs, med)
    speedup, mem_ratio = r["frames_per_s_vs_reference"], r.pop("peak_pss_4x_vs_1x")
    targets = [
        {"name": f"loader frames/s vs reference tf.data pipeline, same data, same run, same CPU budget "
                 f"({setup['cpu_budget_threads']} busy threads each), batch 32, 224px, augmented (median of "
                 f"{setup['repeats']} interleaved runs)",
         "value": speedup, "baseline": 1.0, "target": ">= 2.0", "met": bool(speedup >= 2.0)},
        {"name": "peak memory (PSS, loader + workers) on a 4x larger dataset vs the 1x dataset",
         "value": mem_ratio, "baseline": 1.0, "target": "<= 1.2", "met": bool(mem_ratio <= 1.2)},
    ]
    return {
        "benchmark": "data",
        "command": ".venv/bin/python bench/data.py" + (" --quick" if args.quick else ""),
        "machine": {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "note": NOTE,
        "setup": setup,
        "frames_per_s": {k: round(v["frames_per_s"], 1) for k, v in med.items()},
        "frames_per_s_range": {k: [round(v["frames_per_s_min"], 1), round(v["frames_per_s_max"], 1)] for k, v in med.items()},
        "cpu_ms_per_frame": {k: round(v["cpu_ms_per_frame"], 3) for k, v in med.items()},
        "cores_used": {k: round(v["cores_used"], 2) for k, v in med.items()},
        "peak_pss_mib": {k: round(v["peak_pss_bytes"] / 2**20, 1) for k, v in med.items()},
        "main_process_peak_rss_mib": {k: round(v["main_peak_rss_bytes"] / 2**20, 1) for k, v in med.items()},
        "first_batch_s": {k: round(v["first_batch_s"], 2) for k, v in med.items()},
        "threads": {k: v["threads"] for k, v in med.items()},
        "load_avg_1min": {k: round(v["load_avg_1min"], 2) for k, v in med.items()},
        "ratios": r,
        "runs": runs,
        "targets": targets,
    }


def print_summary(console, runs: dict[str, list[dict]], result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="data loading: batch 32, 224x224, augmented, normalized (medians of interleaved runs)")
    for col in ("pipeline", "frames/s (min-max)", "CPU ms/frame", "cores used", "threads", "peak PSS (MiB)",
                "first batch (s)", "load"):
        table.add_column(col)
    for k, v in ((k, summarize(v)) for k, v in runs.items()):
        table.add_row(k, f"{v['frames_per_s']:.0f} ({v['frames_per_s_min']:.0f}-{v['frames_per_s_max']:.0f})",
                      f"{v['cpu_ms_per_frame']:.2f}", f"{v['cores_used']:.2f}", str(v["threads"]),
                      f"{v['peak_pss_bytes'] / 2**20:.0f}", f"{v['first_batch_s']:.1f}", f"{v['load_avg_1min']:.1f}")
    console.print(table)
    r = result["ratios"]
    console.print(f"CPU per frame: reference / ours = {r['cpu_efficiency_vs_reference']:.2f}x (OpenVLA-default "
                  f"reference: {r['cpu_efficiency_vs_reference_openvla_default']:.2f}x); frames/s vs the "
                  f"OpenVLA-default reference: {r['frames_per_s_vs_reference_openvla_default']:.2f}x")
    for t in result["targets"]:
        console.print(f"[{'green' if t['met'] else 'red'}]{t['name']}: {t['value']} (target {t['target']}) "
                      f"{'met' if t['met'] else 'NOT met'}")
    console.print(f"wrote {RESULTS}")


def main() -> None:
    args = parse_args()
    if args.measure:
        measure_child(args)
        return
    from rich.console import Console

    console = Console()
    n = "10" if args.quick else "40"
    repeats = 1 if args.quick else max(1, args.repeats)
    load_before = os.getloadavg()
    with console.status("writing the benchmark datasets (224x224 JPEG) with RLDSWriter"):
        d1 = ensure_dataset("bench_1x", EPISODES_1X)
        d4 = ensure_dataset("bench_4x", 4 * EPISODES_1X)
    budget = str(len(os.sched_getaffinity(0)))  # one busy thread per core: our workers, tf.data's private pool
    runs = run_plan(console, measurement_plan(repeats, budget, d1, d4, args.quick), n)
    setup = {"batch_size": BATCH, "image_size": 224, "shuffle_buffer_frames": BUFFER, "cameras": ["primary"],
             "cpu_budget_threads": int(budget),
             "dataset_1x": {"episodes": EPISODES_1X, "steps_per_episode": "~%d (+-30%%)" % STEPS, "path": d1},
             "dataset_4x": {"episodes": 4 * EPISODES_1X, "path": d4}, "measured_batches": int(n), "repeats": repeats}
    result = build_result(args, runs, setup, load_before)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_summary(console, runs, result)


if __name__ == "__main__":
    main()
