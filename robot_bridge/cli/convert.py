"""`vla-convert`: rosbag2 recordings (mcap or sqlite3) -> an RLDS dataset that `vla-train` reads; and LeRobot
datasets <-> RLDS.

    vla-convert bags=[outputs/bridge/2026-01-01_10-00-00/bag] name=my_robot
    vla-convert bags=[bag1] align=commands                                   # one step per executed bridge command
    vla-convert bags=[bag1,bag2] action_source=measured proprio=[ee_pose] rate_hz=5
    vla-convert bags=[bag1] topics.cameras.wrist=/camera/wrist/image_raw image_size=[256,256]
    vla-convert bags=[bag1] topics.cameras.primary=/camera/color/image_raw/compressed instruction='wipe the table'
    vla-convert bags=[humble_bag] distro=humble msg_files=[my_msgs/msg/Gripper.msg]   # pick the definitions
    vla-convert --cfg job                                                    # print the resolved config

Writes <output_dir>/<name>/<version> (TFDS layout; `tfds.builder_from_directory` loads it), then e.g.
`vla-train trainer=lora data.datasets=[<that dir>]`. Bags are read from their storage's own tables, as rosbag2
does, with counts checked (robot_bridge/bags.py). Schema and logic: robot_bridge/convert.py.

LeRobot (v2.0 / v2.1 / v3.0 directories) <-> RLDS, logic in vla/data/lerobot/convert.py:
    vla-convert input_format=lerobot input=~/.cache/huggingface/lerobot/me/pick name=pick   # -> outputs/data/pick/1.0.0
    vla-convert input_format=lerobot input=<dir> lerobot.cameras.primary=observation.images.top
    vla-convert input_format=rlds output_format=lerobot input=outputs/data/sim_pick/1.0.0 output_dir=outputs/lerobot
                                                                       # -> outputs/lerobot/sim_pick (v3.0, AV1 mp4)
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from robot_bridge.convert import ConvertConfig
from vla.cli.hydra_app import ConfigHint
from vla.data.lerobot.options import LeRobotOptions

#: (input_format, output_format) pairs vla-convert runs
FORMATS = (("rosbag2", "rlds"), ("lerobot", "rlds"), ("rlds", "lerobot"))


@dataclass
class ConvertCLIConfig(ConvertConfig):
    """`ConvertConfig` (rosbag2 -> RLDS) plus the dataset conversions.

    Attributes:
        input_format / output_format: rosbag2 -> rlds (default, reads `bags`), lerobot -> rlds, rlds -> lerobot.
        input: the dataset directory to convert (LeRobot root, or RLDS <root>/<name>/<version>).
        lerobot: how a LeRobot dataset maps onto our contracts (cameras, state, action checks and transform).
        video: RLDS -> LeRobot writes cameras as AV1 mp4 (LeRobot's default) or, False, as PNG image features.
    `name`, `output_dir`, `version`, `image_size`, `instruction`, `overwrite` apply as for bags; for RLDS -> LeRobot
    the dataset goes to <output_dir>/<name> (name defaults to the RLDS dataset's), at `rate_hz` fps.
    """

    input_format: str = "rosbag2"
    output_format: str = "rlds"
    input: str = ""
    lerobot: LeRobotOptions = field(default_factory=LeRobotOptions)
    video: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.input_format, self.output_format) not in FORMATS:
            raise ValueError(f"vla-convert converts {', '.join(f'{a} -> {b}' for a, b in FORMATS)}; got "
                             f"input_format={self.input_format} output_format={self.output_format}")
        if self.input_format != "rosbag2" and not self.input:
            raise ValueError(f"input_format={self.input_format} needs input=<dataset directory>")


def _convert_dataset(cfg: ConvertCLIConfig) -> tuple[Path, int]:
    """LeRobot <-> RLDS (vla.data.lerobot.convert); the CLI only dispatches."""
    from vla.data.lerobot.convert import lerobot_to_rlds, rlds_to_lerobot

    if cfg.input_format == "lerobot":
        return lerobot_to_rlds(cfg.input, cfg.output_dir, cfg.name, options=cfg.lerobot,
                               image_size=tuple(cfg.image_size), version=cfg.version, overwrite=cfg.overwrite,
                               instruction=cfg.instruction)
    name = cfg.name if cfg.name != ConvertConfig.name else Path(cfg.input).expanduser().resolve().parent.name
    return rlds_to_lerobot(cfg.input, Path(cfg.output_dir) / name, name=None, fps=cfg.rate_hz, video=cfg.video,
                           overwrite=cfg.overwrite)

logger = logging.getLogger("robot_bridge.cli.convert")


_hint = ConfigHint("vla-convert", "convert")


@hydra.main(version_base=None, config_path="pkg://configs", config_name="convert")
@_hint.task
def _app(dcfg: DictConfig) -> None:
    import time

    from robot_bridge.convert import BagCountError, convert

    logger.info("config:\n%s", OmegaConf.to_yaml(dcfg))
    t0 = time.perf_counter()
    try:
        cfg: ConvertCLIConfig = OmegaConf.to_object(dcfg)
        out, n = convert(cfg) if cfg.input_format == "rosbag2" else _convert_dataset(cfg)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, BagCountError) as e:
        logger.error("%s", e)
        sys.exit(2)
    logger.info("wrote %d episode(s) to %s in %.1f s", n, out, time.perf_counter() - t0)


def main() -> None:
    ConfigStore.instance().store(name="convert_schema", node=ConvertCLIConfig)
    _hint.run(_app)


if __name__ == "__main__":
    main()
