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
