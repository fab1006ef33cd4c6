"""`vla-collect`: run the scripted experts in parallel processes and write their episodes as RLDS.

    vla-collect task=LiftCube dr=none episodes=50                 # -> outputs/data/sim_liftcube_none/1.0.0
    vla-collect task=[LiftCube,StackCube] dr=low episodes=20 workers=2 keep_failed=true name=my_sim
    vla-collect suite=libero_spatial 'libero.tasks=[0]' libero.episodes=20   # LIBERO expert -> libero_spatial_no_noops
    vla-collect --cfg job                                         # print the resolved config

Prints a progress bar, then the expert success rate per task (Wilson 95% interval), the number of episodes
written, kept-but-failed and dropped, and the dataset directory; the same numbers go to
`<output_dir>/<name>/collect_summary.json`. Logic: `sim_envs.collect`; with `suite=` (LIBERO, in LIBERO's
venv, written in the layout of OpenVLA's `libero_*_no_noops` sets) `sim_envs.libero.collect`.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from sim_envs.cli.config import CollectConfig, dr_config_from, register_configs, sim_config_from
from vla.cli.hydra_app import ConfigHint, default_headless_gl

logger = logging.getLogger("sim_envs.cli.collect")


_hint = ConfigHint("vla-collect", "collect")


@hydra.main(version_base=None, config_path="pkg://configs", config_name="collect")
@_hint.task
def _app(cfg: DictConfig) -> None:
    from sim_envs.collect import CollectSettings, collect, default_dataset_name
    from sim_envs.results import format_rate

    logger.info("config:\n%s", OmegaConf.to_yaml(cfg))
    if cfg.suite is not None:
        return _collect_libero(cfg)
    tasks = list(cfg.task) if OmegaConf.is_list(cfg.task) else [str(cfg.task)]
    try:
        settings = CollectSettings(
            tasks=tasks, sim=sim_config_from(cfg.sim), dr=dr_config_from(cfg.dr), episodes=cfg.episodes,
            seed_start=cfg.seed_start, workers=cfg.workers, keep_failed=cfg.keep_failed,
            action_noise=cfg.action_noise, grasp_miss=cfg.grasp_miss, random_takeover=cfg.random_takeover, wrong_target=cfg.wrong_target,
            every_target=cfg.every_target, object_state=cfg.object_state, policy=cfg.policy,
        )
        name = cfg.name or default_dataset_name(tasks, settings.dr_level, settings.sim.robot)
        summary = collect(settings, cfg.output_dir, name, episodes_per_shard=cfg.episodes_per_shard,
                          overwrite=cfg.overwrite)
    except (ValueError, FileExistsError) as e:
        logger.error("%s", e)
        sys.exit(2)
    for task, d in summary.per_task.items():
        agg = {"n_episodes": d["attempted"], "n_success": d["succeeded"], "success_rate": d["success_rate"],
               "ci95": d["ci95"]}
        logger.info("expert success %s dr=%s: %s", task, settings.dr_level, format_rate(agg))
    logger.info(
        "%d episodes attempted, %d written (%d of them failed, kept), %d dropped, %d steps, %.1f s",
        summary.attempted, summary.written, summary.failed_kept, summary.dropped, summary.steps_written, summary.wall_s,
    )
    if summary.dataset_dir is None:
        sys.exit(1)
    logger.info("dataset: %s", summary.dataset_dir)


def _collect_libero(cfg: DictConfig) -> None:
    from sim_envs.libero.collect import collect_libero
    from sim_envs.libero.runner import LiberoConfig
    from sim_envs.results import format_rate

    settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LiberoConfig), cfg.libero))
    try:
        summary = collect_libero(str(cfg.suite), settings, cfg.output_dir, name=cfg.name, keep_failed=cfg.keep_failed,
                                 episodes_per_shard=cfg.episodes_per_shard, overwrite=cfg.overwrite)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        logger.error("%s", e)
        sys.exit(2)
    for task, d in summary["per_task"].items():
        agg = {"n_episodes": d["attempted"], "n_success": d["succeeded"], "success_rate": d["success_rate"],
               "ci95": d["ci95"]}
        logger.info("expert success %s/%s: %s", cfg.suite, task, format_rate(agg))
    logger.info("%d episodes attempted, %d written (%d of them failed, kept), %d dropped, %d steps (%d no-op steps "
                "removed), %.1f s", summary["attempted"], summary["written"], summary["failed_kept"], summary["dropped"],
                summary["steps_written"], summary["noop_steps_removed"], summary["wall_s"])
    if summary["dataset_dir"] is None:
        sys.exit(1)
    logger.info("dataset: %s", summary["dataset_dir"])


def main() -> None:
    default_headless_gl()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (the RLDS writer) logs its CPU features otherwise
    register_configs()
    _hint.run(_app)


if __name__ == "__main__":
    main()
