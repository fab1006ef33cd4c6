"""`vla-convert`: rosbag2 recordings (mcap or sqlite3) -> an RLDS dataset that `vla-train` reads.

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
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from robot_bridge.convert import ConvertConfig
from vla.cli.hydra_app import ConfigHint

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
        cfg: ConvertConfig = OmegaConf.to_object(dcfg)
        out, n = convert(cfg)
    except (ValueError, FileNotFoundError, FileExistsError, BagCountError) as e:
        logger.error("%s", e)
        sys.exit(2)
    logger.info("wrote %d episode(s) to %s in %.1f s", n, out, time.perf_counter() - t0)


def main() -> None:
    ConfigStore.instance().store(name="convert_schema", node=ConvertConfig)
    _hint.run(_app)


if __name__ == "__main__":
    main()
