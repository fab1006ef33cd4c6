"""Issue 19's transfer study: a pretrained multi-task Panda VLA adapted to a new arm -> bench/results/transfer.json

    .venv/bin/python bench/transfer.py --base outputs/bench/vla_capabilities/train/final    # ~60-90 min, 2 cores
    .venv/bin/python bench/transfer.py --quick --base <dir> --out /tmp/transfer_quick.json  # smoke run, ~3 min

The base is the multi-task Panda policy `bench/vla_capabilities.py` trains with `vla-train` (a Hugging Face
directory: config.json, model.safetensors, tokenizer, the Panda datasets' statistics). On the new robot (the UR5e
with the Rethink gripper, `sim.robot=ur5e`: 6 joints, another gripper, cameras and workspace) N scripted
demonstrations are collected for each N (own dataset each, so own statistics under their own `unnorm_key`), and
three arms are trained with the SAME steps, batch and data:
  - lora    - `trainer=lora init_from=<base>`: OpenVLA's recipe (gaussian init, constant lr 5e-4) on every layer:
              `all-linear-conv`, since on the tiny model's conv vision peft's `all-linear` leaves the vision
              frozen where OpenVLA's reaches every layer of its ViTs; rank scaled to the width (--lora-rank);
  - lora_linear - the same with peft's `all-linear` (vision frozen): what adapting the vision is worth;
  - full    - `init_from=<base>`, every parameter trained (the tiny recipe's cosine schedule, lr 3e-4);
  - scratch - the same architecture and tokenizer with freshly initialized weights, trained as `full`.
Each checkpoint is evaluated on the same --eval-seeds held-out initial states of the new robot. Then, on the
LoRA run at --check-n: trainable share and adapter size, adapter vs merged actions (`vla-train`'s exported
`final` is the merged model) and the base with the adapter detached vs the base itself on the Panda, plus the
base's Panda success (no forgetting: the base's weights are never written).
Trainings run --jobs at a time in spawned processes (one torch thread each); the JSON is rewritten as runs land.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "transfer.json"
sys.path.insert(0, str(ROOT))

from bench.vla_capabilities import collect_datasets, train  # noqa: E402  (one home for both stages)

logger = logging.getLogger("bench.transfer")

METHODS = ("lora", "lora_linear", "full", "scratch")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, default=ROOT / "outputs" / "bench" / "vla_capabilities" / "train" / "final",
                   help="the multi-task Panda checkpoint (bench/vla_capabilities.py writes it here)")
    p.add_argument("--robot", default="ur5e", help="the new robot (sim.robot)")
    p.add_argument("--task", default="LiftCube", help="the new robot's task")
    p.add_argument("--level", default="low", help="DR level of demonstrations and evaluation")
    p.add_argument("--ns", type=int, nargs="+", default=[10, 25, 50, 100], help="demonstrations per point")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps of every run")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4, help="full and scratch (configs/trainer/tiny.yaml)")
    p.add_argument("--lora-lr", type=float, default=5e-4, help="configs/trainer/lora.yaml (OpenVLA)")
    p.add_argument("--lora-rank", type=int, default=4,
                   help="OpenVLA's r=32 on a 4096-wide Llama; the tiny model is 128 wide, where r=32 would train 24%% "
                        "of the weights: r=4 trains 3%%")
    p.add_argument("--lora-alpha", type=int, default=16)
    p.add_argument("--lora-target", default="all-linear-conv", help="target modules of the `lora` arm")
    p.add_argument("--no-reuse", dest="reuse", action="store_false",
                   help="retrain every point (default: reuse the points of --out measured with the same recipe)")
    p.add_argument("--action-noise", type=float, default=0.01, help="DART noise (m) of the demonstrations")
    p.add_argument("--image-size", type=int, default=84)
    p.add_argument("--sim-cameras", nargs="+", default=["primary", "wrist"])
    p.add_argument("--eval-seeds", type=int, default=40, help="held-out initial states per point")
    p.add_argument("--panda-seeds", type=int, default=40, help="held-out Panda states of the no-forgetting check")
    p.add_argument("--check-n", type=int, default=50, help="N of the targets and of the adapter checks")
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--execute-steps", type=int, default=4)
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time (one torch thread each)")
    p.add_argument("--collect-workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="collection seed start and the first training seed")
    p.add_argument("--train-seeds", type=int, default=2,
                   help="training seeds per point (pooled over the same held-out states): one tiny run is noisy")
    p.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                   help="further vla-train override for every run (repeatable)")
    p.add_argument("--quick", action="store_true", help="smoke run: N in {4, 8}, 30 steps, 4 seeds")
    p.add_argument("--work-dir", type=Path, help="default outputs/bench/transfer (--quick: a temp dir)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.ns, args.steps, args.eval_seeds, args.panda_seeds = [4, 8], 30, 4, 4
        args.check_n = 8
    if args.check_n not in args.ns:
        p.error(f"--check-n {args.check_n} must be one of --ns {args.ns}")
    if not (args.base / "config.json").is_file():
        p.error(f"--base {args.base} holds no config.json: train the multi-task Panda policy first "
                "(.venv/bin/python bench/vla_capabilities.py writes outputs/bench/vla_capabilities/train/final) "
                "or pass a vla-train `final` directory")
    return args


# ----------------------------------------------------------------------------------------- stages
def dataset_name(args, n: int) -> str:
    return f"transfer_{args.robot}_{args.task.lower()}_{args.level}_n{n}"


def collect_all(args, sim, data_root: Path) -> dict[int, dict[str, Any]]:
    """N -> collection summary: one dataset per N (own statistics, own `unnorm_key`), the first N scenes of the same
    seed range, so the sets are nested."""
    out = {}
    for n in args.ns:
        a = argparse.Namespace(tasks=[args.task], dr_levels=[args.level], episodes=n, collect_workers=args.collect_workers,
                               seed=args.seed, action_noise=args.action_noise, every_target=False)
        ((name, summary),) = collect_datasets(a, sim, data_root, name_of=lambda t, lv: dataset_name(args, n)).items()
        out[n] = {**summary, "name": name}
    return out


def scratch_init(base: Path, out: Path, seed: int) -> Path:
    """The base's architecture, tokenizer and processor with freshly initialized weights (the `scratch` arm)."""
    import torch

    from vla.model.configuration_vla import VLAConfig
    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.processing_vla import VLAProcessor

    torch.manual_seed(seed)
    config = VLAConfig.from_pretrained(str(base))
    config.norm_stats = None
    VLAForActionPrediction(config).save_pretrained(str(out))
    VLAProcessor.from_pretrained(base).save_pretrained(out)
    return out


def run_dir(work: Path, method: str, n: int, seed: int, first_seed: int) -> Path:
    return work / "runs" / (f"{method}_n{n}" if seed == first_seed else f"{method}_n{n}_s{seed}")


def run_overrides(args, method: str, n: int, dataset_dir: str, work: Path, init: Path, seed: int | None = None) -> list[str]:
    seed = args.seed if seed is None else seed
    common = [f"data.datasets=[{{path: {dataset_dir}, weight: 1.0}}]", f"data.statistics_cache={work / 'statistics'}",
              f"output_dir={run_dir(work, method, n, seed, args.seed) / 'train'}", f"seed={seed}", f"init_from={init}",
              f"trainer.steps={args.steps}", f"trainer.batch_size={args.batch_size}", "trainer.num_threads=1",
              "trainer.val_every=0", "trainer.val_fraction=0", "trainer.save_every=0", "trainer.keep_last=1",
              "trainer.tensorboard=false", "data.image_augmentation=false"]
    if method in ("lora", "lora_linear"):
        target = args.lora_target if method == "lora" else "all-linear"
        return ["trainer=lora", *common, f"trainer.lr={args.lora_lr}", f"trainer.lora.rank={args.lora_rank}",
                f"trainer.lora.alpha={args.lora_alpha}", f"trainer.lora.target_modules={target}",
                *args.train_override]
    return [*common, f"trainer.lr={args.lr}", "trainer.mode=full", *args.train_override]


def train_and_evaluate(job: dict[str, Any]) -> dict[str, Any]:
    """One (method, N) point in its own process: train, then evaluate on the new robot's held-out states."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(1)
    run_dir = Path(job["run_dir"])
    final, info = train(job["overrides"], run_dir, job["batch_size"])
    results = evaluate(final, job["unnorm_key"], job["task"], job["level"], job["seeds"], job["sim"], job["eval"])
    return {"method": job["method"], "n": job["n"], "train_seed": job["train_seed"], "checkpoint": str(final),
            "training": info, **rate(results)}


def evaluate(checkpoint: Path, unnorm_key: str, task: str, level: str, seeds: int, sim: dict, eval_kw: dict,
             policy=None) -> list:
    from sim_envs.config import SimConfig
    from sim_envs.eval_envs import EvalSettings
    from sim_envs.evaluation import evaluate_policies, plan_episodes
    from vla.policy import policy_source

    if policy is None:
        policy = policy_source({"kind": "vla", "path": str(checkpoint), "unnorm_key": unnorm_key, "name": "tiny_vla"})[1]
    settings = EvalSettings(sim=SimConfig(**sim), **eval_kw)
    return evaluate_policies({"tiny_vla": policy}, plan_episodes(task, level, seeds), settings)["tiny_vla"]


def rate(results) -> dict[str, Any]:
    from vla.core.intervals import wilson_interval

    k, n = sum(bool(r.success) for r in results), len(results)
    return {"successes": k, "episodes": n, "success": k / n if n else None, "ci95": list(wilson_interval(k, n))}


# ----------------------------------------------------------------------------------------- adapter checks
def observations(task: str, level: str, sim: dict, seeds: list[int]) -> list:
    """Reset observations of held-out scenes (what the policy sees first), for output comparisons."""
    from sim_envs.config import SimConfig, make_env
    from vla.core.gym import observation_from_gym

    env = make_env(task, sim=SimConfig(**sim), dr=level)
    try:
        return [observation_from_gym(*env.reset(seed=s)) for s in seeds]
    finally:
        env.close()


def max_abs_difference(a, b, obs: list) -> float:
    import numpy as np

    return float(max(np.max(np.abs(np.asarray(x) - np.asarray(y))) for x, y in zip(a.act_batch(obs), b.act_batch(obs))))


def file_mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 4)


def adapter_checks(args, base: Path, lora_run: dict, panda_task: str, panda_key: str, sims: dict) -> dict[str, Any]:
    """Trainable share, adapter size, adapter == merged on the new robot, detached adapter == base on the Panda."""
    from peft import PeftModel

    from vla.model.policy import VLAPolicy, load_checkpoint
    from vla.train.lora import count_parameters

    final = Path(lora_run["checkpoint"])
    adapter_dir = final.parent / "final_adapter"
    model, processor = load_checkpoint(base)
    peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    trainable = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    _, total = count_parameters(peft_model.get_base_model())
    total -= trainable
    merged = VLAPolicy.from_pretrained(final, unnorm_key=lora_run["unnorm_key"])
    adapted = VLAPolicy(peft_model.get_base_model(), processor, unnorm_key=lora_run["unnorm_key"],
                        norm_stats=merged._norm_stats)
    seeds = list(range(10_000, 10_008))
    new_obs = observations(args.task, args.level, sims["new"], seeds)
    panda_obs = observations(panda_task, args.level, sims["panda"], seeds)
    base_policy = VLAPolicy.from_pretrained(base, unnorm_key=panda_key)
    with peft_model.disable_adapter():
        detached = VLAPolicy(peft_model.get_base_model(), processor, unnorm_key=panda_key,
                             norm_stats=base_policy._norm_stats)
        detached_diff = max_abs_difference(detached, base_policy, panda_obs)
    weights = next(adapter_dir.glob("adapter_model.*"))
    return {"adapter_dir": str(adapter_dir), "trainable_parameters": trainable, "model_parameters": total,
            "trainable_share": trainable / total, "adapter_mb": file_mb(weights),
            "checkpoint_mb": file_mb(base / "model.safetensors"),
            "adapter_share_of_checkpoint": weights.stat().st_size / (base / "model.safetensors").stat().st_size,
            "merged_vs_adapter_max_abs_action_difference": max_abs_difference(merged, adapted, new_obs),
            "detached_vs_base_max_abs_action_difference_on_panda": detached_diff, "compared_observations": len(seeds),
            "_peft_model": peft_model, "_processor": processor, "_base_policy": base_policy}


def panda_no_forgetting(args, checks: dict, panda_task: str, panda_key: str, sims: dict, eval_kw: dict) -> dict:
    """The base on its own Panda task, and the base with the new robot's adapter loaded but detached, same states."""
    from vla.model.policy import VLAPolicy

    peft_model, base_policy = checks.pop("_peft_model"), checks.pop("_base_policy")
    processor = checks.pop("_processor")
    base_res = evaluate(args.base, panda_key, panda_task, args.level, args.panda_seeds, sims["panda"], eval_kw,
                        policy=base_policy)
    with peft_model.disable_adapter():
        detached = VLAPolicy(peft_model.get_base_model(), processor, unnorm_key=panda_key,
                             norm_stats=base_policy._norm_stats)
        det_res = evaluate(args.base, panda_key, panda_task, args.level, args.panda_seeds, sims["panda"], eval_kw,
                           policy=detached)
    return {"task": panda_task, "unnorm_key": panda_key, "base": rate(base_res), "adapter_detached": rate(det_res),
            "same_outcome_per_episode": all(a.success == b.success for a, b in zip(base_res, det_res))}


# ----------------------------------------------------------------------------------------- results
def point(runs: list[dict], method: str, n: int) -> dict | None:
    """One (method, N) point pooled over its training seeds (each on the same held-out states)."""
    from vla.core.intervals import wilson_interval

    mine = [r for r in runs if r["method"] == method and r["n"] == n]
    if not mine:
        return None
    k, e = sum(r["successes"] for r in mine), sum(r["episodes"] for r in mine)
    return {"method": method, "n": n, "successes": k, "episodes": e, "success": k / e, "ci95": list(wilson_interval(k, e)),
            "per_seed": {r.get("train_seed", 0): r["successes"] for r in mine}}


def points(result: dict[str, Any]) -> list[dict]:
    runs = result.get("runs", [])
    return [point(runs, m, n) for m in METHODS for n in sorted({r["n"] for r in runs if r["method"] == m})]


def build_targets(result: dict[str, Any], args) -> list[dict[str, Any]]:
    runs, n = result.get("runs", []), args.check_n
    lora, full, scratch = (point(runs, m, n) for m in ("lora", "full", "scratch"))
    out = []

    def add(name, value, baseline, target, goal, **extra):
        met = None if value is None else (value >= target if goal == ">=" else value <= target)
        out.append({"name": name, "value": value, "baseline": baseline, "target": target, "goal": goal, "met": met,
                    **extra})

    if lora and scratch:
        ratio = lora["success"] / scratch["success"] if scratch["success"] else (None if not lora["success"] else float("inf"))
        add(f"LoRA from the base / from scratch, success at N={n}", ratio, scratch["success"], 2.0, ">=",
            lora_success=lora["success"], note="inf: scratch scored 0 and LoRA did not" if ratio == float("inf") else None)
    if lora and full:
        ratio = lora["success"] / full["success"] if full["success"] else None
        add(f"LoRA / full fine-tuning of the base, success at N={n}", ratio, full["success"], 0.9, ">=",
            lora_success=lora["success"])
    c = result.get("adapter_checks")
    if c:
        add("adapter trainable parameters / model parameters", c["trainable_share"], c["model_parameters"], 0.05, "<=")
        add("saved adapter size / checkpoint size", c["adapter_share_of_checkpoint"], c["checkpoint_mb"], 0.10, "<=")
        add("merged vs adapter actions, max abs difference", c["merged_vs_adapter_max_abs_action_difference"], None,
            1e-4, "<=")
        add("base with adapter detached vs base on the Panda, max abs action difference",
            c["detached_vs_base_max_abs_action_difference_on_panda"], None, 0.0, "<=")
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in METHODS:
        pts = [p for p in points(result) if p["method"] == method]
        if not pts:
            continue
        xs, ys = [r["n"] for r in pts], [r["success"] for r in pts]
        lo, hi = [r["success"] - r["ci95"][0] for r in pts], [r["ci95"][1] - r["success"] for r in pts]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xticks(sorted({r["n"] for r in result.get("runs", [])}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"demonstrations on the new robot ({result['robot']}, {result['task']})")
    ax.set_ylabel(f"success (training seeds x {result['eval']['seeds']} states, Wilson 95%)")
    ax.set_title("Adapting the multi-task Panda VLA to a new arm")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(result: dict[str, Any], args, t_start: float) -> None:
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    result["machine"]["load_avg_now"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = build_targets(result, args)
    result["points"] = points(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    if result.get("runs"):
        plot(result, args.out.with_suffix(".png"))


# ----------------------------------------------------------------------------------------- main
def jobs(args, data: dict[int, dict], work: Path, scratch_dirs: dict[int, Path], sims: dict) -> list[dict[str, Any]]:
    order = sorted(args.ns, key=lambda n: (n != args.check_n, n))
    return [{"method": m, "n": n, "train_seed": s, "run_dir": str(run_dir(work, m, n, s, args.seed)),
             "unnorm_key": data[n]["name"], "batch_size": args.batch_size, "task": args.task, "level": args.level,
             "overrides": run_overrides(args, m, n, data[n]["dataset_dir"], work,
                                        scratch_dirs[s] if m == "scratch" else args.base, seed=s),
             "seeds": args.eval_seeds, "sim": sims["new"],
             "eval": {"num_envs": args.num_envs, "execute_steps": args.execute_steps}}
            for s in train_seeds(args) for n in order for m in args.methods]


def train_seeds(args) -> list[int]:
    return list(range(args.seed, args.seed + args.train_seeds))


def reusable(args, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The points of a previous --out measured the same way (base, robot, task, steps, seeds, the method's recipe):
    a 60-90 min study can be extended (another N, another arm) or resumed without retraining what it has."""
    if not (args.reuse and args.out.is_file()):
        return []
    prev = json.loads(args.out.read_text())
    same = all(prev.get(k) == result.get(k) for k in ("robot", "task", "level", "steps", "batch_size", "eval", "quick")) \
        and prev.get("base", {}).get("dir") == result["base"]["dir"]
    if not same:
        return []
    return [r for r in prev.get("runs", []) if prev.get("recipes", {}).get(r["method"]) == result["recipes"].get(r["method"])]


def run_all(args, job_list: list[dict], result: dict, t_start: float, previous: list[dict]) -> None:
    key = lambda r: (r["method"], r["n"], r.get("train_seed", args.seed))  # noqa: E731
    reused = {key(r): r for r in previous}
    result["runs"] = list(reused.values())  # points of other arms or N measured the same way are kept too
    job_list = [j for j in job_list if key(j) not in reused]
    if reused:
        logger.info("reusing %d point(s) of %s measured with the same recipe", len(result["runs"]), args.out)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futures = {pool.submit(train_and_evaluate, j): j for j in job_list}
        for fut in as_completed(futures):
            j = futures[fut]
            r = {**fut.result(), "unnorm_key": j["unnorm_key"]}
            result["runs"].append(r)
            logger.info("%s N=%d: %d/%d (train %.0f s)", r["method"], r["n"], r["successes"], r["episodes"],
                        r["training"]["wall_s"])
            write(result, args, t_start)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from vla.cli.hydra_app import default_headless_gl

    default_headless_gl()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from bench.vla_capabilities import unnorm_keys
    from sim_envs.config import SimConfig

    work = (args.work_dir or (Path(tempfile.mkdtemp(prefix="transfer_")) if args.quick
                              else ROOT / "outputs" / "bench" / "transfer")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    args.base = args.base.resolve()
    base_cfg = json.loads((args.base / "config.json").read_text())
    sims = {"new": {"robot": args.robot, "image_size": args.image_size, "cameras": list(args.sim_cameras)},
            "panda": {"robot": "panda", "image_size": args.image_size, "cameras": list(args.sim_cameras)}}
    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "transfer", "command": ".venv/bin/python bench/transfer.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick, "date": time.strftime("%Y-%m-%d"), "robot": args.robot, "task": args.task,
        "level": args.level, "ns": args.ns, "steps": args.steps, "batch_size": args.batch_size,
        "train_seeds": train_seeds(args),
        "recipes": {m: run_overrides(args, m, 0, "<data>", work, Path("<init>")) for m in METHODS},
        "base": {"dir": str(args.base), "statistics_keys": sorted(base_cfg.get("norm_stats") or {}),
                 "film_text_layers": base_cfg.get("film_text_layers"), "vision_backbone": base_cfg.get("vision_backbone")},
        "eval": {"seeds": args.eval_seeds, "num_envs": args.num_envs, "execute_steps": args.execute_steps,
                 "image_size": args.image_size},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "jobs": args.jobs, "load_avg_before": [round(x, 2) for x in os.getloadavg()]},
        "stages_s": {}}
    previous = reusable(args, result)  # before this run's first write replaces --out
    for stage_name, fn in (("collect", lambda: collect_all(args, SimConfig(**sims["new"]), work / "data")),
                           ("scratch_init", lambda: {s: scratch_init(args.base, work / (
                               "scratch_init" if s == args.seed else f"scratch_init_s{s}"), s) for s in train_seeds(args)})):
        t0 = time.perf_counter()
        out = fn()
        result["stages_s"][stage_name] = round(time.perf_counter() - t0, 1)
        if stage_name == "collect":
            data = out
            result["collection"] = {n: {k: v for k, v in d.items() if k != "task"} for n, d in data.items()}
        else:
            scratch_dirs = out
        write(result, args, t_start)
    t0 = time.perf_counter()
    run_all(args, jobs(args, data, work, scratch_dirs, sims), result, t_start, previous)
    result["stages_s"]["train_and_evaluate"] = round(time.perf_counter() - t0, 1)
    lora_run = next((r for r in result["runs"] if r["method"] == "lora" and r["n"] == args.check_n
                     and r.get("train_seed", args.seed) == args.seed), None)
    if lora_run is not None:
        t0 = time.perf_counter()
        panda_task = next(t for t in ("LiftOrPushCube", "LiftNamedCube", "PlaceSideCubeOnPlate", "PlaceCubeOnNamedPlate")
                          if any(t.lower() in k.split("_") for k in result["base"]["statistics_keys"]))
        panda_key = unnorm_keys(args.base, [panda_task], args.level)[panda_task]
        checks = adapter_checks(args, args.base, lora_run, panda_task, panda_key, sims)
        result["no_forgetting"] = panda_no_forgetting(args, checks, panda_task, panda_key, sims,
                                                      {"num_envs": args.num_envs, "execute_steps": args.execute_steps})
        result["adapter_checks"] = checks
        result["stages_s"]["checks"] = round(time.perf_counter() - t0, 1)
    write(result, args, t_start)
    for t in result["targets"]:
        logger.info("target %-80s %s (target %s %s) met=%s", t["name"], t["value"], t["goal"], t["target"], t["met"])
    logger.info("wrote %s in %.0f s", args.out, result["wall_s"])


if __name__ == "__main__":
    main()
