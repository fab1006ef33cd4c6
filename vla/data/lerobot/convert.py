"""Conversions between LeRobot datasets and our RLDS datasets (what `vla-convert` input_format=/output_format= runs).

    lerobot_to_rlds("~/.cache/huggingface/lerobot/me/pick", "outputs/data", "pick")   # -> outputs/data/pick/1.0.0
    rlds_to_lerobot("outputs/data/sim_pick/1.0.0", "outputs/lerobot/sim_pick")        # -> a v3.0 dataset

Both go through the contracts: LeRobot -> RLDS standardizes with the same spec as training (cameras, proprio, the
7-D end-effector delta check or the configured action transform); RLDS -> LeRobot writes our standardized episodes
(any registered OXE dataset or our own) with `LeRobotWriter`, so `LeRobotDataset` loads them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.lerobot.meta import LeRobotMeta
from vla.data.lerobot.options import LeRobotOptions, to_options

logger = logging.getLogger(__name__)


def lerobot_to_rlds(source: str | Path, output_dir: str | Path, name: str, *, options: LeRobotOptions | Any = None,
                    image_size: tuple[int, int] = (224, 224), version: str = "1.0.0", overwrite: bool = False,
                    instruction: str = "") -> tuple[Path, int]:
    """A LeRobot dataset -> `<output_dir>/<name>/<version>` (RLDS, `primary` and `wrist` cameras); returns
    (dataset dir, episodes). `instruction` fills episodes whose task is empty."""
    from vla.core.episode import Episode, EpisodeMetadata
    from vla.data.lerobot.reader import LeRobotReader
    from vla.data.lerobot.spec import check_gripper, lerobot_spec
    from vla.data.augmentation import resize_image
    from vla.data.rlds_writer import RLDSWriter

    options = to_options(options)
    meta = LeRobotMeta(source)
    spec = lerobot_spec(meta, options, name)
    cameras = [c for c in ("primary", "wrist") if spec.image_keys.get(c)]
    dropped = [c for c in spec.image_keys if c not in cameras]
    if dropped:
        logger.warning("RLDS episodes hold primary and wrist cameras only: %s (%s) not converted", dropped,
                       [spec.image_keys[c] for c in dropped])
    reader = LeRobotReader(meta)
    size = (int(image_size[0]), int(image_size[1]))
    writer, n = None, 0
    try:
        for pos, info in enumerate(reader.episodes):
            raw = reader.read_episode(pos, cameras=[spec.image_keys[c] for c in cameras], image_size=size)
            std = spec.standardize(raw)
            check_gripper(float(std["action"][:, -1].min()), float(std["action"][:, -1].max()), meta.root)
            images = {c: np.stack([resize_image(f if isinstance(f, np.ndarray) else f.to_array(), size)
                                   for f in std["images"][c]]) for c in cameras}
            text = std["instruction"] or instruction
            if not text:
                raise ValueError(f"episode {info.index} of {meta.root} has no task (language instruction); give one with "
                                 "instruction='...' (vla-convert) for episodes without")
            if writer is None:
                writer = RLDSWriter(output_dir, name, cameras=cameras, image_size=size, state_dim=std["proprio"].shape[1],
                                    version=version, overwrite=overwrite, control_hz=meta.fps,
                                    description=f"{name}: converted from the LeRobot {meta.version} dataset {meta.root}")
            writer.write(Episode(images=images, state=std["proprio"], action=std["action"], instruction=text,
                                 metadata=EpisodeMetadata(episode_id=f"{name}_{info.index}", task=text)))
            n += 1
    finally:
        out = writer.close() if writer is not None else None
    return Path(out), n


def rlds_to_lerobot(source: str | Path, root: str | Path, *, name: str | None = None, fps: float = 10.0,
                    video: bool = True, overwrite: bool = False, robot_type: str = "unknown") -> tuple[Path, int]:
    """An RLDS dataset (ours, or a registered OXE one) -> a LeRobot v3.0 dataset at `root`; every split, one after
    the other, recorded in info.json's `splits`. Returns (root, episodes)."""
    from vla.core.episode import Episode, EpisodeMetadata
    from vla.data.lerobot.writer import LeRobotWriter
    from vla.data.oxe.registry import spec_for_directory
    from vla.data.rlds_reader import RLDSReader

    reader = RLDSReader(source)
    spec = spec_for_directory(source, name)
    writer, n, splits = None, 0, {}
    try:
        for split in reader.splits:
            start = n
            for raw in reader.episodes(split, decode_images=True):
                std = spec.standardize(raw)
                images = {c: np.asarray(v) for c, v in std["images"].items() if c in ("primary", "secondary", "wrist")}
                if writer is None:
                    writer = LeRobotWriter(root, fps=fps, cameras={c: v.shape[1:3] for c, v in images.items()},
                                           state_dim=std["proprio"].shape[1], video=video, overwrite=overwrite,
                                           robot_type=robot_type)
                meta = std.get("metadata", {})
                ep_id = meta.get("episode_id", n)
                writer.write(Episode(images=images, state=std["proprio"], action=std["action"],
                                     instruction=std["instruction"], metadata=EpisodeMetadata(
                                         episode_id=ep_id.decode() if isinstance(ep_id, bytes) else str(ep_id))))
                n += 1
            if n > start:
                splits[split] = f"{start}:{n}"
        if writer is None:
            raise ValueError(f"{source} has no episodes to convert (splits {sorted(reader.splits)})")
        out = writer.close(splits=splits)
    except BaseException:
        if writer is not None:
            writer.__exit__(RuntimeError, None, None)
        raise
    return out, n
