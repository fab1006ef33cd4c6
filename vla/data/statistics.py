"""Per-dataset normalization statistics, computed once in one pass and cached as JSON.

`get_dataset_statistics(dataset_dir, spec)` reads every episode of every split (no image is read into
memory or decoded: only the action and proprio features are parsed), standardizes it with the dataset's
spec and returns `vla.core.statistics.DatasetStatistics` (mean, std, min, max, q01, q99, mask of the 7-D
action and of the proprio, num_transitions, num_trajectories), in OpenVLA's `norm_stats` layout.

As in the reference (OpenVLA / Octo `get_dataset_statistics`):
- the statistics cover split "all" (every split listed in dataset_info.json, test/val included), while
  training reads `train[:95%]` when there is no `val` split; a split whose shard files are not on disk is
  left out with a warning naming it (the real bridge test data lists `val` but ships only `train`);
- the action mask leaves the absolute gripper unnormalized (`spec.action_normalization_mask`); proprio is
  normalized on every dim; normalization itself is `ArrayStatistics.normalize` (BOUNDS_Q99, constant dims
  to 0);
- the cache file is keyed by a sha256 of the dataset (dataset_info.json, features.json, each shard's
  name, size and first/last 64 KiB) and of the standardization (the transform's source, the shared helper
  module's source, the proprio layout and mask). Changing either computes the statistics again.
- the instruction vocabulary rides along (`extra["instruction_vocabulary"]`, see `instruction_vocabulary`): the
  lower-cased words of every instruction the statistics cover, and the distinct instructions when there are
  at most `MAX_STORED_INSTRUCTIONS`. A checkpoint carries its statistics, so it carries the words it was
  trained on, and `VLAPolicy` warns about an instruction with other words (OpenVLA's readers ignore the key).
Differences: values are computed in float64 (the reference uses float32 arithmetic: ~1e-7 relative), and
the proprio statistics describe the real proprio (OpenVLA trains with `load_proprio=False`, so its
released checkpoints carry a 7-D all-zero proprio entry).

Example:
    spec = get_dataset_spec("bridge_orig")
    stats = get_dataset_statistics("/data/bridge_orig/1.0.0", spec)    # ~/.cache/vla/statistics/...
    stats.action.normalize(action)                                     # (7,) in [-1, 1], gripper as is
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from vla.core.statistics import ArrayStatistics, DatasetStatistics

logger = logging.getLogger(__name__)

#: Bump when the statistics computation changes in a way that must invalidate every cache.
#: v2: the instruction vocabulary (caches written before it lack it).
STATISTICS_FORMAT = "vla-statistics-v2"
_EDGE_BYTES = 64 * 1024
#: Key of the instruction vocabulary in `DatasetStatistics.extra` (and so in `norm_stats[unnorm_key]`).
VOCABULARY_KEY = "instruction_vocabulary"
#: Distinct instructions kept verbatim in the vocabulary; beyond this (bridge has thousands) only the words are.
MAX_STORED_INSTRUCTIONS = 1000
#: What a policy does with an instruction holding words outside the vocabulary (`vla:unknown_words=`).
UNKNOWN_WORDS = ("warn", "error", "ignore", "drop")
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, any script


def default_cache_dir() -> Path:
    """`$VLA_CACHE_DIR/statistics`, else `~/.cache/vla/statistics`."""
    root = os.environ.get("VLA_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "vla") / "statistics"


def get_dataset_statistics(
    dataset_dir: str | os.PathLike,
    spec: Any,
    *,
    cache_dir: str | os.PathLike | None = None,
    recompute: bool = False,
) -> DatasetStatistics:
    """Statistics of the standardized action and proprio of one dataset, from the cache when valid.

    Args:
        dataset_dir: `<root>/<name>/<version>` (the folder with features.json and the shards).
        spec: the dataset's `vla.data.oxe.DatasetSpec` (see `get_dataset_spec` / `spec_for_directory`), or
            a registered dataset name.
        cache_dir: where the JSON cache lives (default `default_cache_dir()`).
        recompute: ignore an existing cache entry and overwrite it.
    Returns:
        DatasetStatistics; `extra["cache_key"]` is the sha256 it is cached under.
    """
    from vla.data.rlds_reader import RLDSReader

    if isinstance(spec, str):
        from vla.data.oxe import get_dataset_spec

        spec = get_dataset_spec(spec)
    spec.check_supported()
    reader = RLDSReader(dataset_dir)
    splits = _available_splits(reader)
    key = statistics_cache_key(reader, spec, splits)
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"dataset_statistics_{spec.name}_{key}.json"
    if path.is_file() and not recompute:
        logger.info("loading dataset statistics of %s from %s", spec.name, path)
        return DatasetStatistics.from_dict(json.loads(path.read_text()))

    logger.info("computing dataset statistics of %s over splits %s (one pass, no images)", spec.name, splits)
    stats = compute_statistics(_iter_episodes(reader, splits), spec, total=sum(reader.splits[s] for s in splits))
    stats.extra.update({"cache_key": key, "splits": list(splits)})
    _write_json_atomic(path, stats.to_dict())
    logger.info("wrote dataset statistics of %s to %s (%d trajectories, %d transitions)", spec.name, path,
                stats.num_trajectories, stats.num_transitions)
    return stats


def compute_statistics(episodes: Iterable[Mapping[str, Any]], spec: Any, *, total: int | None = None) -> DatasetStatistics:
    """Statistics from raw episodes (reader output), in one pass; keeps only the action/proprio arrays and the
    distinct instructions (the vocabulary in `extra`)."""
    from tqdm import tqdm

    actions, proprios, instructions = [], [], set()
    num_trajectories = 0
    for ep in tqdm(episodes, total=total, desc=f"statistics {spec.name}", unit="ep", disable=None, leave=False):
        std = spec.standardize(ep, images=False)
        actions.append(std["action"])
        proprios.append(std["proprio"])
        instructions.add(std.get("instruction") or "")
        num_trajectories += 1
    if num_trajectories == 0:
        raise ValueError(f"dataset {spec.name!r} has no episodes to compute statistics over")
    action = np.concatenate(actions, axis=0)
    if action.shape[0] == 0:
        raise ValueError(f"dataset {spec.name!r}: its {num_trajectories} episodes have no steps after standardization")
    proprio = np.concatenate(proprios, axis=0)
    return DatasetStatistics(
        action=ArrayStatistics.compute(action, mask=np.asarray(spec.action_normalization_mask, bool)),
        proprio=ArrayStatistics.compute(proprio) if proprio.shape[1] > 0 else None,
        num_transitions=int(action.shape[0]),
        num_trajectories=num_trajectories,
        extra={VOCABULARY_KEY: instruction_vocabulary(instructions)},
    )


def instruction_words(text: str) -> list[str]:
    """The lower-cased words of an instruction (letters and digits; punctuation and spaces split them)."""
    return _WORD.findall(str(text).lower())


def drop_unknown_words(text: str, words: frozenset[str] | set[str]) -> str:
    """`text` without the words (`instruction_words`' sense, any case) outside `words`, each with the space before
    it; spaces collapsed."""
    kept = re.sub(r"\s*([^\W_]+)", lambda m: m.group(0) if m.group(1).lower() in words else "", str(text))
    return " ".join(kept.split())


def instruction_vocabulary(instructions: Iterable[str]) -> dict[str, Any]:
    """What a checkpoint records of the instructions it was trained on (JSON-able).

    Returns:
        {"words": sorted lower-cased words, "num_instructions": distinct non-empty instructions,
         "instructions": those instructions sorted, or [] when there are more than MAX_STORED_INSTRUCTIONS}
    """
    distinct = sorted({str(i).strip() for i in instructions} - {""})
    words = sorted({w for i in distinct for w in instruction_words(i)})
    return {"words": words, "num_instructions": len(distinct),
            "instructions": distinct if len(distinct) <= MAX_STORED_INSTRUCTIONS else []}


def statistics_cache_key(reader: Any, spec: Any, splits: Iterable[str]) -> str:
    """sha256 over the dataset's metadata and shard files and over the standardization code and layout."""
    h = hashlib.sha256()

    def add(label: str, data: bytes | str) -> None:
        h.update(label.encode())
        h.update(len(data).to_bytes(8, "little"))
        h.update(data.encode() if isinstance(data, str) else data)

    add("format", STATISTICS_FORMAT)
    for name in ("dataset_info.json", "features.json"):
        add(name, (reader.dataset_dir / name).read_bytes())
    for split in sorted(splits):
        for shard in reader.shard_paths(split):
            add("shard", f"{shard.name}:{shard.stat().st_size}")
            add("edges", _file_edges(shard))
    add("transform", _source(spec.transform))
    from vla.data.oxe import registry, transform_utils

    add("helpers", inspect.getsource(transform_utils))
    add("restructure", inspect.getsource(registry.DatasetSpec.standardize) + inspect.getsource(registry.DatasetSpec._proprio)
        + inspect.getsource(registry._first_instruction))
    add("layout", json.dumps({"state_obs_keys": list(spec.state_obs_keys), "mask": list(spec.action_normalization_mask),
                              "proprio_dim": spec.proprio_dim, "encoding": spec.action_encoding}))
    add("splits", ",".join(sorted(splits)))
    return h.hexdigest()


def _source(fn: Any) -> str:
    """The function's source; for functions without a source file, its bytecode and constants."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        if code is None:
            raise TypeError(f"cannot fingerprint standardization transform {fn!r}: give a plain Python function") from None
        return code.co_code.hex() + repr(code.co_consts) + repr(code.co_names)


def _file_edges(path: Path) -> bytes:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_EDGE_BYTES)
        if size > 2 * _EDGE_BYTES:
            f.seek(size - _EDGE_BYTES)
        tail = f.read(_EDGE_BYTES)
    return hashlib.sha256(head + tail).digest()


def _available_splits(reader: Any) -> list[str]:
    """Every declared split whose shards are all on disk; a missing one is named in a warning."""
    present = []
    for split in reader.splits:
        try:
            reader.shard_paths(split)
        except FileNotFoundError as e:
            logger.warning("statistics of %s leave out split %r: %s", reader.dataset_dir, split, e)
            continue
        present.append(split)
    if not present:
        raise FileNotFoundError(f"{reader.dataset_dir}: no split has its shard files on disk (declared: {sorted(reader.splits)})")
    return present


def _iter_episodes(reader: Any, splits: list[str]) -> Iterator[dict]:
    keys = _non_image_keys(reader)
    for split in splits:
        yield from reader.episodes(split, decode_images=False, keys=keys)


def _non_image_keys(reader: Any) -> set[str]:
    """Every feature but images (and depth images): only these are parsed from the records."""
    return {leaf.key for leaf in reader.spec.leaves() if leaf.kind != "image"}


def _write_json_atomic(path: Path, data: dict) -> None:
    """Write via a temp file + rename so concurrent ranks never read a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
