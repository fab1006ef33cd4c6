"""`vla-train`: train a VLA from scratch or fine-tune one (full or LoRA), in one process or under torchrun.

    vla-train 'data.datasets=[{path: outputs/data/sim_pick/1.0.0}]'                # tiny VLA from scratch
    vla-train trainer=lora init_from=/ckpt/openvla-7b 'data.datasets=[{path: /data/my_robot/1.0.0}]' \
        trainer.steps=5000
    torchrun --nproc_per_node 2 -m vla.cli.train 'data.datasets=[...]' trainer.batch_size=32
    vla-train --cfg job                                                            # print the full config

Writes `<output_dir>/checkpoints/step_*` (resumable), `<output_dir>/final` (a standalone checkpoint that
`VLAPolicy.from_pretrained` loads), TensorBoard logs in `<output_dir>/logs` and `history.json`.
Running the same command again resumes from the latest checkpoint (`trainer.resume=never` starts over).
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig

from vla.cli.hydra_app import ConfigHint
from vla.train.config import register_configs

logger = logging.getLogger("vla.cli.train")

HINT = (
    "Hint: vla-train's keys are init_from, model.* (configs/model/*.yaml, vla/model/schema.py), data.* (vla/data/config.py: "
    "DataConfig, e.g. 'data.datasets=[{path: DIR}]'), trainer.* (see vla/train/config.py: TrainerConfig), output_dir, seed. "
    "Print the whole config with `vla-train --cfg job`; presets: model=tiny|openvla_7b, trainer=tiny|full|lora|projector "
    "(configs/trainer/*.yaml)."
)
_hint = ConfigHint("vla-train", "train", HINT)


@hydra.main(version_base=None, config_path="pkg://configs", config_name="train")
@_hint.task
def _app(cfg: DictConfig) -> None:
    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun only rank 0 logs
        logging.getLogger().setLevel(logging.WARNING)
    from vla.train.errors import USER_ERRORS
    from vla.train.loop import run

    try:
        final = run(cfg)
    except USER_ERRORS as e:
        logger.error("%s: %s", type(e).__name__, e)
        logger.debug("traceback", exc_info=True)  # hydra.verbose=true shows it
        sys.exit(1)
    logger.info("done: %s", final)


def main() -> None:
    register_configs()
    _hint.run(_app)


if __name__ == "__main__":
    main()
