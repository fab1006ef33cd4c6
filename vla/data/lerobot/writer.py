"""Write episodes as a LeRobot v3.0 dataset that `lerobot.datasets.LeRobotDataset` loads (and the Hub shows).

    with LeRobotWriter("outputs/lerobot/sim_pick", fps=10, cameras={"primary": (224, 224)}, state_dim=8) as w:
        for ep in episodes:                # vla.core.episode.Episode (images (T, H, W, 3), state, action, instruction)
            w.write(ep)

Layout as LeRobot 0.4 writes it: data/chunk-000/file-NNN.parquet (frames), videos/<camera>/chunk-000/file-NNN.mp4
(AV1 like LeRobot's default, or PNG `image` features with video=False), meta/info.json, meta/tasks.parquet,
meta/episodes/chunk-000/file-000.parquet, meta/stats.json. Cameras are named `observation.images.<camera>`
(`primary` -> `observation.images.primary`), the proprio `observation.state`, the 7-D delta action `action` with
the names x, y, z, roll, pitch, yaw, gripper.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vla.core.types import ACTION_DIM
from vla.data.lerobot.video import DEFAULT_CODEC, VideoEncoder

ACTION_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def camera_feature(camera: str) -> str:
    return f"observation.images.{camera}"


class LeRobotWriter:
    """Writes a LeRobot v3.0 dataset at `root`, `episodes_per_file` episodes per data file and per mp4.

    Args:
        root: the dataset folder (created; must not hold a dataset unless overwrite).
        fps: control rate of the episodes.
        cameras: our camera name -> (H, W) of its frames.
        state_dim: P of `observation.state`.
        video: cameras as AV1 mp4 (LeRobot's default) or as PNG image features in the parquet.
        robot_type: written to info.json.
    """

    def __init__(self, root: str | Path, *, fps: float, cameras: dict[str, tuple[int, int]], state_dim: int,
                 video: bool = True, robot_type: str = "unknown", episodes_per_file: int = 50,
                 codec: str = DEFAULT_CODEC, overwrite: bool = False) -> None:
        self.root = Path(root).expanduser()
        if (self.root / "meta/info.json").exists():
            if not overwrite:
                raise FileExistsError(f"{self.root} already holds a LeRobot dataset; pass overwrite=True or choose another")
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fps, self.video, self.codec = float(fps), bool(video), codec
        self.cameras = {c: (int(s[0]), int(s[1])) for c, s in cameras.items()}
        self.state_dim, self.robot_type, self.per_file = int(state_dim), robot_type, int(episodes_per_file)
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict[str, Any]] = []
        self._rows: list[Any] = []  # pyarrow tables of the current data file
        self._encoders: dict[str, VideoEncoder] = {}
        self._frames = 0
        self._numeric: dict[str, list[np.ndarray]] = {"observation.state": [], "action": []}
        self._pixels: dict[str, list[np.ndarray]] = {camera_feature(c): [] for c in self.cameras}

    def __enter__(self) -> "LeRobotWriter":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:  # leave no half-written metadata that would look like a dataset
            for enc in self._encoders.values():
                enc.close()

    @property
    def file_index(self) -> int:
        return len(self.episodes) // self.per_file

    def write(self, episode: Any) -> None:
        """Append one `vla.core.episode.Episode` (or anything with images, state, action, instruction)."""
        import pyarrow as pa

        action = np.asarray(episode.action, np.float32)
        state = np.asarray(episode.state, np.float32).reshape(len(action), -1)
        t = len(action)
        if action.shape != (t, ACTION_DIM) or state.shape[1] != self.state_dim or t == 0:
            raise ValueError(f"episode {len(self.episodes)}: need action (T, 7) and state (T, {self.state_dim}), T > 0; "
                             f"got {action.shape} and {state.shape}")
        task = episode.instruction or ""
        task_index = self.tasks.setdefault(task, len(self.tasks))
        ep_index, file_index = len(self.episodes), self.file_index
        cols: dict[str, Any] = {}
        row: dict[str, Any] = {"episode_index": ep_index, "tasks": [task], "length": t, "data/chunk_index": 0,
                               "data/file_index": file_index, "dataset_from_index": self._frames,
                               "dataset_to_index": self._frames + t}
        for cam, size in self.cameras.items():
            frames = np.asarray(episode.images[cam])
            if frames.shape != (t, *size, 3) or frames.dtype != np.uint8:
                raise ValueError(f"episode {ep_index}: camera {cam!r} frames must be uint8 {(t, *size, 3)}, got "
                                 f"{frames.dtype} {frames.shape}")
            key = camera_feature(cam)
            self._pixels[key].append(frames[:: max(1, t // 10)])  # a sample of frames for stats.json
            if self.video:
                start, end = self._encoder(key, size).add(frames)
                row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": file_index,
                            f"videos/{key}/from_timestamp": start, f"videos/{key}/to_timestamp": end})
            else:
                cols[key] = pa.array([{"bytes": _png(f), "path": f"frame-{i:06d}.png"} for i, f in enumerate(frames)],
                                     type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        cols["observation.state"] = pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), self.state_dim)
        cols["action"] = pa.FixedSizeListArray.from_arrays(pa.array(action.reshape(-1)), ACTION_DIM)
        cols["timestamp"] = pa.array((np.arange(t) / self.fps).astype(np.float32))
        cols["frame_index"] = pa.array(np.arange(t, dtype=np.int64))
        cols["episode_index"] = pa.array(np.full(t, ep_index, np.int64))
        cols["index"] = pa.array(np.arange(self._frames, self._frames + t, dtype=np.int64))
        cols["task_index"] = pa.array(np.full(t, task_index, np.int64))
        self._rows.append(pa.table(cols))
        self._numeric["observation.state"].append(state)
        self._numeric["action"].append(action)
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        self.episodes.append(row)
        self._frames += t
        if len(self.episodes) % self.per_file == 0:
            self._flush(file_index)

    def _encoder(self, key: str, size: tuple[int, int]) -> VideoEncoder:
        enc = self._encoders.get(key)
        if enc is None:
            path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=self.file_index)
            enc = self._encoders[key] = VideoEncoder(path, self.fps, size, codec=self.codec)
        return enc

    def _flush(self, file_index: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._rows:
            path = self.root / DATA_PATH.format(chunk_index=0, file_index=file_index)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.concat_tables(self._rows), path)
            self._rows = []
        for enc in self._encoders.values():
            enc.close()
        self._encoders = {}

    def close(self, splits: dict[str, str] | None = None) -> Path:
        """Finish the open files and write the metadata (`splits`: name -> "first:end" episode range, default all
        "train"); returns the dataset folder."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.episodes:
            raise ValueError(f"no episode was written to {self.root}")
        if self._rows or self._encoders:  # the last, partly filled file
            self._flush(self.file_index)
        ep_path = self.root / "meta/episodes/chunk-000/file-000.parquet"
        ep_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), ep_path)
        names = list(self.tasks)
        tasks = pa.table({"task_index": pa.array([self.tasks[n] for n in names], pa.int64()),
                          "__index_level_0__": pa.array(names, pa.large_string())})
        pq.write_table(tasks.replace_schema_metadata({"pandas": json.dumps(_PANDAS_TASKS)}), self.root / "meta/tasks.parquet")
        info = self._info()
        info["splits"] = splits or info["splits"]
        (self.root / "meta/info.json").write_text(json.dumps(info, indent=4))
        (self.root / "meta/stats.json").write_text(json.dumps(self._stats(), indent=4))
        return self.root

    def _info(self) -> dict[str, Any]:
        features: dict[str, Any] = {}
        for cam, (h, w) in self.cameras.items():
            feat: dict[str, Any] = {"dtype": "video" if self.video else "image", "shape": [h, w, 3],
                                    "names": ["height", "width", "channels"]}
            if self.video:
                feat["info"] = {"video.height": h, "video.width": w, "video.codec": "av1" if "av1" in self.codec else
                                self.codec, "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                                "video.fps": self.fps, "video.channels": 3, "has_audio": False}
            features[camera_feature(cam)] = feat
        features["observation.state"] = {"dtype": "float32", "shape": [self.state_dim], "names": None}
        features["action"] = {"dtype": "float32", "shape": [ACTION_DIM], "names": ACTION_NAMES}
        for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                           ("index", "int64"), ("task_index", "int64")):
            features[key] = {"dtype": dtype, "shape": [1], "names": None}
        fps = int(self.fps) if float(self.fps).is_integer() else self.fps
        return {"codebase_version": "v3.0", "robot_type": self.robot_type, "total_episodes": len(self.episodes),
                "total_frames": self._frames, "total_tasks": len(self.tasks), "chunks_size": 1000,
                "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": fps,
                "splits": {"train": f"0:{len(self.episodes)}"}, "data_path": DATA_PATH,
                "video_path": VIDEO_PATH if self.video else None, "features": features}

    def _stats(self) -> dict[str, Any]:
        """meta/stats.json as LeRobot writes it (min, max, mean, std, count, q01..q99; images per channel in [0, 1])."""
        out = {}
        for key, parts in list(self._numeric.items()) + list(self._pixels.items()):
            x = np.concatenate(parts).astype(np.float64)
            if x.ndim == 4:  # (N, H, W, 3) -> per channel, (3, 1, 1) as LeRobot
                x = x.reshape(-1, 3) / 255.0
            s = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
            for q in (1, 10, 50, 90, 99):
                s[f"q{q:02d}"] = np.quantile(x, q / 100, axis=0)
            shape = (3, 1, 1) if key in self._pixels else (-1,)
            out[key] = {k: (v if k == "count" else v.reshape(shape)).tolist() for k, v in s.items()}
        return out


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


_PANDAS_TASKS = {"index_columns": ["__index_level_0__"], "column_indexes": [
    {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
    "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                 "metadata": None},
                {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
                 "metadata": None}],
    "attributes": {}, "creator": {"library": "pyarrow", "version": "26.0.1"}, "pandas_version": "2.2.3"}
