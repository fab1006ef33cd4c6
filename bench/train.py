"""Training benchmark: tiny-VLA throughput on the CPU, learning (it fits a small dataset), DDP 2 ranks vs 1.

    python bench/train.py              # ~5-10 min on a busy 2-core box; writes bench/results/train.json
    python bench/train.py --quick      # fewer steps (a smoke run; results are not written)

Figures (all with the `trainer=tiny` settings and the tiny model preset `vla-train` trains by default):
- samples/s of one training process (1 torch thread, in-process loader, batch 16) on 64 px sim-like frames.
- learning: action-token accuracy (teacher-forced, OpenVLA's metric) on a small "visual servoing" dataset
  after training on it; target >= 0.9. The action (a coarse controller: 5 levels per axis) is a function of
  where a square is in the image, so the model can only fit it through its vision towers. Baseline: the
  same model before training. (A continuous version, where the exact 1/256 bin depends on sub-pixel
  positions, plateaued at 0.84 after 600 steps in this session: the first action token, which only the
  image determines, is the hard one.)
- DDP: samples/s of `torchrun --nproc_per_node 2` (gloo, 1 thread per rank) over one process with the same
  global batch (1 thread); recorded, no target (2 cores, shared).
- loader: model-ready batches (tokens, labels, 224 px pixel tensors, padded) per second from the data loader
  alone, with 0 and 2 worker processes, and the training thread's CPU time per batch of 16 (what a GPU step
  waits for). Recorded, no target.
- GPU figures (7B LoRA step memory at batch 16 in bf16 with gradient checkpointing; `vla-merge` host
  memory on the 7B): not measured without a GPU; recorded as such.
The machine is shared with other jobs (load averages are recorded), so absolute numbers are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "train.json"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def servo_episode(index: int, *, steps: int, size: int, seed: int = 0):
    """A red square moves in a straight line toward a fixed green target; the action points at the target.

    The action is a coarse controller (5 levels per axis, gripper closing near the target), so every action
    token is determined by where the square is in the image, at the resolution of a few pixels."""
    from vla.core.episode import Episode, EpisodeMetadata

    rng = np.random.default_rng([seed, index])
    start, target = rng.uniform(0.15, 0.85, 2), np.array([0.5, 0.5])
    frames = np.empty((steps, size, size, 3), np.uint8)
    action = np.zeros((steps, 7), np.float32)
    s = max(2, size // 12)
    for t in range(steps):
        p = start + (target - start) * t / steps
        img = np.full((size, size, 3), 40, np.uint8)
        ty, tx = (target * size).astype(int)
        img[ty - s:ty + s, tx - s:tx + s] = (40, 200, 40)
        y, x = (p * size).astype(int)
        img[max(0, y - s):y + s, max(0, x - s):x + s] = (220, 40, 40)
        frames[t] = img
        d = target - p  # a coarse proportional controller: 5 speed levels per axis, read off the image
        level = np.clip(np.round(d / 0.1), -2, 2)
        action[t, :3] = [0.01 * level[1], 0.01 * level[0], 0.01 * min(np.round(np.hypot(*d) / 0.1), 3)]
        action[t, 6] = 1.0 if np.hypot(*d) > 0.12 else 0.0
    return Episode(images={"primary": frames}, state=np.zeros((steps, 8), np.float32), action=action,
                   instruction="move the red square to the green target",
                   metadata=EpisodeMetadata(episode_id=f"servo-{index}", success=True, seed=index))


def write_dataset(root: Path, name: str, *, episodes: int, steps: int, size: int) -> Path:
    from vla.data.rlds_writer import RLDSWriter

    with RLDSWriter(root, name, cameras=("primary",), image_size=(size, size), state_dim=8, episodes_per_shard=8,
                    overwrite=True) as w:
        for i in range(episodes):
            w.write(servo_episode(i, steps=steps, size=size))
    return root / name / "1.0.0"


def data_cfg(path: Path, cache: Path) -> dict:
    return {"datasets": [{"path": str(path)}], "num_workers": 0, "shuffle_buffer": 256, "chunk_size": 16,
            "statistics_cache": str(cache), "image_augmentation": False}


def trainer_overrides(steps: int, **extra) -> dict:
    return {"steps": steps, "save_every": 0, "val_every": 0, "val_fraction": 0.0, "log_every": 10,
            "progress": False, "num_threads": 1, "resume": "auto", **extra}


def last_rate(out: Path) -> float:
    hist = [h for h in json.loads((out / "history.json").read_text()) if "samples_per_s" in h]
    return float(hist[-1]["samples_per_s"])


def bench_learning(work: Path, cache: Path, chunks: list[int]) -> dict:
    """Train in chunks (resuming), evaluating teacher-forced accuracy on the training set after each."""
    from vla.model.presets import build_model
    from vla.train import run
    from vla.train.config import compose_train_config
    from vla.train.evaluate import evaluate_checkpoint, evaluate_model

    ds = write_dataset(work / "data", "servo_small", episodes=8, steps=8, size=64)
    data = data_cfg(ds, cache)
    out = work / "learn"
    base_cfg = compose_train_config()
    model, processor = build_model(base_cfg.model.name, seed=0)
    from dataclasses import replace

    from vla.data.config import to_data_config
    from vla.data.loader import RLDSLoader

    dcfg = replace(to_data_config(data), image_size=model.config.image_size, cameras=["primary"])
    loader = RLDSLoader(dcfg, train=False, transform=processor.transform, collate=processor.collator())
    baseline = evaluate_model(model, loader.batches(32))
    curve, t0 = [], time.perf_counter()
    for steps in chunks:
        final = run({"data": data, "output_dir": str(out), "trainer": trainer_overrides(steps, schedule="constant")})
        m = evaluate_checkpoint(final, data)
        curve.append({"steps": steps, "train_seconds": round(time.perf_counter() - t0, 1), **m})
        print(f"  learning: {steps} steps, accuracy {m['action_accuracy']:.3f} (first action token "
              f"{m['first_token_accuracy']:.3f}), loss {m['loss']:.3f}", flush=True)
        if m["action_accuracy"] >= 0.95:
            break
    return {"baseline": baseline, "curve": curve, "frames": baseline["frames"], "samples_per_s": last_rate(out)}


def bench_throughput(work: Path, cache: Path, steps: int) -> dict:
    from vla.train import run

    ds = write_dataset(work / "data", "servo_large", episodes=32, steps=16, size=64)
    out = work / "throughput"
    run({"data": data_cfg(ds, cache), "output_dir": str(out), "trainer": trainer_overrides(steps)})
    return {"samples_per_s": last_rate(out), "dataset": str(ds)}


def bench_ddp(work: Path, cache: Path, dataset: str, steps: int) -> dict:
    rates = {}
    for nproc in (1, 2):
        out = work / f"ddp_{nproc}"
        launcher = [sys.executable, "-m", "vla.cli.train"] if nproc == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "vla.cli.train"]
        args = [f"output_dir={out}", f"data.datasets=[{{path: {dataset}}}]", f"data.statistics_cache={cache}",
                "data.num_workers=0", "data.shuffle_buffer=256", "data.chunk_size=16", "data.image_augmentation=false",
                f"trainer.steps={steps}", "trainer.save_every=0", "trainer.val_every=0", "trainer.val_fraction=0",
                "trainer.log_every=5", "trainer.progress=false", "trainer.num_threads=1", "trainer.parallelism=ddp"]
        r = subprocess.run(launcher + args, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if r.returncode != 0:
            raise RuntimeError(f"{nproc}-process run failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        rates[nproc] = last_rate(out)
        print(f"  ddp: {nproc} process(es): {rates[nproc]:.1f} samples/s", flush=True)
    return {"one_process_samples_per_s": rates[1], "two_ranks_samples_per_s": rates[2], "ratio": rates[2] / rates[1]}


def bench_loader(work: Path, batches: int) -> dict:
    """The data path without the model: `RLDSLoader(transform=processor.transform, collate=processor.collator())`
    batches of 16 at 224 px (augmented), as `vla-train` builds them; wall-clock samples/s and the training
    thread's CPU time per batch (`time.thread_time`: what stays on the thread that feeds the model)."""
    import torch

    from vla.data.config import DataConfig, DatasetEntry
    from vla.data.loader import RLDSLoader
    from vla.data.synthetic import write_synthetic_dataset
    from vla.model.presets import build_preset

    torch.set_num_threads(1)
    ds = write_synthetic_dataset(work / "data", "loader_224", num_episodes=16, num_steps=20, image_size=(224, 224),
                                 cameras=("primary",))
    _, processor = build_preset("tiny", image_size=224)
    out = {}
    for workers in (0, 2):
        cfg = DataConfig(datasets=[DatasetEntry(path=str(ds))], image_size=224, cameras=["primary"],
                         num_workers=workers, num_streams=2, chunk_size=16, shuffle_buffer=256,
                         statistics_cache=str(work / "stats_loader"))
        it = RLDSLoader(cfg, transform=processor.transform, collate=processor.collator()).batches(16)
        for _ in range(3):  # warm-up: workers started, buffers filled
            next(it)
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(batches):
            next(it)
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        it.close()
        out[f"workers_{workers}"] = {"samples_per_s": round(16 * batches / wall, 1),
                                     "training_thread_cpu_ms_per_batch": round(1000 * cpu / batches, 2)}
        print(f"  loader, {workers} worker(s): {out[f'workers_{workers}']}", flush=True)
    return out


def _build_on(preset: str, device: str, dtype=None, **overrides):
    """A freshly initialized model of `preset` built directly on `device` in `dtype` (random weights)."""
    import torch

    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.presets import build_preset

    config, processor = build_preset(preset, **overrides)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype or torch.float32)
    try:
        torch.manual_seed(0)
        with torch.device(device):
            model = VLAForActionPrediction(config)
    finally:
        torch.set_default_dtype(previous)
    return model, processor


def bench_lora_step(preset: str = "openvla_7b", device: str = "cuda", batch: int = 16, text_tokens: int = 24,
                    steps: int = 3, save_base: Path | None = None, save_adapter: Path | None = None,
                    **overrides) -> dict:
    """One optimizer step of LoRA fine-tuning as `vla-train trainer.mode=lora` runs it on a GPU: base weights
    in bf16, OpenVLA's LoRA defaults through peft, bf16 autocast, gradient checkpointing, AdamW. Random weights
    and synthetic batches (the memory and time of a step do not depend on the values). Peak memory is
    `torch.cuda.max_memory_allocated` over the steps, model weights included.

    `save_base` / `save_adapter`: also write the base checkpoint (sharded safetensors, as `vla-import` does) and
    the trained adapter (as `vla-train` saves it), for the merge benchmark."""
    import torch

    from vla.train.config import FinetuneMode, LoraSettings, TrainerConfig
    from vla.train.lora import count_parameters, prepare_for_mode
    from vla.train.optim import build_optimizer

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    t0 = time.perf_counter()
    model, processor = _build_on(preset, device, dtype, **overrides)
    build_s = time.perf_counter() - t0
    if save_base is not None:
        t1 = time.perf_counter()
        model.save_pretrained(str(save_base), max_shard_size="5GB")
        if processor is not None:
            processor.save_pretrained(save_base)
        save_s = time.perf_counter() - t1
    model = prepare_for_mode(model, FinetuneMode.lora, LoraSettings())
    model.base_model.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    trainable, total = count_parameters(model)
    optimizer = build_optimizer(model, TrainerConfig(lr=5e-4, mode=FinetuneMode.lora))
    cfg = model.base_model.model.config
    n_act = cfg.action_dim
    ids = torch.randint(3, cfg.action_token_begin_id, (batch, text_tokens), device=device)
    ids[:, 0] = cfg.bos_token_id
    actions = torch.randint(cfg.action_token_begin_id, cfg.action_token_begin_id + 256, (batch, n_act), device=device)
    input_ids = torch.cat([ids, actions], dim=1)
    labels = torch.full_like(input_ids, -100)
    labels[:, -n_act:] = actions
    s = cfg.image_size
    pixels = torch.randn(batch, 6, s, s, device=device, dtype=dtype)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):  # the first step is a warm-up (kernel selection, optimizer state allocation)
        t1 = time.perf_counter()
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda):
            loss = model(input_ids=input_ids, pixel_values=pixels, attention_mask=torch.ones_like(input_ids),
                         labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t1)
    out = {"preset": preset, "device": torch.cuda.get_device_name() if cuda else "cpu", "batch": batch,
           "sequence_tokens": int(input_ids.shape[1]), "image_size": s, "dtype": str(dtype).split(".")[-1],
           "parameters": total, "trainable_parameters": trainable, "build_seconds": round(build_s, 1),
           "step_seconds_median": round(float(np.median(times[1:])), 4), "loss": float(loss.detach()),
           "samples_per_s": round(batch / float(np.median(times[1:])), 2)}
    if cuda:
        out["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if save_base is not None:
        out["base_save_seconds"] = round(save_s, 1)
    if save_adapter is not None:
        model.peft_config["default"].base_model_name_or_path = str(Path(save_base).resolve()) if save_base else None
        model.save_pretrained(str(save_adapter), save_embedding_layers=False)
        if processor is not None:
            processor.save_pretrained(save_adapter)
    del model, optimizer
    if cuda:
        torch.cuda.empty_cache()
    return out


def bench_merge(base: Path, adapter: Path, output: Path) -> dict:
    """`vla-merge` as a user runs it (its own process). Peak host memory is the merge process's own high-water
    mark (VmHWM, read by the process itself just before it exits): `getrusage(RUSAGE_CHILDREN)` would also count
    the pages the child inherited from this (large) benchmark process at fork time."""
    code = ("import sys\n"
            "sys.argv = ['vla-merge'] + sys.argv[1:]\n"
            "try:\n"
            "    from vla.cli.merge import main\n"
            "    main()\n"
            "finally:\n"
            "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
            "    sys.stderr.write('PEAK ' + hwm[0].split()[1] + '\\n')\n")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, f"adapter={adapter}", f"base={base}", f"output={output}"],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"vla-merge failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    peak_kib = int([ln for ln in r.stderr.splitlines() if ln.startswith("PEAK ")][-1].split()[1])
    shards = sorted(p.stat().st_size for p in base.glob("*.safetensors"))
    return {"seconds": round(wall, 1), "peak_host_memory_gb": round(peak_kib * 1024 / 1e9, 2),
            "base_shards": len(shards), "largest_shard_gb": round(shards[-1] / 1e9, 2),
            "base_total_gb": round(sum(shards) / 1e9, 2)}


def gpu_7b(work: Path) -> dict:
    """The issue's GPU figures: a 7B LoRA step (batch 16, bf16, gradient checkpointing) and `vla-merge` on 7B."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--gpu-7b needs a CUDA device")
    base, adapter, merged = work / "base_7b", work / "adapter_7b", work / "merged_7b"
    # the project's BPE at Llama-2's vocabulary size stands in for the Llama-2 tokenizer (not downloadable here),
    # so the saved base is a complete checkpoint `vla-train init_from=` can fine-tune
    step = bench_lora_step("openvla_7b", "cuda", 16, save_base=base, save_adapter=adapter, tokenizer="tiny")
    print(f"  7B LoRA step: {step}", flush=True)
    merge = bench_merge(base, adapter, merged)
    print(f"  vla-merge 7B: {merge}", flush=True)
    return {"status": "measured", "lora_step": step, "merge": merge}


def gpu_targets(gpu: dict) -> list[dict]:
    if gpu.get("status") != "measured":
        note = gpu.get("status", "not measured")
        return [{"name": "7B LoRA step (batch 16, bf16, gradient checkpointing) peak GPU memory, GB", "value": None,
                 "baseline": None, "target": "<= 60", "met": None, "note": note},
                {"name": "vla-merge peak host memory on the 7B, GB", "value": None, "baseline": None,
                 "target": "record", "met": None, "note": note}]
    step, merge = gpu["lora_step"], gpu["merge"]
    return [{"name": "7B LoRA step (batch 16, bf16, gradient checkpointing) peak GPU memory, GB (1e9 bytes)",
             "value": step["peak_memory_gb"], "baseline": None, "target": "<= 60",
             "met": bool(step["peak_memory_gb"] <= 60), "device": step["device"]},
            {"name": "vla-merge peak host memory on the 7B, GB (baseline: the whole bf16 base model)",
             "value": merge["peak_host_memory_gb"], "baseline": merge["base_total_gb"], "target": "record",
             "met": None, "largest_shard_gb": merge["largest_shard_gb"]}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gpu-7b", action="store_true",
                    help="measure only the GPU figures (7B LoRA step, vla-merge on 7B; needs CUDA and ~40 GB of disk) "
                         "and update them in bench/results/train.json, keeping the CPU figures")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()
    if args.gpu_7b:
        main_gpu(args.work)
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench_train_", dir=ROOT / "outputs" if (ROOT / "outputs").is_dir() else None))
    cache = work / "stats"
    t0 = time.perf_counter()
    print("throughput ...", flush=True)
    thr = bench_throughput(work, cache, 20 if args.quick else 60)
    print(f"  {thr['samples_per_s']:.1f} samples/s", flush=True)
    print("learning ...", flush=True)
    learn = bench_learning(work, cache, [50] if args.quick else [100, 200, 300, 400, 600])
    print("ddp ...", flush=True)
    ddp = bench_ddp(work, cache, thr["dataset"], 10 if args.quick else 30)
    print("loader ...", flush=True)
    loader = bench_loader(work, 10 if args.quick else 40)
    acc = learn["curve"][-1]["action_accuracy"]
    base_acc = learn["baseline"]["action_accuracy"]
    targets = [
        {"name": "tiny VLA training throughput, samples/s (1 process, 1 thread, batch 16, 64 px frames)",
         "value": round(thr["samples_per_s"], 2), "baseline": None, "target": "record", "met": None},
        {"name": f"learning: action-token accuracy on a {learn['frames']}-frame dataset after "
                 f"{learn['curve'][-1]['steps']} steps (baseline: the untrained model)",
         "value": round(acc, 4), "baseline": round(base_acc, 4), "target": ">= 0.9", "met": bool(acc >= 0.9)},
        {"name": "learning: accuracy of the first action token (decided by the image alone) on the same frames",
         "value": round(learn["curve"][-1]["first_token_accuracy"], 4),
         "baseline": round(learn["baseline"]["first_token_accuracy"], 4), "target": "record", "met": None},
        {"name": "DDP 2 ranks vs 1 process, samples/s ratio (gloo, same global batch 16, 1 thread each)",
         "value": round(ddp["ratio"], 3), "baseline": 1.0, "target": "record", "met": None},
        {"name": "loader alone: model-ready batches of 16 at 224 px, samples/s (2 worker processes)",
         "value": loader["workers_2"]["samples_per_s"], "baseline": None, "target": "record", "met": None},
        {"name": "loader: training-thread CPU ms per batch of 16 at 224 px (2 worker processes)",
         "value": loader["workers_2"]["training_thread_cpu_ms_per_batch"], "baseline": None, "target": "record",
         "met": None},
    ]
    gpu = _previous_gpu()
    targets += gpu_targets(gpu)
    loader_change = _previous("loader_change")
    targets += loader_change_targets(loader_change)
    result = {
        "benchmark": "train", "command": ".venv/bin/python bench/train.py",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in os.getloadavg()]},
        "note": "Measured on a shared 2-core machine while other jobs ran (see load averages); absolute samples/s "
                "are noisy. Learning accuracy is teacher-forced on the training frames (memorization through vision).",
        "throughput": thr, "learning": learn, "ddp": ddp, "loader": loader, "gpu_7b": gpu,
        "wall_seconds": round(time.perf_counter() - t0, 1), "targets": targets,
    }
    if loader_change:
        result["loader_change"] = loader_change
    _print_targets(targets)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS}")


def _previous(key: str) -> dict:
    """A one-off record of an earlier results file (kept when the figures are re-measured)."""
    return json.loads(RESULTS.read_text()).get(key, {}) if RESULTS.is_file() else {}


def loader_change_targets(record: dict) -> list[dict]:
    """Before/after figures of the loader change (issue 17: model-ready batches), measured once, back to back."""
    if not record:
        return []
    thr, cpu = record["throughput_samples_per_s"], record["loader_training_thread_cpu_ms_per_batch"]
    return [{"name": "loader change (issue 17): tiny VLA training throughput, samples/s, median of back-to-back "
                     "runs of this benchmark (baseline: before the change)",
             "value": thr["after_median"], "baseline": thr["before_median"], "target": "record", "met": None},
            {"name": "loader change (issue 17): training-thread CPU ms per batch of 16 at 224 px, 2 workers "
                     "(baseline: before the change)",
             "value": cpu["after_median"], "baseline": cpu["before_median"], "target": f"< {cpu['before_median']}",
             "met": bool(cpu["after_median"] < cpu["before_median"])}]


def _previous_gpu() -> dict:
    """The GPU figures of an earlier `--gpu-7b` run (kept when the CPU figures are re-measured without a GPU)."""
    if RESULTS.is_file():
        previous = json.loads(RESULTS.read_text()).get("gpu_7b", {})
        if previous.get("status") == "measured":
            return previous
    return {"status": "not measured (no GPU in the run that wrote this file): run `python bench/train.py --gpu-7b` "
                      "on a CUDA machine"}


def main_gpu(work: Path | None) -> None:
    import datetime

    import torch

    work = Path(work or tempfile.mkdtemp(prefix="bench_train_gpu_"))
    t0 = time.perf_counter()
    gpu = gpu_7b(work)
    gpu.update({"command": "python bench/train.py --gpu-7b", "torch": torch.__version__,
                "date": datetime.date.today().isoformat(), "wall_seconds": round(time.perf_counter() - t0, 1)})
    result = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"benchmark": "train", "targets": []}
    result["gpu_7b"] = gpu
    new = gpu_targets(gpu)
    names = {t["name"].split(",")[0] for t in new}
    result["targets"] = [t for t in result.get("targets", []) if t["name"].split(",")[0] not in names] + new
    _print_targets(result["targets"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


def _print_targets(targets: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bench/train.py")
    for col in ("figure", "value", "baseline", "target", "met"):
        table.add_column(col)
    for t in targets:
        table.add_row(t["name"], str(t["value"] if t["value"] is not None else t.get("note")), str(t["baseline"]),
                      str(t["target"]), str(t["met"]))
    Console().print(table)


if __name__ == "__main__":
    main()
