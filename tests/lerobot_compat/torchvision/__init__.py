"""A stand-in for the two corners of torchvision that LeRobot 0.4.4's dataset code imports, for the lerobot oracle
venv (.venv-lerobot) only.

Why: `lerobot.datasets` imports torchvision at module level, PyPI's torchvision is a CUDA build that fails to
import next to our CPU torch, and the project never installs it (../shared/facts/libero.md). What LeRobotDataset
uses from it: `transforms.ToTensor()` (PIL frame -> float32 (C, H, W) in [0, 1]) for image features, and
`io.VideoReader` + `set_video_backend("pyav")` for its "pyav" video backend (torchcodec, its default, is a CUDA
build on PyPI and does not load here). Both are reproduced as torchvision implements them, on the same PyAV.
Nothing else is provided, so any other use fails at import instead of running on a fake.
"""

from torchvision import io, transforms  # noqa: F401

__version__ = "0.0.0+vla-lerobot-compat"


def set_video_backend(backend: str) -> None:
    if backend != "pyav":
        raise RuntimeError(f"torchvision video backend {backend!r} is not in the .venv-lerobot stand-in; use 'pyav'")
