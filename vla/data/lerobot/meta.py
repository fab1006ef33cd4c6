"""The layout of a local LeRobot dataset (format v2.0, v2.1 and v3.0): info, episodes, tasks, file paths.

v3.0 (LeRobot >= 0.4): episodes are rows of `meta/episodes/chunk-*/file-*.parquet` (length, tasks, which data
file holds the episode's frames, and per video feature the file and [from_timestamp, to_timestamp) of its
segment); many episodes share one data file and one mp4 per camera. Tasks are the index of `meta/tasks.parquet`.
v2.0 / v2.1: `meta/episodes.jsonl` and `meta/tasks.jsonl`; one parquet and one mp4 per camera per episode.
Either way frames are rows of the data parquet (`episode_index`, `frame_index`, `timestamp`, `task_index`, the
float features) and a camera is a `video` feature (mp4) or an `image` feature (PNG bytes in the parquet).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
INFO = "meta/info.json"


class LeRobotFormatError(ValueError):
    """A LeRobot dataset directory that cannot be read as one: names the file and the fix."""


@dataclass
class EpisodeInfo:
    """Where one episode's frames are."""

    index: int  # episode_index
    length: int
    tasks: list[str]
    data_file: Path
    videos: dict[str, tuple[Path, float]] = field(default_factory=dict)  # feature -> (mp4, from_timestamp)


def is_lerobot_dir(path: str | Path) -> bool:
    """Whether `path` looks like a LeRobot dataset (has meta/info.json and no TFDS dataset_info.json)."""
    p = Path(path).expanduser()
    return (p / INFO).is_file() and not (p / "dataset_info.json").is_file()


class LeRobotMeta:
    """Metadata of a LeRobot dataset directory; `episodes` in episode-index order."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        info_path = self.root / INFO
        if not info_path.is_file():
            hint = (" It is a TFDS/RLDS dataset (dataset_info.json): drop `format: lerobot`."
                    if (self.root / "dataset_info.json").is_file() else
                    " Give the dataset's root (the folder holding meta/, data/ and videos/), e.g. "
                    "~/.cache/huggingface/lerobot/<user>/<name>; a Hub dataset must be downloaded first "
                    "(`hf download <user>/<name> --repo-type dataset --local-dir <dir>`).")
            raise LeRobotFormatError(f"{info_path} does not exist: {self.root} is not a LeRobot dataset.{hint}")
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text())
        except json.JSONDecodeError as e:
            raise LeRobotFormatError(f"{info_path} is not valid JSON ({e}); re-download the dataset's meta/ folder") from e
        self.version = str(self.info.get("codebase_version", ""))
        if self.version not in SUPPORTED_VERSIONS:
            raise LeRobotFormatError(
                f"{info_path}: codebase_version {self.version!r} is not one we read ({', '.join(SUPPORTED_VERSIONS)}). "
                + ("Convert it with LeRobot's own script first: python -m lerobot.datasets.v21.convert_dataset_v20_to_v21 "
                   "or lerobot.datasets.v30.convert_dataset_v21_to_v30 (LeRobot 0.4)."
                   if self.version.startswith("v1") else
                   "It may come from a newer LeRobot: convert it to v3.0 with that LeRobot, or file an issue with info.json.")
            )
        for key in ("fps", "features", "data_path"):
            if key not in self.info:
                raise LeRobotFormatError(f"{info_path} has no {key!r}: not a complete LeRobot {self.version} info.json")
        self.fps = float(self.info["fps"])
        self.features: dict[str, dict] = self.info["features"]
        self.tasks = self._read_tasks()
        self.episodes = self._read_episodes()

    @property
    def is_v3(self) -> bool:
        return self.version == "v3.0"

    def camera_features(self) -> list[str]:
        """Image and video features, in info.json order."""
        return [k for k, f in self.features.items() if f.get("dtype") in ("image", "video")]

    def video_features(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") == "video"]

    def require(self, key: str, what: str, option: str) -> dict:
        """The feature `key`, or an error naming the features there are and the option to set."""
        if key not in self.features:
            raise LeRobotFormatError(
                f"{self.root / INFO}: no feature {key!r} ({what}); its features: {sorted(self.features)}. "
                f"Set {option} to one of them."
            )
        return self.features[key]

    # ------------------------------------------------------------------------------------------ tasks
    def _read_tasks(self) -> dict[int, str]:
        if self.is_v3:
            import pyarrow.parquet as pq

            path = self._meta_file("meta/tasks.parquet")
            table = pq.read_table(path)
            names = [c for c in table.column_names if c != "task_index"]
            if "task_index" not in table.column_names or not names:
                raise LeRobotFormatError(f"{path} has no task_index and task columns (it has {table.column_names})")
            col = "task" if "task" in names else names[0]  # pandas writes the index (the task) as __index_level_0__
            return {int(i): str(t) for i, t in zip(table.column("task_index").to_pylist(), table.column(col).to_pylist())}
        return {int(r["task_index"]): str(r["task"]) for r in self._jsonl("meta/tasks.jsonl")}

    # --------------------------------------------------------------------------------------- episodes
    def _read_episodes(self) -> list[EpisodeInfo]:
        out = self._episodes_v3() if self.is_v3 else self._episodes_v2()
        if not out:
            raise LeRobotFormatError(f"{self.root}: the metadata lists no episodes")
        return sorted(out, key=lambda e: e.index)

    def _episodes_v3(self) -> list[EpisodeInfo]:
        import pyarrow.parquet as pq

        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise LeRobotFormatError(
                f"{self.root / 'meta/episodes'} holds no chunk-*/file-*.parquet: the v3.0 episode index is missing; "
                "re-download the dataset's meta/ folder (LeRobotDataset.finalize() writes it when recording)"
            )
        videos = self.video_features()
        out = []
        for f in files:
            cols = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index"] + [
                f"videos/{v}/{c}" for v in videos for c in ("chunk_index", "file_index", "from_timestamp")]
            try:
                rows = pq.read_table(f, columns=cols).to_pylist()
            except Exception as e:  # pyarrow raises several types for a missing column or a bad file
                raise LeRobotFormatError(f"{f}: cannot read the episode index ({e}); re-download meta/episodes") from e
            for r in rows:
                data = self.root / self.info["data_path"].format(
                    chunk_index=r["data/chunk_index"], file_index=r["data/file_index"])
                vids = {v: (self.root / self.info["video_path"].format(
                    video_key=v, chunk_index=r[f"videos/{v}/chunk_index"], file_index=r[f"videos/{v}/file_index"]),
                    float(r[f"videos/{v}/from_timestamp"])) for v in videos}
                out.append(EpisodeInfo(int(r["episode_index"]), int(r["length"]), list(r["tasks"] or []), data, vids))
        return out

    def _episodes_v2(self) -> list[EpisodeInfo]:
        chunks = int(self.info.get("chunks_size", 1000))
        out = []
        for r in self._jsonl("meta/episodes.jsonl"):
            ep = int(r["episode_index"])
            fmt = {"episode_chunk": ep // chunks, "episode_index": ep}
            data = self.root / self.info["data_path"].format(**fmt)
            vids = {v: (self.root / self.info["video_path"].format(video_key=v, **fmt), 0.0)
                    for v in self.video_features()}
            out.append(EpisodeInfo(ep, int(r["length"]), list(r.get("tasks", [])), data, vids))
        return out

    def _meta_file(self, rel: str) -> Path:
        path = self.root / rel
        if not path.is_file():
            raise LeRobotFormatError(f"{path} does not exist (LeRobot {self.version} keeps it there); "
                                     "re-download the dataset's meta/ folder")
        return path

    def _jsonl(self, rel: str) -> list[dict]:
        path = self._meta_file(rel)
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise LeRobotFormatError(f"{path}:{n} is not valid JSON ({e})") from e
        return rows
