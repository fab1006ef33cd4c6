"""The lent-GPU figures of issues 18 and 19 that `bench/train.py --gpu-7b` does not take, one part per command.

Run by bench/gpu_session.sh on the device machine, each part under its own `timeout`, each writing its own JSON
as soon as it has it (a part that fails or runs out of time leaves the others' figures intact):

    python bench/gpu_session.py lora --base B --data D --work W --steps 20 --out lora.json
        the real `vla-train init_from=B trainer=lora` on a dataset (the UR5e's), in this process, so that
        torch.cuda.max_memory_allocated() covers the whole run; samples/s after warm-up from its history.json
    python bench/gpu_session.py protocol --policy B --stats S --task LiftNamedCube --seeds 2 --out protocol.json
        `vla-eval protocol=language` with a checkpoint as the policy (bf16 on cuda), seconds per episode and
        per step from the protocol's own episodes.jsonl (wall_s, steps of each episode)
    python bench/gpu_session.py larger --data D --work W --seconds 120 --out larger.json
        a wider/deeper tiny preset trained for a wall-clock budget, then the language protocol on its task
    python bench/gpu_session.py wm_speed --policy WM_CHECKPOINT --work W --steps 50 --out wm_speed.json
        a world model's imagined steps/s at batch 1, 32 and 256 (issue 22)

The same code runs on the CPU with the tiny preset (`--device cpu`) as the pre-flight check.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def _write(out: Path, record: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2), flush=True)


def _cli(module: str, argv: list[str]) -> None:
    """A hydra CLI's `main()` in this process (hydra exits through SystemExit on success too in some paths)."""
    import importlib

    sys.argv = [module] + argv
    try:
        importlib.import_module(module).main()
    except SystemExit as e:
        if e.code not in (0, None):
            raise RuntimeError(f"{module} exited with {e.code}") from e


def rate_after_warmup(history: list[dict], batch: int) -> dict:
    """Samples/s between the first and the last logged training step (the first log covers the warm-up).

    The loop logs the cumulative rate since its start: step k at rate r_k means k * batch / r_k seconds."""
    logs = [h for h in history if "samples_per_s" in h]
    if len(logs) < 2:
        raise ValueError(f"need two logged steps to separate the warm-up, got {len(logs)}")
    first, last = logs[0], logs[-1]
    t_first = first["step"] * batch / first["samples_per_s"]
    t_last = last["step"] * batch / last["samples_per_s"]
    rate = (last["step"] - first["step"]) * batch / (t_last - t_first)
    return {"samples_per_s_after_warmup": round(rate, 2), "from_step": first["step"], "to_step": last["step"],
            "seconds_per_step_after_warmup": round(batch / rate, 3),
            "samples_per_s_including_warmup": round(last["samples_per_s"], 2),
            "loss_first_log": round(first.get("loss", float("nan")), 4),
            "loss_last_log": round(last.get("loss", float("nan")), 4)}


def part_lora(args) -> None:
    import torch

    cuda = torch.cuda.is_available() and args.device == "cuda"
    record = {"what": "vla-train init_from=<7B base, random weights> trainer=lora on the UR5e dataset, in-process",
              "base": str(args.base), "data": str(args.data), "steps": args.steps, "batch": args.batch,
              "status": "failed"}
    argv = [f"init_from={args.base}", "trainer=lora", "data=sim_pick",
            f"data.datasets=[{{path: {args.data}, weight: 1.0}}]", f"data.statistics_cache={args.work}/stats",
            "data.shuffle_buffer=500", f"data.num_workers={args.workers}", f"data.num_streams={args.workers}",
            f"trainer.steps={args.steps}",
            f"trainer.batch_size={args.batch}", "trainer.save_every=0", "trainer.val_every=0", "trainer.val_batches=2",
            f"trainer.log_every={args.log_every}", "trainer.progress=false", "trainer.tensorboard=false",
            f"trainer.device={args.device}", f"output_dir={args.work}/train", "trainer.resume=never"]
    record["command"] = "vla-train " + " ".join(argv)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        _cli("vla.cli.train", argv)
        record["wall_seconds"] = round(time.perf_counter() - t0, 1)
        history = json.loads((args.work / "train" / "history.json").read_text())
        record.update(rate_after_warmup(history, args.batch))
        record["status"] = "measured"
    except Exception as e:  # noqa: BLE001 - the failure is the record
        record["error"] = f"{type(e).__name__}: {e}"[-2000:]
        record["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if cuda:
        record["device"] = torch.cuda.get_device_name()
        record["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        record["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        record["peak_gpu_memory_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 1e9, 2)
        record["peak_memory_covers"] = "the whole vla-train run: load, 20 steps, validation, checkpoint, export"
    record["torch"] = torch.__version__
    _write(args.out, record)


def _statistics_into(policy: Path, stats: Path | None) -> str:
    """The checkpoint's unnorm_key; a base trained on nothing gets the statistics file `stats` copied in."""
    from vla.model.policy import STATISTICS_FILE, statistics_keys

    keys = statistics_keys(policy)
    if not keys:
        if stats is None or not stats.is_file():
            raise FileNotFoundError(f"{policy} has no statistics and --stats {stats} is not a file")
        shutil.copy(stats, policy / STATISTICS_FILE)
        keys = statistics_keys(policy)
    return keys[0]


def run_protocol(policy: Path, task: str, seeds: int, conditions: list[str], out_dir: Path, device: str,
                 unnorm_key: str, extra: list[str] = ()) -> dict:
    """`vla-eval protocol=language` in this process; seconds per episode and per step from its episodes.jsonl."""
    argv = ["protocol=language", f"policy={policy}", f"tasks=[{task}]", "dr=low", f"seeds={seeds}",
            f"policy_options.device={device}", f"policy_options.unnorm_key={unnorm_key}",
            f"language.conditions=[{','.join(conditions)}]", f"output_dir={out_dir}", "plot=false",
            "video.episodes_per_cell=0", *extra]
    t0 = time.perf_counter()
    _cli("sim_envs.cli.eval", argv)
    wall = time.perf_counter() - t0
    episodes = [json.loads(line) for f in sorted(out_dir.rglob("episodes.jsonl")) for line in f.read_text().splitlines()
                if line.strip()]
    if not episodes:
        raise RuntimeError(f"no episodes.jsonl under {out_dir}")
    secs = [e["wall_s"] for e in episodes]
    steps = [e["steps"] for e in episodes]
    report = next(out_dir.rglob("language.json"), None)
    return {"command": "vla-eval " + " ".join(argv), "wall_seconds": round(wall, 1), "episodes": len(episodes),
            "steps_total": sum(steps), "seconds_per_episode_mean": round(sum(secs) / len(secs), 2),
            "seconds_per_episode_max": round(max(secs), 2),
            "seconds_per_step": round(sum(secs) / max(sum(steps), 1), 4),
            "wall_seconds_per_episode": round(wall / len(episodes), 2),
            "successes": sum(bool(e["success"]) for e in episodes),
            "errors": sum(e.get("error") is not None for e in episodes),
            "language_report": json.loads(report.read_text()) if report else None}


def part_protocol(args) -> None:
    import torch

    record = {"what": f"vla-eval protocol=language, {args.policy} as the policy ({args.device}, dtype auto: bf16 on "
                      "cuda), random weights: timing only, success is meaningless", "status": "failed"}
    try:
        key = _statistics_into(args.policy, args.stats)
        record["unnorm_key"] = key
        record["statistics_note"] = ("the base is trained on nothing: its action statistics are the UR5e dataset's "
                                     "(copied in), only so actions can be un-normalized for a timing run")
        record.update(run_protocol(args.policy, args.task, args.seeds, args.conditions, args.work, args.device, key))
        record["status"] = "measured"
    except Exception as e:  # noqa: BLE001
        record["error"] = f"{type(e).__name__}: {e}"[-2000:]
    if torch.cuda.is_available():
        record["device"] = torch.cuda.get_device_name()
        record["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    _write(args.out, record)


def part_larger(args) -> None:
    """A larger tiny preset (2x width, 2x LLM depth) with the L5 recipe's data options, trained for a wall-clock
    budget from scratch (no grounding stage: no time for it), then the language protocol on its task."""
    import torch

    train_dir = args.work / "train"
    overrides = ["model.llm.hidden_size=256", "model.llm.num_layers=4", "model.llm.intermediate_size=512",
                 "model.llm.num_heads=8", "model.llm.num_kv_heads=8",
                 "model.dino.hidden_size=128", "model.siglip.hidden_size=128"]
    recipe = ["model.image_size=84", "model.cameras=[wrist]", "model.decoding=parallel", "model.action_chunk=4",
              "model.action_head=l1", "model.action_queries=true", "model.use_proprio=true", "model.proprio_dim=8",
              "model.vision_film=true", "model.vision_backbone=conv_keypoints", "trainer.gripper_loss_weight=10",
              "data.image_augmentation=false", "trainer.lr=3e-4", f"trainer.batch_size={args.batch}"]
    argv = ["init_from=scratch", f"data.datasets=[{{path: {args.data}, weight: 1.0}}]",
            f"data.statistics_cache={args.work}/stats", f"output_dir={train_dir}", "trainer.resume=never",
            f"trainer.steps={args.steps}", f"trainer.max_train_seconds={args.seconds}", "trainer.save_every=0",
            "trainer.val_every=0", "trainer.progress=false", "trainer.tensorboard=false", "trainer.log_every=200",
            f"trainer.device={args.device}", f"data.num_workers={args.workers}",
            f"data.num_streams={args.workers}", *recipe, *overrides]
    record = {"what": "a larger tiny preset trained on the lent GPU, then the language protocol",
              "command": "vla-train " + " ".join(argv), "status": "failed"}
    t0 = time.perf_counter()
    try:
        _cli("vla.cli.train", argv)
        history = json.loads((train_dir / "history.json").read_text())
        steps = [h for h in history if "samples_per_s" in h]
        record["train"] = {"wall_seconds": round(time.perf_counter() - t0, 1), "steps": steps[-1]["step"],
                           "samples_per_s": round(steps[-1]["samples_per_s"], 1),
                           "last_log": steps[-1], "validation": [h for h in history if "val_loss" in h][-1:]}
        _write(args.out, record)
        key = _statistics_into(train_dir / "final", None)
        record["protocol"] = run_protocol(train_dir / "final", args.task, args.seeds, args.conditions,
                                          args.work / "eval", args.device, key, ["execute_steps=4", "num_envs=4", "sim.image_size=84"])
        record["status"] = "measured"
    except Exception as e:  # noqa: BLE001
        record["error"] = f"{type(e).__name__}: {e}"[-2000:]
    if torch.cuda.is_available():
        record["device"] = torch.cuda.get_device_name()
    _write(args.out, record)


def part_wm_speed(args) -> None:
    """Issue 22's GPU figure: imagined steps/s of a world-model checkpoint at batch 1, 32 and 256 (dynamics +
    decoding every camera to the data's image size; random actions within the training range; policy
    excluded), float32, with CUDA synchronized around the timed steps."""
    import numpy as np
    import torch

    # bench/world_model.py would shadow the package when this script runs from bench/
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    from world_model.model import RolloutState, WorldModel

    model = WorldModel.load(args.policy).to(args.device).eval()
    h, n = model.config.history, len(model.cameras) * model.config.tokens_per_camera
    st = model.statistics.action
    record = {"what": "world-model imagined steps/s on the lent GPU (dynamics + decode of every camera)",
              "checkpoint": str(args.policy), "config": model.metadata()["config"], "device": args.device, "rows": []}
    if torch.cuda.is_available():
        record["device_name"] = torch.cuda.get_device_name()
    rng = np.random.default_rng(0)
    for batch in (1, 32, 256):
        state = RolloutState(torch.zeros(batch, h, n, model.config.token_dim, device=args.device),
                             torch.zeros(batch, h, model.proprio_dim, device=args.device),
                             torch.zeros(batch, h, 7, device=args.device))
        acts = rng.uniform(np.asarray(st.q01), np.asarray(st.q99), (args.steps + 5, batch, 7)).astype(np.float32)
        with torch.inference_mode():
            for i, a in enumerate(acts):
                if i == 5:
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                state, out = model.step(state, a)
                model.decode(out.latents, size=model.source_image_size, proprio=out.norm_proprio)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        record["rows"].append({"batch": batch, "steps": args.steps,
                               "imagined_steps_per_s": round(batch * args.steps / dt, 1),
                               "ms_per_batched_step": round(1000 * dt / args.steps, 2)})
        _write(args.out, record)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="part", required=True)
    for name in ("lora", "protocol", "larger", "wm_speed"):
        p = sub.add_parser(name)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--work", type=Path, required=True)
        p.add_argument("--device", default="cuda")
        p.add_argument("--batch", type=int, default=16)
        p.add_argument("--workers", type=int, default=4, help="loader processes (data.num_streams follows)")
        p.add_argument("--data", type=Path)
        p.add_argument("--base", type=Path)
        p.add_argument("--policy", type=Path)
        p.add_argument("--stats", type=Path)
        p.add_argument("--task", default="LiftNamedCube")
        p.add_argument("--seeds", type=int, default=2)
        p.add_argument("--conditions", nargs="+", default=["swap", "paraphrase"])
        p.add_argument("--steps", type=int, default=20)
        p.add_argument("--log-every", type=int, default=5)
        p.add_argument("--seconds", type=float, default=120)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    {"lora": part_lora, "protocol": part_protocol, "larger": part_larger, "wm_speed": part_wm_speed}[args.part](args)


if __name__ == "__main__":
    main()
