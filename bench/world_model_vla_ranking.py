"""Does a world model rank tiny-VLA variants on LiftCube like the simulator? -> bench/results/world_model_vla_ranking.json

    .venv/bin/python bench/world_model_vla_ranking.py      # after `make demo`: its world model and VLA (5 variants)
    .venv/bin/python bench/world_model_vla_ranking.py --world-model DIR --dataset DIR --vla NAME=DIR [--vla NAME=DIR ...]

Without trained checkpoints (no `make demo` run yet) it says so and exits without measuring (`make bench`
runs every benchmark).

Issue 7's closed-loop example on the real task: policy variants (trained tiny VLAs, e.g. from different `make
demo` runs; the first one with injected action noise of 1 and 2 cm; the no-vision and random baselines) run
from the same initial states in the sim and inside the world model. It needs trained checkpoints, so it is
not part of `bench/world_model.py` (whose ranking uses the SquareWorld toy). Per policy it also reports:
  - `sim_autoencoded`: success in the sim when the policy sees its frames through the world model's
    autoencoder (encode -> decode, no dynamics): the closed-loop decoder ceiling. Where it matches the sim,
    the frames the model draws are good enough for the policy and any gap to the model's verdict comes from
    the dynamics.
  - `actions_out_of_range`: the share of its imagined steps whose action lies outside the training actions'
    range (`WorldModel.actions_in_range`): where the model's verdict is extrapolation.
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
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
RESULTS = ROOT / "bench" / "results" / "world_model_vla_ranking.json"


def autoencoded_view(model, policy):
    """`policy`, seeing every camera frame through `model`'s autoencoder (what imagination can draw at best)."""
    import torch

    from vla.core.types import Observation, Policy
    from world_model.model import to_model_frames

    class AutoencodedView(Policy):
        chunk_size = getattr(policy, "chunk_size", 1)
        cameras = getattr(policy, "cameras", None)

        def reset(self, instruction: str) -> None:
            policy.reset(instruction)

        def act(self, obs: Observation) -> np.ndarray:
            tokens = model.encode(to_model_frames({c: obs.images[c] for c in model.cameras}, model.config.image_size))
            prop = torch.from_numpy(model.norm_proprio(np.asarray(obs.proprio, np.float32)[None]))
            imgs = model.decode(tokens, size=model.source_image_size, proprio=prop)
            return policy.act(Observation(images={c: imgs[c][0] for c in model.cameras}, proprio=obs.proprio,
                                          instruction=obs.instruction))

    return AutoencodedView()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world-model", default="outputs/demo/world_model/checkpoint",
                   help="world-model checkpoint dir (wm-train / vla-demo output)")
    p.add_argument("--dataset", default="outputs/demo/data/demo_liftcube_low/1.0.0",
                   help="the RLDS dataset dir the no-vision baseline averages")
    p.add_argument("--vla", action="append", help="NAME=CHECKPOINT_DIR (repeatable; the first also gets noisy "
                   "variants; default: demo=outputs/demo/train/final)")
    p.add_argument("--noise", type=float, nargs="*", default=[0.01, 0.02], help="action noise (m) variants of the first VLA")
    p.add_argument("--task", default="LiftCube")
    p.add_argument("--dr-level", default="low")
    p.add_argument("--image-size", type=int, default=84, help="what the VLAs were trained on")
    p.add_argument("--initial-states", type=int, default=12)
    p.add_argument("--max-steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=2000, help="first initial-state seed")
    args = p.parse_args()
    args.vla = args.vla or ["demo=outputs/demo/train/final"]
    bad = [v for v in args.vla if "=" not in v]
    if bad:
        p.error(f"--vla takes NAME=CHECKPOINT_DIR, got {bad}")
    missing = [d for d in [args.world_model, args.dataset, *(v.split("=", 1)[1] for v in args.vla)] if not Path(d).exists()]
    if missing:
        print(f"world_model_vla_ranking: skipped, {missing} not found. It needs a trained world model and tiny VLA: "
              "run `make demo` first, or pass --world-model, --dataset and --vla NAME=DIR. "
              f"{RESULTS.relative_to(ROOT)} keeps its recorded run.")
        return
    from vla.cli.hydra_app import default_headless_gl

    default_headless_gl()
    import torch

    torch.set_num_threads(1)
    import sim_envs
    from sim_envs.baselines import policy_context
    from vla.policy import make_policy
    from world_model.closed_loop import compare_policies, initial_states, make_env, run_in_sim
    from world_model.model import WorldModel

    t_start = time.perf_counter()
    load0 = [round(v, 2) for v in os.getloadavg()]
    env_id = sim_envs.task_id(args.task)
    model = WorldModel.load(args.world_model)

    context = policy_context([env_id], datasets=args.dataset, seed=0)

    def load(spec):
        return make_policy(spec, context)[1]

    vlas = dict(v.split("=", 1) for v in args.vla)
    policies = {f"vla {n}": load({"kind": "vla", "path": d}) for n, d in vlas.items()}
    first_name, first_dir = next(iter(vlas.items()))
    for i, noise in enumerate(args.noise):
        policies[f"vla {first_name} + noise {noise}"] = load({"kind": "vla", "path": first_dir, "noise": noise, "seed": i + 1})
    policies["no_vision"] = load("no_vision")
    policies["random"] = load("random")
    env_kwargs = {"image_size": args.image_size, "cameras": list(model.cameras), "dr_level": args.dr_level}
    closed = compare_policies(model, env_id, policies, num_initial_states=args.initial_states, max_steps=args.max_steps,
                              seed=args.seed, env_kwargs=env_kwargs, record=0, progress=True, bootstrap=1000)
    env = make_env(env_id, **env_kwargs)
    states = initial_states(env, closed["seeds"], model.cameras)
    for name, pol in policies.items():
        if name != "random":  # its actions ignore the frames
            ok = [run_in_sim(env, autoencoded_view(model, pol), st, args.max_steps, model.cameras).success for st in states]
            closed["policies"][name]["sim_autoencoded"] = float(np.mean(ok))
    env.close()
    ag = closed["agreement"]
    sp, mmrv = ag["spearman"]["value"], ag["mmrv"]["value"]
    targets = [
        {"name": f"Spearman model vs sim success over {len(policies)} policies (LiftCube, tiny VLAs)", "value": sp,
         "baseline": None, "target": 0.9, "met": bool(sp == sp and sp >= 0.9)},
        {"name": "MMRV model vs sim (LiftCube, tiny VLAs)", "value": mmrv, "baseline": None, "target": 0.05,
         "met": bool(mmrv <= 0.05)},
    ]
    result = {
        "benchmark": "world_model_vla_ranking", "command": "python bench/world_model_vla_ranking.py " + " ".join(sys.argv[1:]),
        "world_model": {"dir": args.world_model, "config": model.metadata()["config"]}, "vlas": vlas, "env": env_id,
        "env_kwargs": env_kwargs, "seeds": closed["seeds"], "max_steps": args.max_steps,
        "policies": closed["policies"],
        "agreement": ag, "timing": closed["timing"], "targets": targets,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1},
        "load_average": {"start": load0, "end": [round(v, 2) for v in os.getloadavg()]},
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, default=float))
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{env_id}: success over {len(states)} initial states ({RESULTS.relative_to(ROOT)})")
    for col in ("policy", "sim", "sim, frames through the autoencoder", "model", "actions outside training range"):
        t.add_column(col)
    for n, r in closed["policies"].items():
        ae = r.get("sim_autoencoded")
        t.add_row(n, f"{r['sim_success']:.2f}", "-" if ae is None else f"{ae:.2f}", f"{r['model_success']:.2f}",
                  f"{100 * r['actions_out_of_range']:.0f}%")
    Console().print(t)
    Console().print(f"Spearman {sp:.2f} [{ag['spearman']['low']:.2f}, {ag['spearman']['high']:.2f}], MMRV {mmrv:.3f}, "
                    f"bias {ag['bias']:+.2f} (targets 0.9 / 0.05: {'met' if targets[0]['met'] else 'NOT met'} / "
                    f"{'met' if targets[1]['met'] else 'NOT met'})")


if __name__ == "__main__":
    main()
