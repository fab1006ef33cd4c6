"""Six-channel `pixel_values` exactly as OpenVLA's `PrismaticImageProcessor` makes them, without torchvision.

Pipeline per image (the reference, resize-naive): PIL `.convert("RGB")` -> `resize((S, S), BICUBIC)` (what
torchvision's resize does on a PIL image, antialiased) -> `to_tensor` (/255, float32) -> normalize per tower:
DINOv2 (the released checkpoint's bf16-rounded ImageNet mean/std) then SigLIP (0.5/0.5), stacked on channels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from vla.core.types import ContractError

# openvla-7b's preprocessor_config.json carries the ImageNet statistics rounded to bfloat16 (they were built
# under a bf16 default dtype); the model was trained with these, so they are our defaults.
DINO_MEAN = (0.484375, 0.455078125, 0.40625)
DINO_STD = (0.228515625, 0.2236328125, 0.224609375)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
CONFIG_NAME = "preprocessor_config.json"


class VLAImageProcessor:
    """uint8 (H, W, 3) images -> float32 (6, S, S) tensors (DINOv2 channels first, then SigLIP)."""

    def __init__(
        self,
        image_size: int = 224,
        means: Sequence[Sequence[float]] = (DINO_MEAN, SIGLIP_MEAN),
        stds: Sequence[Sequence[float]] = (DINO_STD, SIGLIP_STD),
    ) -> None:
        self.image_size = int(image_size)
        self.means = [list(map(float, m)) for m in means]
        self.stds = [list(map(float, s)) for s in stds]
        if len(self.means) != 2 or len(self.stds) != 2 or any(len(v) != 3 for v in self.means + self.stds):
            raise ValueError("means/stds need two 3-vectors each (DINOv2 tower, then SigLIP tower)")
        self._mean = [torch.tensor(m, dtype=torch.float32).view(3, 1, 1) for m in self.means]
        self._std = [torch.tensor(s, dtype=torch.float32).view(3, 1, 1) for s in self.stds]

    def __call__(self, image: np.ndarray | Image.Image, name: str = "image") -> torch.Tensor:
        """One image -> (6, S, S)."""
        return self.preprocess([image], names=[name])[0]

    def preprocess(self, images: Sequence[np.ndarray | Image.Image], names: Sequence[str] | None = None) -> torch.Tensor:
        """A batch of images -> (N, 6, S, S): PIL resize per image, then one normalization for the batch
        (element-wise, so each image gets exactly what `__call__` gives it alone)."""
        names = names or [f"images[{i}]" for i in range(len(images))]
        resized = np.stack([self.resize(image, name) for image, name in zip(images, names)])  # (N, S, S, 3)
        return self.normalize(torch.from_numpy(resized))

    def resize(self, image: np.ndarray | Image.Image, name: str = "image") -> np.ndarray:
        """uint8 (S, S, 3): PIL bicubic (antialiased), as torchvision's resize of a PIL image."""
        pil = self.to_pil(image, name)
        size = self.image_size
        resized = pil if pil.size == (size, size) else pil.resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(resized, dtype=np.uint8)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, S, S, 3) -> float32 (N, 6, S, S): torchvision's to_tensor (/255), then each tower's mean/std."""
        x = images.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255)
        out = x.new_empty(x.shape[0], 6, *x.shape[2:])  # written in place: large temporaries cost page faults
        for i, (m, s) in enumerate(zip(self._mean, self._std)):
            torch.sub(x, m, out=out[:, 3 * i : 3 * i + 3]).div_(s)
        return out

    @staticmethod
    def to_pil(image: np.ndarray | Image.Image, name: str = "image") -> Image.Image:
        if isinstance(image, Image.Image):
            return image.convert("RGB")
        if not isinstance(image, np.ndarray):
            raise ContractError(f"{name} must be a uint8 numpy array (H, W, 3) or a PIL image, "
                                f"got {type(image).__name__}")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3 or min(image.shape[:2]) < 1:
            raise ContractError(f"{name} must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}"
                                + ("; convert grayscale/RGBA to RGB first" if image.ndim == 3 and image.shape[-1]
                                   in (1, 4) else ""))
        return Image.fromarray(np.ascontiguousarray(image), mode="RGB")

    def to_dict(self) -> dict:
        return {"image_processor_type": "VLAImageProcessor", "image_size": self.image_size,
                "image_resize_strategy": "resize-naive", "interpolation": "bicubic",
                "means": self.means, "stds": self.stds}

    def save_pretrained(self, path: str | Path) -> None:
        Path(path, CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "VLAImageProcessor":
        d = json.loads(Path(path, CONFIG_NAME).read_text())
        if d.get("image_processor_type") == "PrismaticImageProcessor":  # a released OpenVLA directory
            norm = d["tvf_normalize_params"]
            return cls(d["input_sizes"][0][-1], [n["mean"] for n in norm], [n["std"] for n in norm])
        return cls(d["image_size"], d["means"], d["stds"])
