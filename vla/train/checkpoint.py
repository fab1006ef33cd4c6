"""Atomic, resumable training checkpoints.

Layout of one checkpoint, `<output_dir>/checkpoints/step_000500/`:
    model/               a standalone model directory (`save_pretrained` + processor + statistics), or
    adapter/             the LoRA adapter only (the base is `init_from` in config.yaml)
    trainer_state.pt     step, optimizer and scheduler state (full, unsharded), metrics so far
    rank_00000.pt        per process: RNG states (python, numpy, torch, cuda) and the data-loader position
    config.yaml          the resolved training config
    dataset_statistics.json

Atomicity: everything is written into `.tmp-step_000500`, every file is fsync'ed, then the directory is
renamed into place (a rename within one filesystem is atomic) and the parent fsync'ed. A crash or a full
disk before the rename leaves only a `.tmp-*` directory, which is ignored and removed by the next save;
the previous checkpoints are only pruned (`keep_last`) after the new one is in place.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

logger = logging.getLogger(__name__)

_STEP_RE = re.compile(r"^step_(\d+)$")
TRAINER_STATE = "trainer_state.pt"


class CheckpointError(RuntimeError):
    """Saving or loading a checkpoint failed; the message says which and what survived."""


def checkpoint_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under `root`, oldest first (temporary directories are not checkpoints)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and (p / TRAINER_STATE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1][1] if ckpts else None


def rank_file(rank: int) -> str:
    return f"rank_{rank:05d}.pt"


# ---------------------------------------------------------------- RNG state


def capture_rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- files


def _fsync_tree(path: Path) -> None:
    """Flush every file (and directory entry) under `path` to disk; ENOSPC often surfaces only here."""
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_dir_for(root: Path, name: str) -> Path:
    return Path(root) / f".tmp-{name}"


def begin_save(root: Path, name: str) -> Path:
    """Create an empty temporary directory for checkpoint `name` (rank 0 only), removing a stale one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir_for(root, name)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def write_rank_state(tmp: Path, rank: int, state: dict[str, Any]) -> None:
    """Each process writes its own RNG and data-loader state into the temporary directory."""
    torch.save(state, tmp / rank_file(rank))


def commit_save(root: Path, name: str, write_main: Callable[[Path], None], keep_last: int | None) -> Path:
    """Rank 0: write the shared files via `write_main(tmp)`, flush, rename into place, prune old ones.

    On any OSError (full disk, permissions) the temporary directory is removed and `CheckpointError`
    names the checkpoint that is still intact.
    """
    root = Path(root)
    tmp = tmp_dir_for(root, name)
    final = root / name
    try:
        write_main(tmp)
        _fsync_tree(tmp)
        if final.exists():  # re-saving the same step (a resumed run) replaces the old copy
            old = root / f".old-{name}"
            if old.exists():
                shutil.rmtree(old)
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(root)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        prev = latest_checkpoint(root)
        survived = f"the previous checkpoint {prev} is intact" if prev else "there is no earlier checkpoint"
        raise CheckpointError(f"saving checkpoint {name} into {root} failed: {e}; {survived}. Free disk space "
                              "(or lower trainer.keep_last) and restart: the run resumes from the last checkpoint") from e
    if keep_last is not None:
        for _, path in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(path, ignore_errors=True)
    logger.info("saved checkpoint %s", final)
    return final


def abort_save(root: Path, name: str) -> None:
    shutil.rmtree(tmp_dir_for(root, name), ignore_errors=True)


def load_trainer_state(ckpt: Path) -> dict[str, Any]:
    path = Path(ckpt) / TRAINER_STATE
    if not path.is_file():
        raise CheckpointError(f"{ckpt} is not a training checkpoint: {TRAINER_STATE} is missing")
    # Our own file: optimizer/scheduler state and python objects (weights_only would reject them).
    return torch.load(path, map_location="cpu", weights_only=False)


def load_rank_state(ckpt: Path, rank: int, world_size: int) -> dict[str, Any]:
    path = Path(ckpt) / rank_file(rank)
    if not path.is_file():
        have = sorted(p.name for p in Path(ckpt).glob("rank_*.pt"))
        raise CheckpointError(
            f"{ckpt} has no state for process {rank} (has {have}); resume with the same number of processes "
            f"it was saved with ({len(have)}), not {world_size}"
        )
    return torch.load(path, map_location="cpu", weights_only=False)
