"""LeRobot datasets as sources of the torch loader (`vla.data.sources`): resolution, statistics, episodes.

A `data.datasets` entry is read as LeRobot when `format: lerobot`, or with `format: auto` (the default) when its
`path` holds `meta/info.json`. It then mixes with RLDS datasets like any other: weight x transitions, statistics
keyed by its name (the `unnorm_key`), windows, shuffle buffer and resumable position.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.lerobot.meta import LeRobotFormatError, LeRobotMeta, is_lerobot_dir
from vla.data.lerobot.options import to_options
from vla.data.lerobot.reader import LeRobotReader
from vla.data.lerobot.spec import check_gripper, lerobot_spec
from vla.data.sources import EpisodeSource, Source

logger = logging.getLogger(__name__)


def is_lerobot_entry(entry: Any) -> bool:
    """Whether a `data.datasets` entry is a LeRobot dataset (declared, or auto-detected by meta/info.json)."""
    fmt = getattr(entry, "format", "auto")
    if fmt == "lerobot":
        return True
    return fmt == "auto" and getattr(entry, "path", None) is not None and is_lerobot_dir(entry.path)


def default_name(root: Path) -> str:
    """A dataset name (the statistics' unnorm_key) from the directory: lower case, [a-z0-9_]."""
    return re.sub(r"[^a-z0-9_]+", "_", root.name.lower()).strip("_") or "lerobot"


def split_positions(meta: LeRobotMeta, split: str, episodes: list[int] | None = None) -> list[int]:
    """Positions (into `meta.episodes`) of a split: "train", or a TFDS-style slice "train[:95%]" / "train[10:]"."""
    from vla.data.rlds_reader import _parse_split, _slice_bounds

    base, sl = _parse_split(split)
    splits = meta.info.get("splits") or {"train": f"0:{len(meta.episodes)}"}
    if base not in splits:
        raise KeyError(f"split {base!r} not in {meta.root / 'meta/info.json'} (splits: {sorted(splits)}); set data.split")
    lo, hi = (int(x) for x in str(splits[base]).split(":"))
    wanted = set(episodes) if episodes else None
    if wanted is not None:
        unknown = sorted(wanted - {e.index for e in meta.episodes})
        if unknown:
            raise KeyError(f"lerobot.episodes lists {unknown[:10]}, which {meta.root} does not have "
                           f"(episodes {meta.episodes[0].index}..{meta.episodes[-1].index})")
    positions = [p for p, e in enumerate(meta.episodes) if lo <= e.index < hi and (wanted is None or e.index in wanted)]
    return positions[_slice_bounds(sl, len(positions))] if sl is not None else positions


def resolve_lerobot_source(entry: Any, cfg: Any) -> Source:
    """One `data.datasets` entry (a LeRobot directory) -> `Source` (spec, statistics, episode count)."""
    if getattr(entry, "path", None) is None:
        raise ValueError(f"a LeRobot dataset entry needs a `path` (the local dataset root), got {entry!r}")
    options = to_options(getattr(entry, "lerobot", None))
    meta = LeRobotMeta(entry.path)
    name = entry.name or default_name(meta.root)
    spec = lerobot_spec(meta, options, name)
    missing = [c for c in cfg.cameras if c not in spec.image_keys]
    if missing:
        raise KeyError(f"dataset {name!r} ({meta.root}) has no {missing} camera: its cameras map as {spec.image_keys} "
                       f"(features {meta.camera_features()}); set lerobot.cameras.<camera>=<feature> or data.cameras")
    n = len(split_positions(meta, cfg.split, options.episodes))
    if n == 0:
        raise ValueError(f"dataset {name!r} has no episodes in split {cfg.split!r} ({meta.root})")
    stats = lerobot_statistics(meta, spec, options, cache_dir=cfg.statistics_cache)
    check_gripper(float(stats.action.min[-1]), float(stats.action.max[-1]), meta.root)
    return Source(name, meta.root, spec, float(entry.weight), stats, n, format="lerobot", options=options)


def lerobot_statistics(meta: LeRobotMeta, spec: Any, options: Any, *, cache_dir: str | None = None,
                       recompute: bool = False) -> Any:
    """Statistics of the standardized action and proprio over every episode (no camera is read), cached on disk
    under a key of the dataset's files and the mapping, as `vla.data.statistics` does for RLDS. LeRobot's own
    meta/stats.json is not used: its q01/q99 are per-episode quantiles averaged, not the dataset's."""
    from vla.core.statistics import DatasetStatistics
    from vla.data.statistics import _write_json_atomic, compute_statistics, default_cache_dir

    key = _cache_key(meta, spec, options)
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"dataset_statistics_{spec.name}_{key}.json"
    if path.is_file() and not recompute:
        return DatasetStatistics.from_dict(json.loads(path.read_text()))
    reader = LeRobotReader(meta)
    positions = [p for p, e in enumerate(meta.episodes) if not options.episodes or e.index in set(options.episodes)]
    stats = compute_statistics((reader.read_episode(p) for p in positions), spec, total=len(positions))
    stats.extra.update({"cache_key": key, "source": f"lerobot {meta.version}"})
    _write_json_atomic(path, stats.to_dict())
    logger.info("wrote dataset statistics of %s to %s (%d trajectories, %d transitions)", spec.name, path,
                stats.num_trajectories, stats.num_transitions)
    return stats


def _cache_key(meta: LeRobotMeta, spec: Any, options: Any) -> str:
    from dataclasses import asdict

    from vla.data.statistics import STATISTICS_FORMAT, _file_edges, _source

    h = hashlib.sha256()
    for part in (STATISTICS_FORMAT, (meta.root / "meta/info.json").read_text(), json.dumps(asdict(options), sort_keys=True),
                 _source(spec.transform), _source(spec.transform.user_transform) if spec.transform.user_transform else ""):
        h.update(part.encode())
    files = sorted({e.data_file for e in meta.episodes})
    for f in files + sorted((meta.root / "meta").rglob("*.parquet")) + sorted((meta.root / "meta").glob("*.jsonl")):
        if f.is_file():
            h.update(f"{f.relative_to(meta.root)}:{f.stat().st_size}".encode())
            h.update(_file_edges(f))
    return h.hexdigest()


class LeRobotEpisodeSource(EpisodeSource):
    """`EpisodeSource` over a LeRobot directory: the same standardize / normalize / keep steps, another reader."""

    def __init__(self, source: Source, cfg: Any) -> None:  # noqa: D107 - EpisodeSource's reader is RLDS-only
        self.source = source
        self.cfg = cfg
        wanted = set(cfg.cameras) | {"primary"}
        self.spec = dataclasses.replace(source.spec, image_keys={c: (k if c in wanted else None)
                                                                 for c, k in source.spec.image_keys.items()})
        self.reader = LeRobotReader(source.dataset_dir)
        self.positions = split_positions(self.reader.meta, cfg.split, source.options.episodes)
        self.camera_features = [k for c, k in self.spec.image_keys.items() if k and c in wanted]
        self._files = {}

    def _read(self, index: int) -> tuple[dict, str]:
        pos = self.positions[index]
        size = (self.cfg.image_size, self.cfg.image_size)
        raw = self.reader.read_episode(pos, cameras=self.camera_features, image_size=size)
        return raw, str(self.reader.episodes[pos].data_file)
