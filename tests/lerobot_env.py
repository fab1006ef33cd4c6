"""Where the tests find LeRobot (the oracle of vla.data.lerobot) and how they run it; shared test data.

`make lerobot-venv` (part of `make test`) installs LeRobot 0.4.4 into `.venv-lerobot`, layered on `.venv`. The
oracle tests run LeRobot's own `LeRobotDataset` there in a subprocess, with `tests/lerobot_compat` on the path (the
torchvision stand-in, see its docstring), the Hub off and Hugging Face caches in a temp dir. They skip, with the
reason, only where the venv could not be installed (or nobody installed it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
LEROBOT_VENV = REPO_ROOT / ".venv-lerobot"
LEROBOT_PY = LEROBOT_VENV / "bin" / "python"
COMPAT = REPO_ROOT / "tests" / "lerobot_compat"


def unavailable_reason() -> str:
    """"" when LeRobot can be run, else why not and what to do."""
    failed = LEROBOT_VENV / "INSTALL_FAILED"
    if failed.is_file():
        return "LeRobot could not be installed: " + " ".join(failed.read_text().split())[:600]
    if not (LEROBOT_VENV / ".installed.stamp").is_file():
        return f"no LeRobot oracle venv at {LEROBOT_VENV}: `make lerobot-venv` installs it (make test does)"
    return ""


def lerobot_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(COMPAT), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf_home"),
                "HF_DATASETS_CACHE": str(tmp / "hf_datasets"), "TOKENIZERS_PARALLELISM": "false"})
    return env


def run_lerobot(script: str, *args: str, tmp: Path, timeout: float = 600) -> str:
    """Run `script` (Python source) with LeRobot's interpreter; returns stdout, raises with stderr's tail."""
    path = tmp / "lerobot_script.py"
    path.write_text(script)
    r = subprocess.run([str(LEROBOT_PY), str(path), *args], capture_output=True, text=True, env=lerobot_env(tmp),
                       timeout=timeout, cwd=tmp)
    if r.returncode != 0:
        raise AssertionError(f"LeRobot script failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r.stdout


def smooth_frames(episode: int, length: int, h: int, w: int, camera: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3) gradients that move with the frame and differ per episode and camera: a lossy codec keeps
    them close, and a frame from the wrong time or episode is far off."""
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    out = np.empty((length, h, w, 3), np.uint8)
    for t in range(length):
        phase = 0.35 * t + 1.3 * episode + 2.1 * camera
        out[t, ..., 0] = 128 + 100 * np.sin(xx / w * 3.0 + phase)
        out[t, ..., 1] = 128 + 100 * np.cos(yy / h * 2.5 - phase)
        out[t, ..., 2] = (40 * episode + 17 * t + 60 * camera) % 200 + 20
    return out


def _stats(x: np.ndarray, image: bool = False) -> dict:
    """LeRobot's per-episode stats of one feature (images: per channel in [0, 1], shaped (3, 1, 1))."""
    x = np.asarray(x, np.float64)
    x = x.reshape(-1, 3) / 255.0 if image else x.reshape(len(x), -1)
    shape = (3, 1, 1) if image else (-1,)
    return {"min": x.min(0).reshape(shape).tolist(), "max": x.max(0).reshape(shape).tolist(),
            "mean": x.mean(0).reshape(shape).tolist(), "std": x.std(0).reshape(shape).tolist(), "count": [len(x)]}


def write_v21(root: Path, episodes: list, fps: float) -> None:
    """`Episode`s (cameras `primary`, `wrist`) in the v2.1 layout, as LeRobot 0.2-0.3 wrote it: one parquet and one
    H.264 mp4 per camera per episode, meta/{info.json, episodes.jsonl, episodes_stats.jsonl, tasks.jsonl}."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from vla.data.lerobot.video import VideoEncoder

    tasks = sorted({e.instruction for e in episodes})
    h, w = episodes[0].images["primary"].shape[1:3]
    p = episodes[0].state.shape[1]
    (root / "meta").mkdir(parents=True)
    (root / "data/chunk-000").mkdir(parents=True)
    start, eps, stats = 0, [], []
    for i, ep in enumerate(episodes):
        t = len(ep.action)
        cols = {"observation.state": ep.state, "action": ep.action, "timestamp": (np.arange(t) / fps).astype(np.float32),
                "frame_index": np.arange(t), "episode_index": np.full(t, i), "index": np.arange(start, start + t),
                "task_index": np.full(t, tasks.index(ep.instruction))}
        pq.write_table(pa.table({k: pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1]) if v.ndim == 2
                                 else pa.array(v) for k, v in cols.items()}), root / f"data/chunk-000/episode_{i:06d}.parquet")
        ep_stats = {k: _stats(v) for k, v in cols.items()}
        for cam in ("primary", "wrist"):
            enc = VideoEncoder(root / f"videos/chunk-000/observation.images.{cam}/episode_{i:06d}.mp4", fps, (h, w),
                               codec="h264")
            enc.add(ep.images[cam])
            enc.close()
            ep_stats[f"observation.images.{cam}"] = _stats(ep.images[cam], image=True)
        eps.append({"episode_index": i, "tasks": [ep.instruction], "length": t})
        stats.append({"episode_index": i, "stats": ep_stats})
        start += t
    for name, rows in (("episodes", eps), ("episodes_stats", stats),
                       ("tasks", [{"task_index": i, "task": t} for i, t in enumerate(tasks)])):
        (root / f"meta/{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    video = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
             "info": {"video.fps": fps, "video.codec": "h264", "video.pix_fmt": "yuv420p", "has_audio": False}}
    feats = {"observation.images.primary": video, "observation.images.wrist": video,
             "observation.state": {"dtype": "float32", "shape": [p], "names": None},
             "action": {"dtype": "float32", "shape": [7], "names": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]},
             **{k: {"dtype": d, "shape": [1], "names": None} for k, d in (
                 ("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                 ("task_index", "int64"))}}
    (root / "meta/info.json").write_text(json.dumps({
        "codebase_version": "v2.1", "robot_type": "panda", "total_episodes": len(episodes), "total_frames": start,
        "total_tasks": len(tasks), "total_videos": 2 * len(episodes), "total_chunks": 1, "chunks_size": 1000,
        "fps": fps, "splits": {"train": f"0:{len(episodes)}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4", "features": feats},
        indent=4))
