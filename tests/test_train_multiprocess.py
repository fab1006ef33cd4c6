"""vla-train as users run it, in real processes: SIGKILL + restart resumes bit-exactly; torchrun with 2 CPU
ranks (gloo; DDP and FSDP2) matches one process with the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_train import SMALL, write_dataset

pytestmark = pytest.mark.slow
STEPS = 8


def _dotlist(prefix: str, d: dict) -> list[str]:
    out = []
    for k, v in d.items():
        out += _dotlist(f"{prefix}.{k}", v) if isinstance(v, dict) else [f"{prefix}.{k}={v}"]
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rlds_mp")
    return {"dir": write_dataset(root, "robot_mp"), "cache": root / "stats_cache"}


def _args(dataset: dict, out: Path, *extra: str) -> list[str]:
    return [
        f"output_dir={out}", f"data.datasets=[{{path: {dataset['dir']}}}]", f"data.statistics_cache={dataset['cache']}",
        "data.num_workers=0", "data.shuffle_buffer=40", "data.chunk_size=4", "data.image_augmentation=true",
        f"trainer.steps={STEPS}", "trainer.batch_size=4", "trainer.save_every=2", "trainer.val_every=0",
        "trainer.log_every=1", "trainer.progress=false", "trainer.num_threads=1", "trainer.lr=2e-3",
        *_dotlist("model", SMALL), *extra,
    ]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}


def _train(dataset: dict, out: Path, *extra: str, nproc: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "vla.cli.train"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "vla.cli.train"]
    r = subprocess.run(launcher + _args(dataset, out, *extra), capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _weights(final: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(final / "model.safetensors"))


def _losses(out: Path) -> list[float]:
    return [h["loss"] for h in json.loads((out / "history.json").read_text()) if "loss" in h]


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    _train(dataset, out)
    return out


def test_sigkill_and_restart_ends_with_the_same_weights(dataset, reference, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "vla.cli.train"] + _args(dataset, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env())
    marker = out / "checkpoints" / "step_000004" / "trainer_state.pt"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (out / "final").exists(), "the run finished before the kill; the test proves nothing"

    r = _train(dataset, out)  # the same command again
    assert "resumed from" in r.stdout + r.stderr
    want, got = _weights(reference / "final"), _weights(out / "final")
    assert want.keys() == got.keys()
    different = [k for k in want if not torch.equal(want[k], got[k])]
    assert not different, f"{len(different)} tensors differ after resume, e.g. {different[:3]}"
    assert _losses(out)[-1] == _losses(reference)[-1]


@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_two_cpu_ranks_match_one_process(dataset, reference, tmp_path, parallelism):
    out = tmp_path / parallelism
    r = _train(dataset, out, f"trainer.parallelism={parallelism}", nproc=2)
    assert "2 process(es)" in r.stdout + r.stderr
    torch.testing.assert_close(_losses(out), _losses(reference), rtol=1e-4, atol=1e-5)
    want, got = _weights(reference / "final"), _weights(out / "final")
    assert want.keys() == got.keys()
    for k in want:  # same math, different reduction order: float round-off only
        torch.testing.assert_close(got[k], want[k], rtol=1e-3, atol=2e-4, msg=lambda m, k=k: f"{k}: {m}")
