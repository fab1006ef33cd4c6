"""`vla-merge`: merge a LoRA adapter into its base checkpoint, one safetensors shard at a time.

    vla-merge adapter=outputs/train/final_adapter output=outputs/merged
    vla-merge adapter=outputs/train/checkpoints/step_001000/adapter base=/ckpt/openvla-7b output=/ckpt/my_robot

One process; peak host memory is the largest base shard plus the adapter (not the whole model). The output
loads with `VLAPolicy.from_pretrained(output)` and carries the fine-tuning dataset's statistics.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Optional

import hydra
from omegaconf import MISSING

from vla.cli.hydra_app import ConfigHint

logger = logging.getLogger("vla.cli.merge")

HINT = "Hint: vla-merge takes adapter=<adapter dir> output=<new dir> [base=<base checkpoint dir>]."
_hint = ConfigHint("vla-merge", "merge", HINT)


@dataclass
class MergeConfig:
    adapter: str = MISSING  # peft adapter directory (adapter_config.json + adapter_model.safetensors)
    output: str = MISSING  # new directory for the merged checkpoint
    base: Optional[str] = None  # base checkpoint; default: the adapter's base_model_name_or_path


@hydra.main(version_base=None, config_path="pkg://configs", config_name="merge")
@_hint.task
def _app(cfg: MergeConfig) -> None:
    from vla.train.merge import MergeError, merge_adapter

    try:
        out = merge_adapter(cfg.adapter, cfg.output, base_dir=cfg.base)
    except (MergeError, FileNotFoundError) as e:
        logger.error("%s", e)
        sys.exit(1)
    logger.info("merged checkpoint written to %s", out)


def main() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="merge_schema", node=MergeConfig)
    _hint.run(_app)


if __name__ == "__main__":
    main()
