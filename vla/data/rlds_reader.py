"""TensorFlow-free reader of RLDS datasets in TFDS layout (ours, converted recordings, Open X-Embodiment).

Reads `<dataset_dir>/{dataset_info.json, features.json, <name>-<split>.tfrecord-*}` with the TFRecord
framing and CRC checks of `vla.data.tfrecord` and the tf.Example decoder of `vla.data.example_proto`, and
returns exactly what `tfds.as_numpy(tfds.builder_from_directory(dir).as_dataset(split))` returns, except
that `steps` is a dict of arrays stacked over time (T, ...) instead of a nested dataset:
strings are bytes, images are encoded bytes (object array (T,)) or, with `decode_images=True`, uint8
(T, H, W, C) decoded bit-identically to TensorFlow (`simplejpeg`, fast DCT), and `episode_metadata` is a
dict of numpy scalars / bytes.

Example:
    reader = RLDSReader("/data/bridge_dataset/1.0.0")
    for ep in reader.episodes("train", decode_images=True):
        ep["steps"]["observation"]["image_0"]  # uint8 (T, 64, 64, 3)
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from vla.data.example_proto import FeatureSpec, LeafSpec, decode_example
from vla.data.tfrecord import index_records, read_record

logger = logging.getLogger(__name__)

_DEFAULT_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
_SPLIT_RE = re.compile(r"^(?P<name>[\w-]+)(\[(?P<start>-?\d*%?)?:(?P<stop>-?\d*%?)?\])?$")


class DatasetFormatError(ValueError):
    """A dataset directory is not a readable TFDS/RLDS dataset; the message names the file and the fix."""


def decode_image(data: bytes, channels: int = 3) -> np.ndarray:
    """Encoded JPEG/PNG bytes -> uint8 (H, W, C), identical to TensorFlow's default decoders."""
    if data[:2] == b"\xff\xd8":
        import simplejpeg

        colorspace = "GRAY" if channels == 1 else "RGB"
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, fastdct=True)
    if data[:4] == b"\x89PNG":
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
        return arr[..., None] if channels == 1 else arr
    raise DatasetFormatError(f"image bytes are neither JPEG nor PNG (starts with {data[:4]!r})")


@dataclass(frozen=True)
class EpisodeRef:
    """Where one episode lives: enough to read it again without scanning (used by the torch loader)."""

    shard: str
    offset: int
    length: int
    index: int  # position in the split


class RLDSReader:
    """Read one TFDS dataset version directory without TensorFlow.

    Args:
        dataset_dir: `<root>/<name>/<version>` (the directory holding features.json).
    """

    def __init__(self, dataset_dir: str | os.PathLike) -> None:
        self.dataset_dir = Path(dataset_dir)
        if not self.dataset_dir.is_dir():
            raise FileNotFoundError(
                f"dataset directory {self.dataset_dir} does not exist; point at <root>/<name>/<version> "
                "(the folder holding features.json and the .tfrecord shards)"
            )
        feats = self.dataset_dir / "features.json"
        info = self.dataset_dir / "dataset_info.json"
        for path in (feats, info):
            if not path.is_file():
                versions = sorted(p.name for p in self.dataset_dir.iterdir() if (p / path.name).is_file())
                hint = (
                    f"it looks like a dataset name folder: use {self.dataset_dir / versions[0]}" if versions else
                    "point at the <root>/<name>/<version> folder of a TFDS dataset, or write the dataset again "
                    "(a TFDS writer creates features.json and dataset_info.json next to the shards)"
                )
                raise DatasetFormatError(f"{path} is missing: {hint}")
        self.features: dict = json.loads(feats.read_text())
        self.info: dict = json.loads(info.read_text())
        self.name: str = self.info.get("name", self.dataset_dir.parent.name)
        file_format = self.info.get("fileFormat", "tfrecord")
        if file_format != "tfrecord":
            raise DatasetFormatError(
                f"{info}: fileFormat {file_format!r} is not supported by the TensorFlow-free reader (tfrecord only); "
                "re-export the dataset as tfrecord or read it with tfds"
            )
        self.spec = FeatureSpec.from_features_json(self.features)
        self._index: dict[str, list[EpisodeRef]] = {}

    # ------------------------------------------------------------------------------------------ splits
    @property
    def splits(self) -> dict[str, int]:
        """Split name -> number of episodes, as declared in dataset_info.json."""
        return {s["name"]: sum(int(n) for n in s.get("shardLengths", [])) for s in self.info.get("splits", [])}

    def _split_info(self, name: str) -> dict:
        for s in self.info.get("splits", []):
            if s["name"] == name:
                return s
        raise KeyError(
            f"split {name!r} not in {self.dataset_dir / 'dataset_info.json'}; available splits: {sorted(self.splits)}"
        )

    def _expected_shard_paths(self, split: str) -> list[Path]:
        s = self._split_info(split)
        n = len(s.get("shardLengths", []))
        template = s.get("filepathTemplate", _DEFAULT_TEMPLATE)
        return [
            self.dataset_dir / (
                template.replace("{DATASET}", self.name).replace("{SPLIT}", split).replace("{FILEFORMAT}", "tfrecord")
                .replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{n:05d}").replace("{SHARD_INDEX}", f"{i:05d}")
                .replace("{NUM_SHARDS}", f"{n:05d}")
            )
            for i in range(n)
        ]

    def shard_paths(self, split: str) -> list[Path]:
        """Paths of the shard files of a split (base name, without slicing), checked to exist."""
        paths = self._expected_shard_paths(split)
        for path in paths:
            if not path.is_file():
                present = [s for s in self.splits if all(p.is_file() for p in self._expected_shard_paths(s))]
                raise FileNotFoundError(
                    f"shard {path} of split {split!r} is listed in dataset_info.json but missing; copy the complete "
                    f"dataset or read another split (splits with all their shards: {present})"
                )
        return paths

    def episode_refs(self, split: str = "train") -> list[EpisodeRef]:
        """Locations of the episodes of `split` (TFDS slicing like "train[:95%]" or "train[10:20]" allowed)."""
        base, sl = _parse_split(split)
        if base not in self._index:
            refs: list[EpisodeRef] = []
            lengths = [int(n) for n in self._split_info(base).get("shardLengths", [])]
            for path, expected in zip(self.shard_paths(base), lengths):
                records = index_records(path)
                if len(records) != expected:
                    raise DatasetFormatError(
                        f"{path} holds {len(records)} episodes, dataset_info.json says {expected}; the shard or the "
                        "metadata is stale: write the dataset again"
                    )
                refs.extend(EpisodeRef(os.fspath(path), off, ln, len(refs) + j) for j, (off, ln) in enumerate(records))
            self._index[base] = refs
        refs = self._index[base]
        return refs if sl is None else refs[_slice_bounds(sl, len(refs))]

    def num_episodes(self, split: str = "train") -> int:
        base, sl = _parse_split(split)
        n = self.splits[base] if base in self.splits else len(self.episode_refs(base))
        if sl is None:
            return n
        lo, hi = _slice_bounds(sl, n).indices(n)[:2]
        return max(0, hi - lo)

    # ----------------------------------------------------------------------------------------- reading
    def check_keys(self, keys: list[str] | set[str]) -> None:
        """Fail clearly if any flat key (e.g. "steps/observation/image_0") is not a feature of this dataset."""
        known = {leaf.key for leaf in self.spec.leaves()}
        for key in keys:
            if key not in known:
                images = sorted(leaf.key for leaf in self.spec.leaves() if leaf.kind == "image")
                raise KeyError(
                    f"{key!r} is not a feature of {self.dataset_dir} (see features.json); image features: {images}; "
                    f"all features: {sorted(known)}"
                )

    def read_episode(self, ref: EpisodeRef, *, decode_images: bool = False, keys: set[str] | None = None,
                     file: Any = None) -> dict[str, Any]:
        """One episode as a nested dict (see the module docstring). `file`: an open handle on `ref.shard` to reuse."""
        if keys is not None:
            self.check_keys(keys)
        if file is None:
            with open(ref.shard, "rb") as f:
                data = read_record(f, ref.shard, ref.offset, ref.length)
        else:
            data = read_record(file, ref.shard, ref.offset, ref.length)
        try:
            ep = decode_example(data, self.spec, keys=keys)
        except ValueError as e:
            raise DatasetFormatError(f"{ref.shard}: episode at byte offset {ref.offset}: {e}") from e
        if decode_images:
            self._decode_images(ep, self.spec.tree)
        return ep

    def episodes(self, split: str = "train", decode_images: bool = False, *,
                 keys: set[str] | None = None) -> Iterator[dict[str, Any]]:
        """Episodes of `split` in file order (the order TFDS gives without shuffling)."""
        refs = self.episode_refs(split)
        handle, handle_path = None, None
        try:
            for ref in refs:
                if ref.shard != handle_path:
                    if handle is not None:
                        handle.close()
                    handle, handle_path = open(ref.shard, "rb"), ref.shard
                yield self.read_episode(ref, decode_images=decode_images, keys=keys, file=handle)
        finally:
            if handle is not None:
                handle.close()

    def _decode_images(self, node: dict[str, Any], tree: dict[str, Any]) -> None:
        for name, sub in tree.items():
            if name not in node:
                continue
            if isinstance(sub, LeafSpec):
                if sub.kind != "image":
                    continue
                channels = sub.shape[-1] if sub.shape else 3
                if sub.sequence:
                    frames = [decode_image(b, channels) for b in node[name]]
                    shape = (0,) + tuple(max(d, 0) for d in sub.shape)
                    node[name] = np.stack(frames) if frames else np.zeros(shape, np.uint8)
                else:
                    node[name] = decode_image(node[name], channels)
            else:
                self._decode_images(node[name], sub)

    def image_keys(self) -> list[str]:
        """Flat keys of all image features (e.g. steps/observation/image_0)."""
        return sorted(leaf.key for leaf in self.spec.leaves() if leaf.kind == "image")


def _parse_split(split: str) -> tuple[str, tuple[str, str] | None]:
    m = _SPLIT_RE.match(split.replace(" ", ""))
    if not m:
        raise KeyError(f"cannot parse split {split!r}; use a name like 'train' or a slice like 'train[:95%]'")
    if m.group(3) is None and "[" not in split:
        return m.group("name"), None
    return m.group("name"), (m.group("start") or "", m.group("stop") or "")


def _slice_bounds(sl: tuple[str, str], n: int) -> slice:
    """TFDS slice semantics: percent boundaries rounded to the closest episode."""

    def conv(b: str) -> int | None:
        if b == "":
            return None
        if b.endswith("%"):
            pct = int(b[:-1])
            if not -100 <= pct <= 100:
                raise KeyError(f"split slice percent {b} is out of range [-100%, 100%]")
            return int(round(pct * n / 100.0))
        return int(b)

    return slice(conv(sl[0]), conv(sl[1]))
