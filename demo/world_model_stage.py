"""Demo stage 7: world-model rehearsal of the trained VLA and the baselines, next to their sim results.

`rehearse` trains a world model on the demo's episodes, rehearses the policies in imagination next to sim,
writes the report and returns figures + targets for `summary.json`:

    out = rehearse("outputs/demo/data/sim_pick/1.0.0", {"tiny_vla": policy, "random": rnd}, "outputs/demo/world_model",
                   budget_s=300, env_id="vla_sim/LiftCube-v0", env_kwargs={"image_size": 112},
                   sim_results=results)          # optional: sim_envs.evaluation results (same initial states)
    out["targets"], out["report"]

The step counts scale with `budget_s` (measured speed of the tiny model on this machine with one torch
thread while another job used the other core: ~6 autoencoder and ~3.5-4 dynamics steps per second; about 60%
of the budget goes to training, the rest to evaluation and the report).

`run_world_model_stage` runs it in a spawned child process: the closed-loop part renders with MuJoCo, and
MuJoCo's software renderer crashes in a process that has loaded TensorFlow (as the demo's collection stage
has). Policies cross the process boundary as specs (`vla.policy` grammar), not as objects.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any, Sequence

from vla.core.types import Policy

logger = logging.getLogger(__name__)


def _child(args: dict[str, Any], result_path: str) -> None:
    import torch

    from vla.cli.hydra_app import default_headless_gl

    default_headless_gl()  # inherited from vla-demo's main; here for a caller that starts the stage from Python

    torch.set_num_threads(args["torch_threads"])  # spinning extra threads cost several-fold on a busy 2-core box
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from sim_envs.baselines import policy_context  # importing sim_envs registers its tasks and policy kinds
    from vla.policy import make_policy

    context = policy_context([args["env_id"]], datasets=args["dataset_dir"], seed=args["seed"])
    policies = {name: make_policy(spec, context)[1] for name, spec in args["policies"].items()}
    out = rehearse(args["dataset_dir"], policies, args["out_dir"], budget_s=args["budget_s"], env_id=args["env_id"],
                   env_kwargs=args["env_kwargs"], sim_results=args["sim_results"],
                   extra_dataset_dirs=args["extra_dataset_dirs"],
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
    unnorm_key: str | None = None,
    extra_dataset_dirs: Sequence[Path] = (),
) -> dict[str, Any]:
    """Train the world model on the demo's episodes (and `extra_dataset_dirs`, data for the world model alone)
    and compare policies in imagination vs sim.

    `unnorm_key`: which of the checkpoint's statistics un-normalize the VLA's actions (the key of
    `dataset_dir`; needed when the checkpoint was trained on a mixture)."""
    vla = {"kind": "vla", "path": str(checkpoint), **({"unnorm_key": unnorm_key} if unnorm_key else {})}
    specs = {"tiny_vla": vla, "no_vision": "no_vision", "random": "random"}
    args = {
        "dataset_dir": str(dataset_dir), "extra_dataset_dirs": [str(d) for d in extra_dataset_dirs],
        "out_dir": str(out_dir), "budget_s": budget_s, "env_id": env_id,
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


def closed_loop_targets(cl: dict) -> list[dict]:
    """The demo's closed-loop targets: ranking (>= 3 policies) and how close each policy's imagined success is."""
    targets = []
    ag = cl.get("agreement")
    if ag:
        sp = ag["spearman"]["value"]
        targets.append({"name": f"world model: Spearman vs sim success ({len(cl['policies'])} policies)",
                        "value": sp, "baseline": None, "target": 0.9, "met": sp is not None and sp == sp and sp >= 0.9})
        targets.append({"name": "world model: MMRV vs sim", "value": round(ag["mmrv"]["value"], 3), "baseline": None,
                        "target": 0.05, "met": ag["mmrv"]["value"] <= 0.05})
    for name, within in (("random", 0.1), ("tiny_vla", 0.15)):  # issue 22's demo targets
        if name in cl["policies"]:
            r = cl["policies"][name]
            gap = abs(r["model_success"] - r["sim_success"])
            targets.append({"name": f"world model: |imagined - sim| success of {name}", "value": round(gap, 3),
                            "baseline": round(r["sim_success"], 3), "target": within, "met": gap <= within})
    return targets


def has_object_state(dataset_dir: str | Path) -> bool:
    """Whether the RLDS dataset records the objects' state (`vla-collect object_state=true`)."""
    features = Path(dataset_dir) / "features.json"
    return features.is_file() and '"object_state"' in features.read_text()


#: Measured training speed of the tiny world model (conv dynamics, rollout heads, batch 32) on this 2-core CPU
#: with one torch thread and the other core busy: ~6 autoencoder and ~3 dynamics steps per second.
AE_STEPS_PER_S, DYN_STEPS_PER_S = 6.0, 3.0


def train_config(dataset_dir: str | Path, out_dir: str | Path, budget_s: float, *, model: str = "tiny",
                 overrides: dict | None = None, extra_dataset_dirs: Sequence[str | Path] = ()):
    """The `WMTrainConfig` of the demo's world model: `budget_s` seconds of training at the measured speed, a
    fifth for the autoencoder (it converges early), the rest for the dynamics. `rehearse` and
    `start_background_training` build the same one, so the rehearsal resumes the background run's checkpoint."""
    from omegaconf import OmegaConf

    import configs
    from world_model.config import WMTrainConfig, WMTrainerConfig, WorldModelConfig

    ae_steps = max(50, int(budget_s * 0.2 * AE_STEPS_PER_S))
    dyn_steps = max(50, int(budget_s * 0.8 * DYN_STEPS_PER_S))
    base = OmegaConf.to_object(OmegaConf.load(Path(configs.__file__).parent / "world_model" / f"{model}.yaml"))
    if overrides is None and has_object_state(dataset_dir):
        # The objects' predicted xyz decide success (the task's own quantity), not pixels: a success head on
        # latents imagined the random policy succeeding (docs/history.md D3, W10).
        # `objects`: from the objects' state alone; with `lowdim` the arm's height stood in for the named cube's.
        overrides = {"state_features": ["object_state"], "success_head": "objects", "dynamics": "conv"}
    wm_cfg = WorldModelConfig(**{**base, **(overrides or {})})
    cfg = WMTrainConfig(world_model=wm_cfg,
                        trainer=WMTrainerConfig(ae_steps=ae_steps, dyn_steps=dyn_steps, val_every=10**9,
                                                ckpt_every=max(100, dyn_steps // 4),
                                                # a judge from state: its predicted state is scored over the
                                                # rollout too (the issue-22 judge recipe, docs/world_model.md)
                                                rollout_heads=bool(wm_cfg.state_features)),
                        output_dir=str(Path(out_dir) / "checkpoint"))
    cfg.data.dataset_dirs = [str(dataset_dir), *(str(d) for d in extra_dataset_dirs)]
    cfg.data.val_fraction = 0.15
    cfg.data.holdout_seed_fraction = 0.0
    return cfg


def _train_child(dataset_dir: str, out_dir: str, budget_s: float, extra_dataset_dirs: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from world_model.train import train_world_model

    train_world_model(train_config(dataset_dir, out_dir, budget_s, extra_dataset_dirs=extra_dataset_dirs),
                      progress=False)


def start_background_training(dataset_dir: Path, out_dir: Path, budget_s: float,
                              extra_dataset_dirs: Sequence[Path] = ()) -> mp.Process:
    """Train the demo's world model in a spawned process while the VLA's stages run: they use one torch thread
    and leave the second core mostly idle. The rehearsal (`run_world_model_stage`) then resumes the finished
    checkpoint (or finishes the training itself if this process failed)."""
    proc = mp.get_context("spawn").Process(
        target=_train_child, args=(str(dataset_dir), str(out_dir), budget_s, [str(d) for d in extra_dataset_dirs]),
        name="world-model-training", daemon=True)
    proc.start()
    return proc


def rehearse(dataset_dir: str | Path, policies: dict[str, Policy], out_dir: str | Path, budget_s: float = 300.0, *,
             env_id: str = "", env_kwargs: dict | None = None, sim_results: dict | None = None,
             num_initial_states: int = 8, max_steps: int = 40, model: str = "tiny", overrides: dict | None = None,
             extra_dataset_dirs: list[str | Path] | None = None, progress: bool = True) -> dict:
    """Train a world model on `dataset_dir`, evaluate it open loop and (with `env_id`) closed loop.

    `budget_s`: seconds of training (`train_config`); a finished run in `out_dir` is resumed, not repeated.
    `overrides`: `WorldModelConfig` fields over the `model` preset (configs/world_model/<model>.yaml); by default,
    when the data records `object_state`, the model predicts it and judges success from it (`objects`).
    `extra_dataset_dirs`: more RLDS datasets the world model (not the policy) trains on, e.g. the failed
    grasps of `vla-collect grasp_miss=... keep_failed=true`.
    Returns {"checkpoint", "report", "metrics", "targets", "timings", "open_loop", "closed_loop"}; targets
    follow the demo's summary format ({name, value, baseline, target, met}).
    """
    from world_model.closed_loop import compare_policies
    from world_model.evaluate import evaluate_open_loop
    from world_model.model import WorldModel
    from world_model.results_io import save_results
    from world_model.train import train_world_model, validation_episodes
    from world_model.viz.report import build_report

    t0 = time.perf_counter()
    out = Path(out_dir)
    timings: dict[str, float] = {}
    cfg = train_config(dataset_dir, out, budget_s, model=model, overrides=overrides,
                       extra_dataset_dirs=extra_dataset_dirs or ())
    summary = train_world_model(cfg, progress=progress)
    timings["train"] = time.perf_counter() - t0
    wm = WorldModel.load(out / "checkpoint")
    episodes = validation_episodes(out / "checkpoint", wm.cameras, wm.config.image_size, list(wm.feature_dims))
    t1 = time.perf_counter()
    ol = evaluate_open_loop(wm, episodes, horizon=8, starts_per_episode=4, pixel_samples=32)
    timings["open_loop"] = time.perf_counter() - t1
    results: dict = {"checkpoint": str(out / "checkpoint"), "open_loop": ol, "train": summary}
    targets = []
    lat = ol["latent_mse"]
    ratio = lat["model"][-1] / lat["copy_last"][-1]
    shuffle = lat["shuffled_actions"][-1] / lat["model"][-1]
    targets.append({"name": "world model: open-loop latent MSE at h8 / copy-last", "value": round(ratio, 3),
                    "baseline": round(lat["copy_last"][-1], 4), "target": 0.5, "met": ratio <= 0.5})
    targets.append({"name": "world model: shuffled / true action error at h8", "value": round(shuffle, 3),
                    "baseline": round(lat["model"][-1], 4), "target": 1.5, "met": shuffle >= 1.5})
    if env_id and policies:
        t2 = time.perf_counter()
        cl = compare_policies(wm, env_id, policies, num_initial_states=num_initial_states, max_steps=max_steps,
                              env_kwargs=env_kwargs, sim_results=sim_results, record=1, progress=progress,
                              bootstrap=500)
        timings["closed_loop"] = time.perf_counter() - t2
        results["closed_loop"] = cl
        if max_steps > wm.max_episode_length:
            results.setdefault("warnings", []).append(
                f"closed-loop rollouts of {max_steps} steps exceed the longest training episode ({wm.max_episode_length})")
        targets.extend(closed_loop_targets(cl))
    t3 = time.perf_counter()
    report = build_report(wm, episodes, out / "report.html", eval_results=results, horizon=8,
                          checkpoint=str(out / "checkpoint"), title="World-model rehearsal (vla-demo)")
    timings["report"] = time.perf_counter() - t3
    save_results(results, out / "metrics.json")
    timings["total"] = time.perf_counter() - t0
    closed = results.get("closed_loop", {})
    return {
        "checkpoint": str(out / "checkpoint"), "report": str(report), "metrics": str(out / "metrics.json"),
        "targets": targets, "timings": {k: round(v, 1) for k, v in timings.items()},
        "open_loop": ol["summary"],
        "closed_loop": {"policies": {n: {"sim": p["sim_success"], "model": p["model_success"],
                                         "actions_out_of_range": p.get("actions_out_of_range")}
                                     for n, p in closed.get("policies", {}).items()},
                        "agreement": closed.get("agreement")} if closed else None,
    }
