"""A TensorBoard `SummaryWriter` that never loads TensorFlow.

`torch.utils.tensorboard` writes event files through `tensorboard.compat.tf()`, which imports the real
TensorFlow whenever it is installed (it is here, for TFDS). Loading TF costs ~5 s and ~500 MB, and MuJoCo's
software renderer (llvmpipe) segfaults in any process that has loaded it. TensorBoard ships a stub for
exactly this case and uses it when the marker module `tensorboard.compat.notf` is importable (see
tensorboard/compat/__init__.py, `tf()`); we register that marker before the writer is imported.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


def summary_writer(log_dir: str | Path):
    """`torch.utils.tensorboard.SummaryWriter(log_dir)` backed by TensorBoard's TF stub."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))
