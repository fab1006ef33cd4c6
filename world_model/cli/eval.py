"""`wm-eval`: open-loop error on held-out episodes, and closed-loop agreement with sim over policy variants.

    wm-eval checkpoint=outputs/wm                      # open loop on the checkpoint's validation episodes
    wm-eval checkpoint=outputs/wm 'dataset_dirs=[outputs/data/heldout/1.0.0]' horizon=16
    wm-eval checkpoint=outputs/wm env_id=sim_envs:vla_sim/LiftCube-v0 +env_kwargs.image_size=112 \
        "policies=['vla:path=outputs/train/final','vla:path=outputs/train/final,noise=0.02',random]"
    wm-eval checkpoint=outputs/wm 'ensemble=[outputs/wm_seed1,outputs/wm_seed2]' env_id=... policies=...
                                                       # closed loop averaged over 3 models (other trainer.seed)

With `ensemble`, every policy is imagined in each member; a policy's imagined success is the members' mean and
the results also hold each member's own ranking and the share of episodes the members disagree on (open loop
is measured on `checkpoint` alone).

`env_id` is a gymnasium id; the `module:` prefix makes gymnasium import the module that registers it. Policy
specs: the grammar of every command (`vla.policy.registry`: `kind[:key=value,...]` or a checkpoint directory),
with world_model's `servo` (`world_model.policies`); `random` without `scale=` moves +-0.05 m. Quote a spec that
holds `,` or `=`, or write `;` for its `,`. Writes `output`
(JSON) and, for closed loop, `<stem>_videos.npz` beside it; `wm-viz eval_json=...` turns both into a report.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from vla.cli.hydra_app import ConfigHint, default_headless_gl
from world_model.config import WMEvalConfig, register_configs

logger = logging.getLogger("world_model.cli.eval")

HINT = (
    "Hint: wm-eval's keys are checkpoint, ensemble, dataset_dirs, horizon, max_episodes, starts_per_episode, env_id, "
    "env_kwargs, policies, num_initial_states, max_steps, bootstrap, output, seed (world_model/config.py: WMEvalConfig). "
    "Print the config with `wm-eval --cfg job`."
)
_hint = ConfigHint("wm-eval", "wm_eval", HINT)


def run_eval(cfg: WMEvalConfig, *, progress: bool = True) -> dict:
    """Everything `wm-eval` does, callable from Python; returns the results dict (also written to cfg.output)."""
    from vla.policy import make_policy
    from world_model.closed_loop import compare_policies
    from world_model.evaluate import evaluate_open_loop
    from world_model.model import WorldModel
    from world_model.policies import policy_context
    from world_model.data import load_episodes
    from world_model.results_io import save_results
    from world_model.train import validation_episodes

    model = WorldModel.load(cfg.checkpoint)
    results: dict = {"checkpoint": cfg.checkpoint}
    if cfg.dataset_dirs:
        episodes = load_episodes(cfg.dataset_dirs, model.cameras, model.config.image_size, max_episodes=cfg.max_episodes,
                                 state_features=list(model.feature_dims))
        source = "dataset_dirs"
    else:
        episodes = validation_episodes(cfg.checkpoint, model.cameras, model.config.image_size,
                                       list(model.feature_dims))[: cfg.max_episodes or None]
        source = "validation split of the checkpoint"
    if not episodes:
        raise ValueError("no held-out episodes to evaluate; pass dataset_dirs=[...]")
    logger.info("open loop on %d episodes (%s), horizon %d", len(episodes), source, cfg.horizon)
    results["open_loop"] = evaluate_open_loop(model, episodes, horizon=cfg.horizon,
                                              starts_per_episode=cfg.starts_per_episode, seed=cfg.seed)
    results["open_loop"]["episodes_source"] = source
    if model.max_episode_length and cfg.horizon > model.max_episode_length:
        results.setdefault("warnings", []).append(
            f"horizon {cfg.horizon} exceeds the longest training episode ({model.max_episode_length} steps)")
    if cfg.env_id and cfg.policies:
        policies = dict(make_policy(s, policy_context(cfg.seed)) for s in cfg.policies)
        members = [model, *(WorldModel.load(c) for c in cfg.ensemble)]
        if cfg.ensemble:
            results["ensemble"] = list(cfg.ensemble)
        results["closed_loop"] = compare_policies(
            members, cfg.env_id, policies, num_initial_states=cfg.num_initial_states, max_steps=cfg.max_steps,
            seed=cfg.seed + 10_000, env_kwargs=dict(cfg.env_kwargs), bootstrap=cfg.bootstrap, progress=progress)
        if model.max_episode_length and cfg.max_steps > model.max_episode_length:
            results.setdefault("warnings", []).append(
                f"closed-loop max_steps {cfg.max_steps} exceeds the longest training episode ({model.max_episode_length})")
    elif cfg.env_id or cfg.policies:
        raise ValueError("closed-loop evaluation needs both env_id and policies")
    elif cfg.ensemble:
        raise ValueError("ensemble is only used by the closed loop: pass env_id and policies too, or drop ensemble")
    save_results(results, cfg.output)
    logger.info("wrote %s", cfg.output)
    return results


@hydra.main(version_base=None, config_path="pkg://configs", config_name="wm_eval")
@_hint.task
def _app(cfg: DictConfig) -> None:
    from world_model.data import DataMismatchError
    from world_model.imagine import PolicyError

    try:
        res = run_eval(OmegaConf.to_object(cfg))
    except (ValueError, FileNotFoundError, DataMismatchError, PolicyError) as e:
        logger.error("%s: %s", type(e).__name__, e)
        sys.exit(1)
    s = res["open_loop"]["summary"]
    logger.info("open loop: %s", {k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()})
    if "agreement" in res.get("closed_loop", {}):
        a = res["closed_loop"]["agreement"]
        logger.info("closed loop: spearman %.3f, pearson %.3f, MMRV %.3f", a["spearman"]["value"], a["pearson"]["value"],
                    a["mmrv"]["value"])
        for k, m in enumerate(res["closed_loop"].get("member_agreement", [])):
            logger.info("  member %d alone: spearman %.3f, MMRV %.3f", k, m["spearman"]["value"], m["mmrv"]["value"])
        if "member_disagreement" in res["closed_loop"]:
            logger.info("  members disagree on %.0f%% of the episodes", 100 * res["closed_loop"]["member_disagreement"])


def main() -> None:
    default_headless_gl()  # closed loop renders the env_id's scenes (MuJoCo offscreen through EGL without a display)
    register_configs()
    _hint.run(_app)


if __name__ == "__main__":
    main()
