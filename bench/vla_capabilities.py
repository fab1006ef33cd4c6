"""Issue 18's benchmark: one tiny multi-task language VLA, end to end -> bench/results/vla_capabilities.json

    .venv/bin/python bench/vla_capabilities.py                     # full size: ~35-90 min on a busy 2-core box
    .venv/bin/python bench/vla_capabilities.py --quick --out /tmp/vla_capabilities_quick.json   # smoke run, ~2 min
    .venv/bin/python bench/vla_capabilities.py --checkpoint outputs/bench/vla_capabilities/train/final \\
        --data-dir outputs/bench/vla_capabilities/data/vcap_liftnamedcube_low/1.0.0 ...   # evaluate only
    .venv/bin/python bench/vla_capabilities.py --train-override model.llm.num_layers=4 --steps 10000

Stages, each through the API its CLI uses and each timed:
  1. collect  - one RLDS dataset per task x DR level (scripted experts, DART action noise, each scene once per
                candidate target (`every_target`); `vla-collect`'s
                `sim_envs.collect.collect`), in a child process: the RLDS writer loads TensorFlow, next to which
                MuJoCo's software renderer segfaults, so the evaluation's envs can then stay in this process.
  2. ground   - grounding pretraining of the model's vision + instruction FiLM on rendered scenes with
                ground-truth labels (`sim_envs.grounding`; `--ground-steps 0` skips it): without it the tiny
                VLA never learned which object the words name (docs/history.md, L2); a keypoint loss puts one
                keypoint on the named object (L9), frames span the whole expert rollout (L10).
  3. train    - ONE tiny VLA on the mixture of those datasets (`data.datasets` with weights; `vla-train`'s
                `compose_train_config` + `vla.train.run`), the recipe as options (defaults below), the grounded
                vision frozen (`--freeze-vision`); then how far its keypoint lies from the named object.
  4. evaluate - with `vla.policy.policy_source` policies, 4 envs batched through the policy, 4 actions of each
                chunk executed (as the demo):
     - success per task at DR `--eval-level` (default low), `--seeds-low` held-out initial states each, next to
       the no-vision baseline (needs the datasets) -> target: mean over tasks >= 0.8;
     - the language protocol (`sim_envs.language_eval`): swap (every target of each scene named in turn;
       target: success on the named one >= 0.7, wrong-target <= 0.1), paraphrase (held-out templates, same
       seeds; target: >= 0.9 x the seen-template success) and the blind-language baseline (fixed instruction),
       recorded next to chance 1/K;
     - DR `none` vs `high` (target: high >= 0.75 x none);
     - one perturbation dimension at a time (`sim_envs.robustness_eval` / `sim_envs.perturbations`, as
       `vla-eval protocol=robustness`; target: every dimension at magnitude 2 >= 0.7 x nominal).
The checkpoint keeps one set of normalization statistics per training dataset (OpenVLA's `unnorm_key`), so
each task is evaluated with its own dataset's key (recorded under `unnorm_keys`).

The JSON is rewritten after every stage, so a failing later stage keeps what was measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "vla_capabilities.json"
sys.path.insert(0, str(ROOT))

logger = logging.getLogger("bench.vla_capabilities")

TASKS = ("LiftNamedCube", "PlaceCubeOnNamedPlate", "LiftOrPushCube", "PlaceSideCubeOnPlate")
ROBUSTNESS_POLICY = "tiny_vla"
#: What `--checkpoint` records of the checkpoint's config.json as its recipe.
RECIPE_KEYS = ("image_size", "cameras", "decoding", "action_chunk", "action_head", "action_queries", "use_proprio",
               "proprio_dim", "vision_film")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bool_opt = argparse.BooleanOptionalAction
    g = p.add_argument_group("data")
    g.add_argument("--tasks", nargs="+", default=list(TASKS), help="sim tasks (each must name one of several targets)")
    g.add_argument("--dr-levels", nargs="+", default=["low"], help="DR levels of the demonstrations (a dataset each)")
    g.add_argument("--episodes", type=int, default=60,
                   help="initial scenes per task and DR level (with --every-target each yields one episode per candidate)")
    g.add_argument("--every-target", action=bool_opt, default=True,
                   help="paired language data: each scene demonstrated once per candidate target (vla-collect every_target)")
    g.add_argument("--action-noise", type=float, default=0.01, help="DART noise (m) on the executed translation")
    g.add_argument("--image-size", type=int, default=84, help="camera resolution of collection, model and evaluation")
    g.add_argument("--sim-cameras", nargs="+", default=["primary", "wrist"], help="cameras recorded and rendered")
    g.add_argument("--collect-workers", type=int, default=2)
    g.add_argument("--weights", type=float, nargs="+", help="mixture weight per task (x its transitions; default 1)")
    g = p.add_argument_group("training recipe (vla-train overrides)")
    g.add_argument("--cameras", nargs="+", default=["wrist"], help="cameras the model reads (model.cameras)")
    g.add_argument("--decoding", default="parallel")
    g.add_argument("--action-chunk", type=int, default=4)
    g.add_argument("--action-head", default="l1")
    g.add_argument("--action-queries", action=bool_opt, default=True)
    g.add_argument("--use-proprio", action=bool_opt, default=True)
    g.add_argument("--vision-film", action=bool_opt, default=True, help="instruction-conditioned vision towers")
    g.add_argument("--vision-backbone", default="conv_keypoints", help="dinosiglip (OpenVLA's ViTs) or conv_keypoints")
    g.add_argument("--ground-steps", type=int, default=4000,
                   help="grounding pretraining steps before vla-train (sim_envs.grounding; 0 = train from scratch)")
    g.add_argument("--ground-scenes", type=int, default=300, help="rendered scenes per task for grounding pretraining")
    g.add_argument("--ground-expert-steps", type=int, default=60,
                   help="grounding frames come from expert steps 0..N of each rollout (GroundingSettings."
                        "max_expert_steps): 60 covers carrying and placing, 15 only the approach (docs/history.md L10)")
    g.add_argument("--ground-frames", type=int, default=3, help="frames per (scene, candidate) expert rollout")
    g.add_argument("--ground-keypoint-weight", type=float, default=1.0,
                   help="grounding: weight of the loss putting a keypoint on the named object in the image (L9)")
    g.add_argument("--ground-goal-keypoint-weight", type=float, default=0.0,
                   help="grounding: the same for a second keypoint and the named goal (plate, push target; L11)")
    g.add_argument("--freeze-vision", action=bool_opt, default=True,
                   help="vla-train trainer.mode=freeze_vision: keep the grounded vision and its instruction FiLM as "
                        "grounding left them (trained on, they lose the named object: L10)")
    g.add_argument("--steps", type=int, default=8000)
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--lr", type=float, default=3e-4)
    g.add_argument("--num-threads", type=int, default=1, help="torch threads of training and evaluation")
    g.add_argument("--image-augmentation", action=bool_opt, default=False)
    g.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                   help="further vla-train hydra override, applied last (repeatable)")
    g.add_argument("--seed", type=int, default=0, help="collection seed start, training and baseline seed")
    g = p.add_argument_group("evaluation")
    g.add_argument("--checkpoint", type=Path, help="evaluate this checkpoint (skips collection and training)")
    g.add_argument("--data-dir", action="append", default=[], type=Path,
                   help="with --checkpoint: an RLDS dataset of the no-vision baseline (repeatable; none: skip it)")
    g.add_argument("--eval-level", default="low", help="DR level of the per-task success and the language protocol")
    g.add_argument("--seeds-low", type=int, default=40, help="initial states per task at --eval-level")
    g.add_argument("--seeds-language", type=int, default=20, help="initial states per task of swap/paraphrase/blind")
    g.add_argument("--seeds-dr", type=int, default=20, help="initial states per task at DR none and high")
    g.add_argument("--seeds-robustness", type=int, default=20, help="initial states per task and perturbation level")
    g.add_argument("--dimensions", nargs="+", help="perturbation dimensions (default: all)")
    g.add_argument("--magnitudes", type=int, nargs="+", default=[2], help="perturbation magnitudes 1-3 (target: 2)")
    g.add_argument("--unknown-words", default="drop", choices=["warn", "drop"],
                   help="the tiny VLA's policy option for words its training instructions never used (vla.model."
                        "policy): drop (its word embeddings are learned from scratch, so an unseen word's pieces carry "
                        "no meaning, only noise) or warn (fed to the model as they are)")
    g.add_argument("--num-envs", type=int, default=4)
    g.add_argument("--execute-steps", type=int, default=4)
    g = p.add_argument_group("run")
    g.add_argument("--quick", action="store_true", help="smoke run: 2 tasks, 10 episodes, 50 steps, 2 seeds")
    g.add_argument("--work-dir", type=Path, help="datasets and checkpoints (default outputs/bench/vla_capabilities; "
                   "with --quick a temporary directory)")
    g.add_argument("--out", type=Path, default=RESULTS, help="the result JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks = args.tasks[:2]
        args.episodes, args.steps = 4, 50
        args.ground_steps, args.ground_scenes = min(args.ground_steps, 20), 4
        args.seeds_low = args.seeds_language = args.seeds_dr = args.seeds_robustness = 2
    if args.weights is not None and len(args.weights) != len(args.tasks):
        p.error(f"--weights needs one value per task ({len(args.tasks)}), got {len(args.weights)}")
    if args.data_dir and args.checkpoint is None:
        p.error("--data-dir goes with --checkpoint (otherwise the collected datasets are used)")
    if args.checkpoint is not None and not (args.checkpoint / "config.json").is_file():
        p.error(f"--checkpoint {args.checkpoint} holds no config.json (a vla-train `final` directory is expected)")
    if "primary" not in args.sim_cameras or any(c not in args.sim_cameras for c in args.cameras):
        p.error(f"--sim-cameras must include primary and the model's --cameras {args.cameras}, got {args.sim_cameras}")
    return args


# ----------------------------------------------------------------------------------------- stages
def dataset_name(task: str, level: str) -> str:
    return f"vcap_{task.lower()}_{level}"


def _collect_child(settings, root: str, name: str, queue) -> None:
    from sim_envs.collect import collect

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    queue.put(collect(settings, root_dir=root, name=name, overwrite=True).to_json())


def collect_datasets(args, sim, data_root: Path, name_of=dataset_name) -> dict[str, dict[str, Any]]:
    """name -> CollectSummary json, one dataset per task x level (each collected in a spawned child process);
    `name_of(task, level)` names each dataset (its `unnorm_key`)."""
    from sim_envs.collect import CollectSettings

    out = {}
    ctx = mp.get_context("spawn")
    for task in args.tasks:
        for level in args.dr_levels:
            settings = CollectSettings(tasks=[task], sim=sim, dr=level, episodes=args.episodes, workers=args.collect_workers,
                                       seed_start=args.seed, action_noise=args.action_noise,
                                       every_target=args.every_target)
            name, queue = name_of(task, level), ctx.Queue()
            proc = ctx.Process(target=_collect_child, args=(settings, str(data_root), name, queue))
            proc.start()
            summary = queue.get()
            proc.join()
            if proc.exitcode != 0 or not summary.get("dataset_dir"):
                raise RuntimeError(f"collecting {name} failed (exit code {proc.exitcode}): {summary}")
            out[name] = {"task": task, "dr_level": level, **{k: summary[k] for k in (
                "dataset_dir", "attempted", "written", "succeeded", "dropped", "steps_written", "wall_s")}}
            logger.info("collected %s: %d episodes, %d steps in %.0f s", name, summary["written"],
                        summary["steps_written"], summary["wall_s"])
    return out


def dataset_sizes(dirs: list[str]) -> dict[str, dict[str, Any]]:
    """dir -> episodes per split (of datasets this run did not collect)."""
    from vla.data.rlds_reader import RLDSReader

    return {d: {"episodes": dict(RLDSReader(d).splits)} for d in dirs}


def train_overrides(args, datasets: dict[str, dict[str, Any]], work: Path) -> list[str]:
    from sim_envs.env import PROPRIO_DIM

    weight = dict(zip(args.tasks, args.weights or [1.0] * len(args.tasks)))
    entries = ", ".join(f"{{path: {d['dataset_dir']}, weight: {weight[d['task']]}}}" for d in datasets.values())
    b = lambda v: str(bool(v)).lower()  # noqa: E731
    return [
        f"data.datasets=[{entries}]", f"data.statistics_cache={work / 'statistics'}",
        f"output_dir={work / 'train'}", f"seed={args.seed}",
        f"model.image_size={args.image_size}", f"model.cameras=[{','.join(args.cameras)}]",
        f"model.decoding={args.decoding}", f"model.action_chunk={args.action_chunk}",
        f"model.action_head={args.action_head}", f"model.action_queries={b(args.action_queries)}",
        f"model.use_proprio={b(args.use_proprio)}", f"model.proprio_dim={PROPRIO_DIM if args.use_proprio else 0}",
        f"model.vision_film={b(args.vision_film)}", f"model.vision_backbone={args.vision_backbone}",
        f"trainer.steps={args.steps}", f"trainer.batch_size={args.batch_size}", f"trainer.lr={args.lr}",
        f"trainer.num_threads={args.num_threads}", f"data.image_augmentation={b(args.image_augmentation)}",
        *(["trainer.mode=freeze_vision"] if args.freeze_vision and args.ground_steps > 0 else []),
        *args.train_override,
    ]


def grounding_settings(args, sim):
    from sim_envs.grounding import GroundingSettings

    return GroundingSettings(tasks=list(args.tasks), sim=sim, dr=list(args.dr_levels), scenes=args.ground_scenes,
                             frames_per_rollout=args.ground_frames, max_expert_steps=args.ground_expert_steps,
                             steps=args.ground_steps, keypoint_weight=args.ground_keypoint_weight,
                             goal_keypoint_weight=args.ground_goal_keypoint_weight, action_noise=args.action_noise,
                             seed=args.seed, workers=args.collect_workers)


def ground(args, sim, overrides: list[str], work: Path) -> tuple[Path, dict[str, Any]]:
    """Grounding pretraining of the recipe's model (sim_envs.grounding); vla-train then starts from it."""
    from sim_envs.grounding import pretrain_grounding
    from vla.train.config import compose_train_config

    model_config = compose_train_config(overrides).model
    out, report = pretrain_grounding(grounding_settings(args, sim), model_config, work / "ground",
                                     torch_threads=args.num_threads)
    return out, {k: v for k, v in report.items() if k != "settings"}


def keypoint_after_training(args, sim, checkpoint: Path) -> dict[str, dict[str, float | None]]:
    """task -> how far the trained policy's supervised keypoints lie from the named object and from its goal on
    grounding's held-out scenes: did the action stage keep what grounding taught the vision? (Trained on, it did
    not: docs/history.md L10.)"""
    from sim_envs.grounding import heldout_scenes, keypoint_error
    from vla.model.policy import load_checkpoint

    model, processor = load_checkpoint(checkpoint)
    held = heldout_scenes(grounding_settings(args, sim), progress=False)
    cameras = list(model.config.cameras)
    return {task: {"object": keypoint_error(model, processor, samples, cameras),
                   "goal": keypoint_error(model, processor, samples, cameras, goal=True)}
            for task, samples in held.items()}


def train(overrides: list[str], work: Path, batch_size: int) -> tuple[Path, dict[str, Any]]:
    from vla.train import run
    from vla.train.config import compose_train_config

    if (work / "train").exists():  # the trainer would resume a previous run's checkpoints
        shutil.rmtree(work / "train")
    t0 = time.perf_counter()
    final = Path(run(compose_train_config(overrides)))
    wall = time.perf_counter() - t0
    history = json.loads((work / "train" / "history.json").read_text())
    train_rows = [h for h in history if "samples_per_s" in h]
    val_rows = [h for h in history if any(k.startswith("val_") for k in h)]
    steps = train_rows[-1]["step"] if train_rows else None
    return final, {"steps": steps, "wall_s": round(wall, 1),
                   "steps_per_s_wall": round(steps / wall, 3) if steps else None,
                   "samples_per_s_last_log": train_rows[-1]["samples_per_s"] if train_rows else None,
                   "steps_per_s_last_log": round(train_rows[-1]["samples_per_s"] / batch_size, 3) if train_rows else None,
                   "last_train_log": train_rows[-1] if train_rows else None,
                   "last_val_log": val_rows[-1] if val_rows else None}


def unnorm_keys(checkpoint: Path, tasks: list[str], level: str) -> dict[str, str]:
    """task -> the checkpoint's statistics key of that task's dataset (the one at `level` when there are several)."""
    from vla.model.configuration_vla import VLAConfig
    from vla.model.policy import checkpoint_statistics

    keys = sorted(checkpoint_statistics(VLAConfig.from_pretrained(str(checkpoint)), checkpoint))
    out = {}
    for task in tasks:
        mine = [k for k in keys if task.lower() in k.lower().split("_")]
        if len(keys) == 1:
            mine = keys
        if not mine:
            raise ValueError(f"checkpoint {checkpoint} has no statistics for task {task}; its keys: {keys} (a key is "
                             "matched when one of its _-separated words is the task name in lower case)")
        out[task] = next((k for k in mine if k.lower().split("_")[-1] == level), mine[0])
    return out


class Evaluator:
    """The policies of each task and the evaluation settings, shared by the evaluation stages."""

    def __init__(self, args, checkpoint: Path, data_dirs: list[str], sim) -> None:
        import torch

        import sim_envs
        from sim_envs.baselines import policy_context
        from sim_envs.eval_envs import EvalSettings
        from sim_envs.language_eval import BLIND_INSTRUCTION
        from vla.policy import policy_source

        torch.set_num_threads(args.num_threads)
        self.args = args
        self.tasks = [sim_envs.task_id(t) for t in args.tasks]
        self.keys = unnorm_keys(checkpoint, args.tasks, args.eval_level)
        context = policy_context(self.tasks, datasets=data_dirs or None, seed=args.seed)
        self.vla, self.blind = {}, {}
        for short, task in zip(args.tasks, self.tasks):
            spec = {"kind": "vla", "path": str(checkpoint), "unnorm_key": self.keys[short], "name": "tiny_vla",
                    "unknown_words": args.unknown_words}
            self.vla[task] = policy_source(spec, context)[1]
            self.blind[task] = policy_source({**spec, "instruction": BLIND_INSTRUCTION}, context)[1]
        self.no_vision = policy_source("no_vision", context)[1] if data_dirs else None
        self.settings = EvalSettings(sim=sim, num_envs=args.num_envs, execute_steps=args.execute_steps)

    def success(self, level: str, seeds: int) -> dict[str, list]:
        """policy -> results at one DR level, every task (the VLA first; the no-vision baseline replays its states)."""
        from sim_envs.evaluation import evaluate_policies, plan_episodes

        out: dict[str, list] = {}
        for task in self.tasks:
            policies = {"tiny_vla": self.vla[task]}
            if self.no_vision is not None:
                policies["no_vision"] = self.no_vision
            for name, res in evaluate_policies(policies, plan_episodes(task, level, seeds), self.settings).items():
                out.setdefault(name, []).extend(res)
        return out

    def levels(self, levels: list[str], seeds: int) -> list:
        from sim_envs.evaluation import evaluate_policies, plan_episodes

        return [r for task in self.tasks for r in evaluate_policies(
            {"tiny_vla": self.vla[task]}, plan_episodes(task, levels, seeds), self.settings)["tiny_vla"]]

    def language(self, seeds: int) -> dict[str, dict[str, list]]:
        """condition -> policy -> results (swap, paraphrase, blind), the tasks merged."""
        from sim_envs.language_eval import run_language_protocol

        out: dict[str, dict[str, list]] = {}
        for task in self.tasks:
            res = run_language_protocol({"tiny_vla": self.vla[task]}, {"tiny_vla": self.blind[task]}, [task],
                                        self.args.eval_level, seeds, self.settings)
            for condition, by_policy in res.items():
                for name, rs in by_policy.items():
                    out.setdefault(condition, {}).setdefault(name, []).extend(rs)
        return out

    def robustness(self, seeds: int) -> dict[str, list]:
        from sim_envs.evaluation import evaluate_policies
        from sim_envs.robustness_eval import plan_robustness

        out: list = []
        for task in self.tasks:
            specs, levels = plan_robustness([task], seeds, self.args.dimensions, self.args.magnitudes)
            out += evaluate_policies({ROBUSTNESS_POLICY: self.vla[task]}, specs,
                                     replace(self.settings, dr_configs=levels))[ROBUSTNESS_POLICY]
        return {ROBUSTNESS_POLICY: out}


# ----------------------------------------------------------------------------------------- report
def rates(results) -> dict[str, Any]:
    from sim_envs.results import aggregate

    a = aggregate(results)
    return {k: a[k] for k in ("n_episodes", "n_success", "success_rate", "ci95", "n_wrong_target", "wrong_target_rate",
                              "n_errors", "avg_steps")}


def per_task(results) -> dict[str, dict[str, Any]]:
    tasks = list(dict.fromkeys(r.task for r in results))
    return {t.split("/")[-1].rsplit("-v", 1)[0]: rates([r for r in results if r.task == t]) for t in tasks}


def ratio(a, b):
    return a / b if a is not None and b else None


def target(name: str, value, target_value: float, goal: str = ">=", baseline=None, **extra) -> dict[str, Any]:
    met = value is not None and not (isinstance(value, float) and math.isnan(value)) and (
        value >= target_value - 1e-9 if goal == ">=" else value <= target_value + 1e-9)
    return {"name": name, "value": None if value is None else round(float(value), 4), "baseline": baseline,
            "target": target_value, "goal": goal, "met": bool(met), **extra}


def build_targets(result: dict[str, Any], args) -> list[dict[str, Any]]:
    out = []
    low = result.get("success_at_eval_level")
    if low:
        vla = low["tiny_vla"]
        nov = low.get("no_vision")
        out.append(target(f"mean tiny-VLA success over {len(vla['per_task'])} tasks at DR {args.eval_level} "
                          f"({args.seeds_low} held-out initial states each)", vla["mean_task_success"], 0.8,
                          baseline=nov["mean_task_success"] if nov else None,
                          per_task={t: {"success": r["success_rate"], "ci95": r["ci95"]} for t, r in vla["per_task"].items()}))
    lang = (result.get("language") or {}).get("tiny_vla")
    if lang:
        swap, blind = lang["swap"], lang.get("blind", {})
        extra = {"chance": swap["chance"], "blind_success": blind.get("success_rate"),
                 "blind_wrong_target": blind.get("wrong_target_rate")}
        out.append(target("swap: success on the named target", swap["success_rate"], 0.7,
                          baseline=blind.get("success_rate"), ci95=swap["ci95"], **extra))
        out.append(target("swap: wrong-target rate", swap["wrong_target_rate"], 0.1, "<=",
                          baseline=blind.get("wrong_target_rate"), swap_success=swap["success_rate"], **extra))
        para = lang.get("paraphrase")
        if para:
            out.append(target("paraphrase success / seen-template success (same seeds)",
                              ratio(para["success_rate"], swap["success_rate"]), 0.9, baseline=swap["success_rate"],
                              paraphrase_success=para["success_rate"]))
    dr = result.get("dr_none_high")
    if dr:
        none, high = dr["none"]["success_rate"], dr["high"]["success_rate"]
        out.append(target("success at DR high / success at DR none", ratio(high, none), 0.75, baseline=none,
                          high_success=high))
    rob = (result.get("robustness") or {}).get(ROBUSTNESS_POLICY)
    if rob:
        nominal = rob["nominal"]["success_rate"]
        for dim, rows in rob["dimensions"].items():
            mid = next((r for r in rows if r["magnitude"] == 2), None)
            if mid is not None:
                out.append(target(f"robustness: {dim}@2 success / nominal success", mid["ratio_to_nominal"], 0.7,
                                  baseline=nominal, success=mid["success_rate"], ci95=mid["ci95"]))
    return out


def write(result: dict[str, Any], args, t_start: float) -> None:
    from demo.main import finite_or_none  # strict JSON: NaN / inf -> null, as summary.json

    result["targets"] = build_targets(result, args)
    result["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["stages_s"].pop("total", None)  # kept last
    result["stages_s"]["total"] = round(time.perf_counter() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(finite_or_none(result), indent=1, default=str, allow_nan=False) + "\n")


def print_targets(result: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"vla_capabilities ({out})")
    for col in ("target", "value", "baseline", "goal", "met"):
        t.add_column(col)
    for tg in result["targets"]:
        fmt = lambda v: "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
        t.add_row(tg["name"], fmt(tg["value"]), fmt(tg["baseline"]), f"{tg['goal']} {tg['target']}",
                  "[green]yes[/green]" if tg["met"] else "[red]NO[/red]")
    console = Console()
    console.print(t)
    console.print("stage times (s): " + ", ".join(f"{k} {v}" for k, v in result["stages_s"].items()))


# ----------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from vla.cli.hydra_app import default_headless_gl

    default_headless_gl()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from sim_envs.config import SimConfig

    work = (args.work_dir or (Path(tempfile.mkdtemp(prefix="vla_capabilities_")) if args.quick
                              else ROOT / "outputs" / "bench" / "vla_capabilities")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sim = SimConfig(image_size=args.image_size, cameras=list(args.sim_cameras))
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    result: dict[str, Any] = {
        "benchmark": "vla_capabilities",
        "command": ".venv/bin/python bench/vla_capabilities.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick, "work_dir": str(work), "tasks": list(args.tasks), "stages_s": stages,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch_threads": args.num_threads, "load_avg_before": [round(x, 2) for x in os.getloadavg()]},
        "note": ("Measured on a shared machine while other jobs ran (see load averages), so wall times are noisy. "
                 "Evaluation: 4 envs per batch through the policy, 4 actions of each chunk executed; every policy of "
                 "a condition replays the same initial states; success rates carry Wilson 95% intervals. Each task "
                 "is evaluated with its own dataset's normalization statistics (unnorm_keys)."),
        "eval": {"level": args.eval_level, "num_envs": args.num_envs, "execute_steps": args.execute_steps,
                 "image_size": args.image_size, "sim_cameras": list(args.sim_cameras),
                 "unknown_words": args.unknown_words,
                 "seeds": {"eval_level": args.seeds_low, "language": args.seeds_language, "dr_none_high": args.seeds_dr,
                           "robustness": args.seeds_robustness},
                 "robustness_dimensions": args.dimensions or "all", "robustness_magnitudes": args.magnitudes},
    }

    def stage(name: str, fn):
        logger.info("== stage %s", name)
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            stages[name] = round(time.perf_counter() - t0, 1)
            logger.info("== stage %s took %.1f s", name, stages[name])

    if args.checkpoint is None:
        datasets = stage("collect", lambda: collect_datasets(args, sim, work / "data"))
        result["collection"] = {"dr_levels": args.dr_levels, "episodes_per_dataset": args.episodes,
                                "action_noise": args.action_noise, "cameras": list(args.sim_cameras),
                                "image_size": args.image_size, "datasets": datasets}
        overrides = train_overrides(args, datasets, work)
        if args.ground_steps > 0:
            ground_dir, result["grounding"] = stage("ground", lambda: ground(args, sim, overrides, work))
            overrides.append(f"init_from={ground_dir}")
        result["recipe"] = {"train_overrides": overrides}
        write(result, args, t_start)
        checkpoint, result["training"] = stage("train", lambda: train(overrides, work, args.batch_size))
        if result.get("grounding", {}).get("heldout_keypoint_error") is not None:
            result["grounding"]["keypoint_error_after_training"] = stage(
                "keypoint_check", lambda: keypoint_after_training(args, sim, checkpoint))
        data_dirs = [d["dataset_dir"] for d in datasets.values()]
    else:
        checkpoint, data_dirs = args.checkpoint.resolve(), [str(d) for d in args.data_dir]
        config = json.loads((checkpoint / "config.json").read_text())
        result["recipe"] = {"checkpoint_config": {k: config.get(k) for k in RECIPE_KEYS}}
        result["baseline_datasets"] = dataset_sizes(data_dirs)
    result["checkpoint"] = str(checkpoint)
    write(result, args, t_start)

    ev = stage("load_policies", lambda: Evaluator(args, checkpoint, data_dirs, sim))
    result["unnorm_keys"] = ev.keys

    from sim_envs.language_eval import summarize_language
    from sim_envs.robustness_eval import summarize_robustness

    def summary(results):
        tasks = per_task(results)
        return {**rates(results), "mean_task_success": sum(r["success_rate"] for r in tasks.values()) / len(tasks),
                "per_task": tasks}

    low = stage("eval_level", lambda: ev.success(args.eval_level, args.seeds_low))
    result["success_at_eval_level"] = {name: summary(rs) for name, rs in low.items()}
    write(result, args, t_start)
    lang = stage("language", lambda: ev.language(args.seeds_language))
    result["language"] = summarize_language(lang)
    write(result, args, t_start)
    dr = stage("dr_none_high", lambda: ev.levels(["none", "high"], args.seeds_dr))
    result["dr_none_high"] = {lv: summary([r for r in dr if r.dr_level == lv]) for lv in ("none", "high")}
    write(result, args, t_start)
    rob = stage("robustness", lambda: ev.robustness(args.seeds_robustness))
    result["robustness"] = summarize_robustness(rob)
    result["episodes_evaluated"] = (sum(len(v) for v in low.values()) + sum(len(v) for c in lang.values() for v in c.values())
                                    + len(dr) + len(rob[ROBUSTNESS_POLICY]))
    write(result, args, t_start)
    print_targets(result, args.out)
    logger.info("wrote %s in %.0f s; targets met: %d/%d", args.out, stages["total"],
                sum(t["met"] for t in result["targets"]), len(result["targets"]))


if __name__ == "__main__":
    main()
