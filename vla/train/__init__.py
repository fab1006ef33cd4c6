"""Training: full fine-tuning or LoRA, one process or torchrun (DDP / FSDP2), resumable checkpoints, merge.

    from vla.train import run
    final_dir = run({"data": {"datasets": [{"path": "outputs/data/sim_pick/1.0.0"}]}, "trainer": {"steps": 300}})

`run` accepts a `vla.train.config.TrainConfig`, a hydra DictConfig or a plain dict (missing keys take the
defaults of `configs/train.yaml`'s schema) and returns `<output_dir>/final`, a standalone checkpoint that
`vla.model.policy.VLAPolicy.from_pretrained` loads. Importing this package is cheap (torch loads on `run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(cfg: Any) -> Path:
    """Train (or resume) the run `cfg` describes; return the final checkpoint directory."""
    from vla.train.loop import run as _run

    return _run(cfg)


__all__ = ["run"]
