"""`wm-train`: train the world model on RLDS episodes (resumable; TensorBoard in <output_dir>/tb).

    wm-train 'data.dataset_dirs=[outputs/data/sim_pick/1.0.0]'
    wm-train 'data.dataset_dirs=[...]' world_model=small trainer.dyn_steps=4000 data.holdout_seed_fraction=0.1
    wm-train --cfg job                                                      # print the whole config

Writes `<output_dir>/checkpoints/step_*`, `<output_dir>/latest` (what wm-eval / wm-viz load),
`train_summary.json` and `split.json` (the episode-level train/validation split). Running the same command
again resumes from `latest`; `resume=false` starts over.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from vla.cli.hydra_app import ConfigHint
from world_model.config import WMTrainConfig, register_configs

logger = logging.getLogger("world_model.cli.train")

HINT = (
    "Hint: wm-train's keys are world_model.* (configs/world_model/*.yaml: tiny|small|micro), data.* (dataset_dirs, "
    "val_fraction, holdout_seeds, holdout_seed_fraction, max_episodes), trainer.* (ae_steps, dyn_steps, rollout_steps, "
    "context_noise, ...), output_dir, resume; see world_model/config.py. Print the config with `wm-train --cfg job`."
)
_hint = ConfigHint("wm-train", "wm_train", HINT)


@hydra.main(version_base=None, config_path="pkg://configs", config_name="wm_train")
@_hint.task
def _app(cfg: DictConfig) -> None:
    from world_model.data import DataMismatchError
    from world_model.train import train_world_model

    try:
        conf: WMTrainConfig = OmegaConf.to_object(cfg)
        summary = train_world_model(conf)
    except (ValueError, FileNotFoundError, DataMismatchError) as e:
        logger.error("%s: %s", type(e).__name__, e)
        sys.exit(1)
    logger.info("checkpoint: %s", summary["checkpoint"])


def main() -> None:
    register_configs()
    _hint.run(_app)


if __name__ == "__main__":
    main()
