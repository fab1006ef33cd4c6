"""The datasets of a mixture: resolved directories, specs and statistics, and their normalized episodes.

`resolve_sources(cfg)` turns a `DataConfig` into `Source`s (directory, `vla.data.oxe` spec, weight,
statistics, episode count); `EpisodeSource(source, cfg).load(i)` reads episode i without TensorFlow,
standardizes it with the spec and normalizes action and proprio with the dataset's q01/q99 statistics, keeping
the frames JPEG-encoded (the torch loader decodes after its shuffle buffer). It also says which steps may be
sampled (`keep`): none of an unlabeled episode (`data.skip_unlabeled`), and not the no-op steps of a dataset
that flags them (`data.zero_action_filter`), as OpenVLA's training pipeline filters them.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vla.core.statistics import DatasetStatistics
from vla.data.config import DataConfig
from vla.data.rlds_reader import RLDSReader

logger = logging.getLogger(__name__)


@dataclass
class Source:
    """One resolved dataset of the mixture."""

    name: str
    dataset_dir: Path
    spec: Any  # vla.data.oxe.DatasetSpec
    weight: float
    statistics: DatasetStatistics
    num_episodes: int
    format: str = "rlds"  # or "lerobot" (vla.data.lerobot)
    options: Any = None  # format-specific mapping (LeRobotOptions)


def resolve_sources(cfg: DataConfig) -> list[Source]:
    """Dataset directories, specs and statistics of the configured mixture (statistics cached on disk); entries
    that are LeRobot datasets are resolved by `vla.data.lerobot`, in their place in the mixture."""
    from vla.data.lerobot.source import is_lerobot_entry, resolve_lerobot_source

    if cfg.mixture is not None or not any(is_lerobot_entry(e) for e in cfg.datasets):
        return _resolve_rlds(cfg, cfg.mixture if cfg.mixture is not None else cfg.datasets)
    sources = [resolve_lerobot_source(e, cfg) if is_lerobot_entry(e) else _resolve_rlds(cfg, [e])[0] for e in cfg.datasets]
    names = [s.name for s in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"datasets {twice} appear twice in the mixture; statistics are keyed by name, so give each "
                         "entry its own `name`")
    return sources


def open_episodes(source: Source, cfg: DataConfig) -> "EpisodeSource":
    """The episode reader of a source's format."""
    if source.format == "lerobot":
        from vla.data.lerobot.source import LeRobotEpisodeSource

        return LeRobotEpisodeSource(source, cfg)
    return EpisodeSource(source, cfg)


def _resolve_rlds(cfg: DataConfig, datasets: Any) -> list[Source]:
    from vla.data.oxe import resolve_datasets
    from vla.data.statistics import get_dataset_statistics

    resolved = resolve_datasets(datasets, data_root=cfg.data_root)
    sources = []
    for r in resolved:
        missing = [c for c in cfg.cameras if not r.spec.image_keys.get(c)]
        if missing:
            raise KeyError(
                f"dataset {r.name!r} ({r.dataset_dir}) has no {missing} camera (its cameras: {list(r.spec.cameras)}); "
                f"set data.cameras to a subset of them"
            )
        reader = RLDSReader(r.dataset_dir)
        for cam in cfg.cameras:
            key = f"steps/observation/{r.spec.image_keys[cam]}"
            if reader.spec.find(key) is None:
                raise KeyError(
                    f"dataset {r.name!r} ({r.dataset_dir}) has no {cam!r} camera: {key!r} is not in its features.json "
                    f"(image features: {reader.image_keys()}); set data.cameras to the cameras it has"
                )
        stats = get_dataset_statistics(r.dataset_dir, r.spec, cache_dir=cfg.statistics_cache)
        n = reader.num_episodes(cfg.split)
        if n == 0:
            raise ValueError(f"dataset {r.name!r} has no episodes in split {cfg.split!r} ({r.dataset_dir})")
        sources.append(Source(r.name, Path(r.dataset_dir), r.spec, r.weight, stats, n))
    return sources


def no_steps_error(source: Source, cfg: DataConfig) -> ValueError:
    """The error for a dataset none of whose steps survives the step filters, naming them and the way out."""
    flagged = getattr(source.spec, "filter_zero_actions", False)
    return ValueError(
        f"dataset {source.name!r} ({source.dataset_dir}): no episode has any step to sample in split {cfg.split!r}. "
        f"data.skip_unlabeled={cfg.skip_unlabeled} leaves out episodes without a language instruction"
        + (f" and data.zero_action_filter={cfg.zero_action_filter!r} drops its no-op steps" if flagged else "")
        + ". Check that the episodes carry instructions (and motion), or set data.skip_unlabeled=false"
        + (" / data.zero_action_filter=off" if flagged else "") + " to keep them."
    )


def sampling_probabilities(sources: Sequence[Source]) -> np.ndarray:
    """weight x num_transitions, normalized (as the reference's balanced interleave)."""
    from vla.data.oxe import sampling_weights

    return sampling_weights([(s.name, s.weight) for s in sources], {s.name: s.statistics.num_transitions for s in sources})


# ---------------------------------------------------------------------------------------------- episodes
class EpisodeSource:
    """Reads, standardizes and normalizes episodes of one dataset (one per process: open files are cached)."""

    def __init__(self, source: Source, cfg: DataConfig) -> None:
        self.source = source
        self.cfg = cfg
        self.reader = RLDSReader(source.dataset_dir)
        self.refs = self.reader.episode_refs(cfg.split)
        # standardize only the cameras we deliver (a spec's other cameras are neither read nor required)
        wanted = set(cfg.cameras) | {"primary"}
        spec = source.spec
        if dataclasses.is_dataclass(spec):
            spec = dataclasses.replace(spec, image_keys={c: (k if c in wanted else None) for c, k in spec.image_keys.items()})
        self.spec = spec
        image_keys = {f"steps/observation/{k}" for c, k in spec.image_keys.items() if k and c in wanted}
        self.keys = {leaf.key for leaf in self.reader.spec.leaves() if leaf.kind != "image"} | (
            image_keys & {leaf.key for leaf in self.reader.spec.leaves()})
        self._files: dict[str, Any] = {}

    def _read(self, index: int) -> tuple[dict[str, Any], str]:
        """Raw episode `index` of the split and the file it came from."""
        ref = self.refs[index]
        f = self._files.get(ref.shard)
        if f is None:
            if len(self._files) >= 8:
                self._files.pop(next(iter(self._files))).close()
            f = self._files[ref.shard] = open(ref.shard, "rb")
        return self.reader.read_episode(ref, keys=self.keys, file=f), ref.shard

    def load(self, index: int) -> dict[str, Any]:
        raw, where = self._read(index)
        std = self.spec.standardize(raw)
        stats = self.source.statistics
        action = stats.action.normalize(std["action"])
        proprio = std["proprio"]
        if stats.proprio is not None and proprio.shape[1] > 0:
            proprio = stats.proprio.normalize(proprio)
        missing = [c for c in self.cfg.cameras if c not in std["images"]]
        if missing:
            raise KeyError(
                f"episode {index} of {self.source.name!r} ({where}) has no {missing} images; set data.cameras "
                f"to cameras every episode has"
            )
        keep = self._sampled_steps(std, action)
        meta = std.get("metadata", {})
        ep_id = meta.get("episode_id", index)
        ep_id = ep_id.decode() if isinstance(ep_id, bytes) else str(ep_id)
        return {"images": {c: std["images"][c] for c in self.cfg.cameras}, "action": action,
                "proprio": proprio.astype(np.float32), "instruction": std["instruction"], "keep": keep,
                "episode_id": ep_id, "index": index}

    def _sampled_steps(self, std: dict[str, Any], action: np.ndarray) -> np.ndarray:
        """Indices of the steps training may sample: none when the episode has no instruction and
        `skip_unlabeled` is on; else all, less the no-op steps when the spec flags them (DROID)."""
        from vla.data.oxe import motionless_actions, steps_with_motion

        cfg = self.cfg
        if cfg.skip_unlabeled and not std["instruction"]:
            return np.arange(0)
        if not getattr(self.source.spec, "filter_zero_actions", False) or cfg.zero_action_filter == "off":
            return np.arange(action.shape[0])
        still = motionless_actions(std["action"], action, cfg.zero_action_filter)
        return steps_with_motion(still, 1 if cfg.window.is_frames else cfg.window.action_chunk)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
