"""`ToTensor` as torchvision defines it for uint8 images: (H, W, C) -> float32 (C, H, W) / 255."""

import numpy as np
import torch


class ToTensor:
    def __call__(self, pic) -> torch.Tensor:
        arr = np.asarray(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        return t.to(torch.float32).div(255) if t.dtype == torch.uint8 else t.to(torch.float32)
