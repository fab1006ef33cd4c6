"""Read episodes of a local LeRobot dataset (v2.0 / v2.1 / v3.0) into the raw layout our dataset specs take.

    reader = LeRobotReader("~/.cache/huggingface/lerobot/me/so101_pick")
    ep = reader.read_episode(0)              # {"steps": {"observation": {...}, "action": (T, D), ...}, ...}
    ep["steps"]["observation"]["observation.images.front"]   # T PNG bytes (image feature) or T uint8 arrays (video)

Image features stay encoded (`PNGFrame`: PNG bytes the loader decodes after its shuffle buffer, like RLDS JPEGs); video
features are decoded per episode in one sequential pass (`video.decode_frames`), resized to `image_size` there
so the buffer holds training-size frames.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from vla.data.lerobot.meta import EpisodeInfo, LeRobotFormatError, LeRobotMeta
from vla.data.lerobot.video import PNGFrame, decode_frames

#: Columns LeRobot adds to every frame (not features of the robot).
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


class LeRobotReader:
    """Episodes of one LeRobot dataset; `episodes` lists them in episode-index order (positions 0..N-1)."""

    def __init__(self, root: str | Path | LeRobotMeta) -> None:
        self.meta = root if isinstance(root, LeRobotMeta) else LeRobotMeta(root)
        self.root = self.meta.root
        self.episodes: list[EpisodeInfo] = self.meta.episodes
        self._tables: OrderedDict[Path, Any] = OrderedDict()  # data file -> its non-image columns (v3.0 shares files)

    def __len__(self) -> int:
        return len(self.episodes)

    def read_episode(self, position: int, *, cameras: Iterable[str] = (), image_size: tuple[int, int] | None = None
                     ) -> dict[str, Any]:
        """Episode at `position`: every non-camera feature, plus the camera features named in `cameras`."""
        ep = self.episodes[position]
        cameras = list(cameras)
        table = self._frames(ep)
        n = table.num_rows
        if n != ep.length:
            raise LeRobotFormatError(
                f"{ep.data_file}: episode {ep.index} has {n} frames, the episode index says {ep.length}; the data and "
                "meta/ folders are from different versions of the dataset: re-download both"
            )
        steps: dict[str, Any] = {"observation": {}}
        for key, feat in self.meta.features.items():
            if feat.get("dtype") in ("image", "video") or key in ("episode_index", "index"):
                continue
            if key not in table.column_names:
                raise LeRobotFormatError(f"{ep.data_file}: no column {key!r}, which meta/info.json lists as a feature")
            value = _column(table, key, feat)
            if key == "action" or key in INDEX_COLUMNS:
                steps[key] = value
            else:
                steps["observation"][key] = value
        steps["language_instruction"] = np.asarray([self.meta.tasks.get(int(i), "") for i in steps.get(
            "task_index", np.zeros(n, np.int64))], dtype=object)
        for key in cameras:
            steps["observation"][key] = self._camera(ep, key, steps["timestamp"], image_size)
        return {"steps": steps, "episode_metadata": {"episode_id": str(ep.index), "episode_index": ep.index,
                                                     "tasks": list(ep.tasks)}}

    def iter_episodes(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for i in range(len(self.episodes)):
            yield self.read_episode(i, **kwargs)

    # ------------------------------------------------------------------------------------------ frames
    def _frames(self, ep: EpisodeInfo) -> Any:
        """The episode's rows (non-image columns) of its data file, ordered by frame_index."""
        import pyarrow.compute as pc

        table = self._tables.get(ep.data_file)
        if table is None:
            table = self._read_table(ep.data_file, [k for k, f in self.meta.features.items()
                                                    if f.get("dtype") not in ("image", "video")])
            if len(self._tables) >= 2:
                self._tables.popitem(last=False)
            self._tables[ep.data_file] = table
        if self.meta.is_v3:
            table = table.filter(pc.equal(table.column("episode_index"), ep.index))
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        return table

    def _read_table(self, path: Path, columns: list[str], filters: Any = None) -> Any:
        import pyarrow.parquet as pq

        if not path.is_file():
            raise LeRobotFormatError(f"{path} does not exist, though the episode index points to it; re-download the "
                                     "dataset's data/ folder (or the episodes it lists)")
        have = pq.read_schema(path).names
        missing = [c for c in columns if c not in have]
        if missing:
            raise LeRobotFormatError(f"{path}: no column(s) {missing}, which meta/info.json lists as features (the "
                                     f"file has {have}); the data and meta/ folders disagree: re-download both")
        try:
            return pq.read_table(path, columns=columns, filters=filters)
        except Exception as e:
            raise LeRobotFormatError(f"{path}: cannot read this parquet file ({type(e).__name__}: {e}); re-download it") from e

    def _camera(self, ep: EpisodeInfo, key: str, timestamps: np.ndarray, image_size: tuple[int, int] | None) -> list:
        feat = self.meta.features.get(key)
        if feat is None or feat.get("dtype") not in ("image", "video"):
            raise LeRobotFormatError(f"{self.root / 'meta/info.json'}: {key!r} is not an image or video feature "
                                     f"(cameras: {self.meta.camera_features()})")
        if feat["dtype"] == "video":
            path, start = ep.videos[key]
            return decode_frames(path, start + np.asarray(timestamps, np.float64).reshape(-1), self.meta.fps,
                                 size=image_size)
        filters = [("episode_index", "=", ep.index)] if self.meta.is_v3 else None
        table = self._read_table(ep.data_file, [key, "frame_index"], filters)
        table = table.sort_by("frame_index")
        col = table.column(key).combine_chunks()
        data, paths = col.field("bytes").to_pylist(), col.field("path").to_pylist()
        out = []
        for b, p in zip(data, paths):
            if b is None:  # an image kept as a file next to the dataset (not embedded)
                f = self.root / str(p)
                if not p or not f.is_file():
                    raise LeRobotFormatError(f"{ep.data_file}: a frame of {key!r} (episode {ep.index}) has no bytes and "
                                             f"its path {p!r} is not a file under {self.root}; re-download the dataset")
                b = f.read_bytes()
            out.append(PNGFrame(b))
        return out


def _column(table: Any, key: str, feat: dict) -> np.ndarray:
    """A numeric feature as a (T, *shape) array (scalars as (T,)), strings as an object array."""
    col = table.column(key).combine_chunks()
    dtype = feat.get("dtype", "float32")
    if dtype == "string":
        return np.asarray(col.to_pylist(), dtype=object)
    n = len(col)
    while hasattr(col.type, "value_type"):  # (fixed-size) lists, possibly nested
        col = col.flatten()
    values = col.to_numpy(zero_copy_only=False)
    shape = tuple(int(s) for s in feat.get("shape", [1]))
    if key in INDEX_COLUMNS or shape in ((1,), ()):
        if values.size == n:
            return values.reshape(n)
    return values.reshape((n,) + shape).astype(dtype if dtype not in ("video", "image") else values.dtype, copy=False)
