"""Image augmentation of OpenVLA's fine-tuning, and the matching test-time center crop, in numpy.

The reference (OpenVLA `finetune.py` -> dlimp `augment_image`, order as listed) on float images in [0, 1]:
    random_resized_crop  scale [0.9, 0.9], ratio [1, 1]: a square crop of 90% of the area, resized back
                         (bilinear, `tf.image.crop_and_resize` sampling)
    random_brightness    +delta, delta ~ U[-0.2, 0.2]
    random_contrast      (x - mean_c) * f + mean_c, f ~ U[0.8, 1.2]  (per-channel image mean)
    random_saturation    HSV saturation * f, f ~ U[0.8, 1.2], clipped to [0, 1]
    random_hue           HSV hue + delta, delta ~ U[-0.05, 0.05] (wrapping)
with a clip to [0, 1] after every op, then back to uint8 as `tf.image.convert_image_dtype` does
(floor(x * 255.5)). dlimp draws the crop's height and width offsets from the same seeded uniform, so with a
square crop the crop slides along the image diagonal; we keep that (`diagonal_crop=True`, the reference)
and allow independent offsets (`diagonal_crop=False`).

At test time, a policy trained with this augmentation sees the expected crop: `center_crop(img, 0.9)`
(OpenVLA's eval scripts crop the central 90% of the area and resize back).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


@dataclass
class AugmentationConfig:
    """Ranges of the random image augmentation (defaults: OpenVLA fine-tuning)."""

    crop_scale: float = 0.9  # area fraction of the random crop (0 or 1 disables the crop)
    crop_ratio: float = 1.0  # aspect ratio of the crop (w / h)
    diagonal_crop: bool = True  # reference quirk: one uniform draw for both crop offsets
    brightness: float = 0.2
    contrast: tuple[float, float] = (0.8, 1.2)
    saturation: tuple[float, float] = (0.8, 1.2)
    hue: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_scale <= 1.0:
            raise ValueError(f"crop_scale must be in (0, 1], got {self.crop_scale}")
        for name in ("contrast", "saturation"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a range (lo, hi) with 0 <= lo <= hi, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")


@dataclass
class AugmentationParams:
    """One draw of the random augmentation (the same draw applies to every frame of a window)."""

    box: tuple[float, float, float, float]  # y1, x1, y2, x2 in [0, 1]
    brightness: float
    contrast: float
    saturation: float
    hue: float


def sample_params(rng: np.random.Generator, cfg: AugmentationConfig) -> AugmentationParams:
    h = min(1.0, math.sqrt(cfg.crop_scale / cfg.crop_ratio))
    w = min(1.0, math.sqrt(cfg.crop_scale * cfg.crop_ratio))
    u = rng.random()
    v = u if cfg.diagonal_crop else rng.random()
    y1, x1 = u * (1.0 - h), v * (1.0 - w)
    return AugmentationParams(
        box=(y1, x1, y1 + h, x1 + w),
        brightness=float(rng.uniform(-cfg.brightness, cfg.brightness)),
        contrast=float(rng.uniform(*cfg.contrast)),
        saturation=float(rng.uniform(*cfg.saturation)),
        hue=float(rng.uniform(-cfg.hue, cfg.hue)),
    )


def _crop_axis(lo: float, hi: float, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`tf.image.crop_and_resize` bilinear sampling positions along one axis: indices and weights."""
    if n_out > 1:
        pos = lo * (n_in - 1) + np.arange(n_out) * (hi - lo) * (n_in - 1) / (n_out - 1)
    else:
        pos = np.array([0.5 * (lo + hi) * (n_in - 1)])
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = (pos - i0).astype(np.float32)
    return i0, i1, frac


def crop_and_resize(x: np.ndarray, box: tuple[float, float, float, float], out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear crop of `box` (y1, x1, y2, x2, normalized) from planar float (C, H, W), resized to `out_hw`.

    `tf.image.crop_and_resize` sampling (output pixel i -> y1 * (H - 1) + i * (y2 - y1) * (H - 1) / (H' - 1)),
    computed with torch's `grid_sample` (align_corners=True maps -1/+1 to the first/last pixel centre), which
    is about twice as fast as the numpy gathers here."""
    import torch
    import torch.nn.functional as F

    h, w = x.shape[1:]
    y0, _, fy = _crop_axis(box[0], box[2], h, out_hw[0])
    x0, _, fx = _crop_axis(box[1], box[3], w, out_hw[1])
    grid = np.empty((1, out_hw[0], out_hw[1], 2), np.float32)
    grid[..., 0] = ((x0 + fx) * (2.0 / max(w - 1, 1)) - 1.0)[None, :]
    grid[..., 1] = ((y0 + fy) * (2.0 / max(h - 1, 1)) - 1.0)[:, None]
    out = F.grid_sample(torch.from_numpy(x)[None], torch.from_numpy(grid), mode="bilinear", align_corners=True)
    return out[0].numpy()


def adjust_saturation_hue(x: np.ndarray, saturation: float, hue: float) -> np.ndarray:
    """HSV saturation scale (clipped to [0, 1]) then hue shift of planar float RGB (3, H, W) in [0, 1].

    Same math as TF's `adjust_saturation` / `adjust_hue` (hexcone HSV), written as few whole-plane numpy
    passes (no masked assignments, which are ~50x slower) so that a 224x224 frame takes about a millisecond:
    the new chroma is min(chroma * saturation, value); each output channel is
    value - chroma' * clip(2 - |((h + n) mod 6) - 2|, 0, 1) with n = 5, 3, 1 for r, g, b.
    """
    f = np.float32
    r, g, b = x
    v = np.fmax(r, g)
    np.fmax(v, b, out=v)
    c = np.fmin(r, g)
    np.fmin(c, b, out=c)
    np.subtract(v, c, out=c)  # chroma
    is_r = v == r
    is_g = v == g
    h = np.where(is_r, g - b, np.where(is_g, (b - r) + 2 * c, (r - g) + 4 * c))  # hue * chroma, in sectors
    h /= c + (c == 0)  # grey pixels: numerator 0 -> hue 0
    h += f(6.0 * hue)  # shift and wrap to [0, 6)
    h += (h < 0) * f(6.0)
    h -= (h >= 6) * f(6.0)
    c *= f(saturation)
    np.fmin(c, v, out=c)  # new chroma: clip(s * saturation, 0, 1) * v
    out = np.empty_like(x)
    k = np.empty_like(h)
    for ch, n in ((0, 3.0), (1, 1.0), (2, -1.0)):  # (5, 3, 1) - 2
        np.add(h, f(n), out=k)
        k -= (k >= 4) * f(6.0)  # ((h + n) mod 6) - 2
        np.abs(k, out=k)
        np.subtract(f(2.0), k, out=k)
        np.clip(k, 0.0, 1.0, out=k)
        k *= c
        np.subtract(v, k, out=out[ch])
    return out


def _to_planar_float(img: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)  # contiguous planes: fast ops
    x *= np.float32(1.0 / 255.0)
    return x


def _to_uint8_hwc(x: np.ndarray) -> np.ndarray:
    """Planar float [0, 1] -> uint8 (H, W, C) like `tf.image.convert_image_dtype`: floor(x * 255.5)."""
    out = np.empty(x.shape[1:] + x.shape[:1], np.float32)
    np.multiply(x, np.float32(255.5), out=out.transpose(2, 0, 1))  # writes (H, W, C) order directly
    return out.astype(np.uint8)


def augment(img: np.ndarray, p: AugmentationParams) -> np.ndarray:
    """uint8 (H, W, 3) -> augmented uint8 (H, W, 3) (same size), OpenVLA's op order and clipping."""
    x = crop_and_resize(_to_planar_float(img), p.box, img.shape[:2])  # convex weights: stays in [0, 1]
    x += np.float32(p.brightness)
    np.clip(x, 0.0, 1.0, out=x)
    mean = x.reshape(x.shape[0], -1).mean(1, dtype=np.float32)[:, None, None]
    x *= np.float32(p.contrast)  # (x - mean) * c + mean
    x += mean * np.float32(1.0 - p.contrast)
    np.clip(x, 0.0, 1.0, out=x)
    x = adjust_saturation_hue(x, p.saturation, p.hue)
    np.clip(x, 0.0, 1.0, out=x)
    return _to_uint8_hwc(x)


def center_crop(img: np.ndarray, scale: float = 0.9) -> np.ndarray:
    """Test-time counterpart of the random crop: the central `scale` of the area, resized back (uint8 in, out)."""
    if scale >= 1.0:
        return img
    side = math.sqrt(scale)
    lo = (1.0 - side) / 2.0
    x = crop_and_resize(_to_planar_float(img), (lo, lo, lo + side, lo + side), img.shape[:2])
    np.clip(x, 0.0, 1.0, out=x)
    return _to_uint8_hwc(x)


def _lanczos3(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    out = np.sinc(x) * np.sinc(x / 3.0)
    return np.where(x < 3.0, out, 0.0)


def _resize_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights (n_out, taps) of TF's `scale_and_translate` with lanczos3 + antialias."""
    scale = n_out / n_in
    kernel_scale = max(1.0 / scale, 1.0)  # antialias: widen the kernel when shrinking
    radius = 3.0 * kernel_scale
    centers = (np.arange(n_out) + 0.5) / scale
    taps = int(np.ceil(2 * radius)) + 1
    first = np.floor(centers - radius + 0.5).astype(np.int64)
    idx = first[:, None] + np.arange(taps)[None]
    w = _lanczos3((idx + 0.5 - centers[:, None]) / kernel_scale)
    valid = (idx >= 0) & (idx < n_in)
    w = np.where(valid, w, 0.0)
    w /= w.sum(1, keepdims=True)
    return np.clip(idx, 0, n_in - 1), w.astype(np.float32)


@functools.lru_cache(maxsize=32)
def _resize_matrix(n_in: int, n_out: int) -> "torch.Tensor":
    """Dense (n_out, n_in) lanczos3 weights; a matrix product applies them (faster than gathering taps)."""
    import torch

    idx, w = _resize_taps(n_in, n_out)
    mat = np.zeros((n_out, n_in), np.float32)
    np.add.at(mat, (np.repeat(np.arange(n_out), idx.shape[1]), idx.reshape(-1)), w.reshape(-1))
    return torch.from_numpy(mat)


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (size, C) as the reference's `dlimp.transforms.resize_image`
    (`tf.image.resize(method="lanczos3", antialias=True)`, rounded and clipped). A no-op at the same size."""
    import torch

    h, w = img.shape[:2]
    if (h, w) == tuple(size):
        return img
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()  # (C, H, W)
    y = torch.matmul(torch.matmul(_resize_matrix(h, size[0]), x), _resize_matrix(w, size[1]).T)  # (C, H', W')
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
