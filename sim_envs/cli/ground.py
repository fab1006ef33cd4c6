"""`vla-ground`: grounding pretraining before `vla-train` (logic and why: `sim_envs.grounding`).

    vla-ground tasks=[LiftNamedCube,PlaceCubeOnNamedPlate] sim.image_size=84 model.image_size=84 \\
        'model.cameras=[wrist]' model.vision_backbone=conv_keypoints model.vision_film=true output_dir=outputs/ground
    vla-train init_from=outputs/ground 'data.datasets=[...]'     # continues from it (its model config wins)

Prints a progress bar per rendering and training, then the held-out L1 next to the mean-label L1 (what a
model that ignores image and words scores); `<output_dir>/grounding.json` keeps them with the settings.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from sim_envs.cli.config import register_configs, sim_config_from
from vla.cli.hydra_app import ConfigHint, default_headless_gl

logger = logging.getLogger("sim_envs.cli.ground")

_hint = ConfigHint("vla-ground", "ground")


@hydra.main(version_base=None, config_path="pkg://configs", config_name="ground")
@_hint.task
def _app(cfg: DictConfig) -> None:
    from sim_envs.evaluation import resolve_task
    from sim_envs.grounding import GroundingSettings, pretrain_grounding

    logger.info("config:\n%s", OmegaConf.to_yaml(cfg))
    try:
        tasks = list(cfg.tasks) if OmegaConf.is_list(cfg.tasks) else [str(cfg.tasks)]
        settings = GroundingSettings(
            tasks=[resolve_task(t) for t in tasks], sim=sim_config_from(cfg.sim),
            dr=list(cfg.levels) if cfg.levels else str(cfg.dr), scenes=cfg.scenes,
            heldout_scenes=cfg.heldout_scenes, frames_per_rollout=cfg.frames_per_rollout,
            max_expert_steps=cfg.max_expert_steps, action_noise=cfg.action_noise, steps=cfg.steps,
            batch_size=cfg.batch_size, lr=cfg.lr, keypoint_weight=cfg.keypoint_weight,
            goal_keypoint_weight=cfg.goal_keypoint_weight, workers=cfg.workers,
            seed=cfg.seed)
        model_config = OmegaConf.to_object(cfg.model)
        out, report = pretrain_grounding(settings, model_config, cfg.output_dir, torch_threads=cfg.torch_threads)
    except ValueError as e:
        logger.error("%s", e)
        sys.exit(2)
    logger.info("held-out L1 %.3f (a model ignoring image and words: %.3f); %d training samples; render %.0f s, "
                "train %.0f s", report["heldout_l1"], report["heldout_l1_mean_label"], report["train_samples"],
                report["render_s"], report["train_s"])
    for task, l1 in report["heldout_l1_per_task"].items():
        keypoint = f"; keypoint {l1['keypoint']:.3f} from the named object in the image" if "keypoint" in l1 else ""
        keypoint += f", goal keypoint {l1['goal_keypoint']:.3f} from its goal" if "goal_keypoint" in l1 else ""
        logger.info("  %s: held-out L1 %.3f (named object %.3f, goal %.3f%s)", task, l1["all"], l1["object"],
                    l1["goal"], keypoint)
    logger.info("checkpoint: %s  (next: vla-train init_from=%s ...)", out, out)


def main() -> None:
    default_headless_gl()
    register_configs()
    _hint.run(_app)


if __name__ == "__main__":
    main()
