"""Image augmentation of OpenVLA's fine-tuning, and the matching test-time center crop, as one compiled pass per frame.

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

Speed: crop, resize and the four colour ops run fused in one numba-compiled loop over the pixels
(`_crop_pixels`), from uint8 to uint8, ~1 ms for a 224x224 frame on one core (whole-image numpy/torch ops
were ~2.5x slower: ~15 passes over float planes); tests/test_loader_augmentation.py checks it against the
TensorFlow ops (+-1 grey level on < 1% of pixels).
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


def _crop_pixels(img, y0, y1, fy, x0, x1, fx, color, brightness, contrast, saturation, hue, out):  # pragma: no cover
    """The fused per-pixel pass (compiled by numba, see `_kernel`): bilinear crop-and-resize of uint8 (H, W, 3)
    `img` at the given sampling positions, then (color=True) brightness, contrast, saturation and hue with a
    clip after each, written to uint8 `out` as floor(x * 255.5). Float32 throughout, as TF's ops.

    Rows are first interpolated vertically as flat (W * 3) vectors (SIMD-friendly), then horizontally; the
    colour ops run on planar float rows. Hue/saturation: hexcone HSV as TF's `adjust_hue`/`adjust_saturation`
    (hue in sectors [0, 6); new chroma min(chroma * saturation, value); each channel is
    value - chroma' * clip(2 - |((hue + n) mod 6) - 2|, 0, 1) with n = 5, 3, 1 for r, g, b)."""
    h_out, w_out = out.shape[0], out.shape[1]
    w_in = img.shape[1]
    zero, one, two, four, six = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(4.0), np.float32(6.0)
    inv, scale = np.float32(1.0 / 255.0), np.float32(255.5)
    row = np.empty(w_in * 3, np.float32)
    planes = np.empty((3, h_out, w_out), np.float32)
    sums = np.zeros(3, np.float64)
    for i in range(h_out):
        ra = img[y0[i]].reshape(-1)
        rb = img[y1[i]].reshape(-1)
        wy = fy[i]
        for k in range(w_in * 3):
            top = np.float32(ra[k]) * inv
            row[k] = top + (np.float32(rb[k]) * inv - top) * wy
        for ch in range(3):
            s = 0.0
            for j in range(w_out):
                left = row[x0[j] * 3 + ch]
                v = min(max(left + (row[x1[j] * 3 + ch] - left) * fx[j], zero), one)
                if color:
                    v = min(max(v + brightness, zero), one)
                planes[ch, i, j] = v
                s += v
            sums[ch] += s
    if not color:
        for i in range(h_out):
            for j in range(w_out):
                for ch in range(3):
                    out[i, j, ch] = np.uint8(np.int32(planes[ch, i, j] * scale))
        return
    n = h_out * w_out
    m0, m1, m2 = np.float32(sums[0] / n), np.float32(sums[1] / n), np.float32(sums[2] / n)  # contrast: channel means
    shift = six * hue
    rgb = np.empty((3, w_out), np.float32)
    o0, o1, o2 = rgb[0], rgb[1], rgb[2]
    for i in range(h_out):
        p0, p1, p2 = planes[0, i], planes[1, i], planes[2, i]
        for j in range(w_out):  # branch-free (selects as products with 0/1) so that LLVM vectorizes it
            r = min(max((p0[j] - m0) * contrast + m0, zero), one)
            g = min(max((p1[j] - m1) * contrast + m1, zero), one)
            b = min(max((p2[j] - m2) * contrast + m2, zero), one)
            v = max(r, max(g, b))
            c = v - min(r, min(g, b))
            num = (r - g) + four * c  # hue * chroma: blue is the max
            num += np.float32(v == g) * ((b - r) + two * c - num)  # green
            num += np.float32(v == r) * ((g - b) - num)  # red
            h = num / (c + np.float32(c == zero)) + shift  # grey pixels: hue 0
            h += six * np.float32(h < zero)
            h -= six * np.float32(h >= six)
            c = min(c * saturation, v)
            k = h + np.float32(3.0)
            k -= six * np.float32(k >= four)
            o0[j] = min(max(v - c * min(max(two - abs(k), zero), one), zero), one)
            k = h + one
            k -= six * np.float32(k >= four)
            o1[j] = min(max(v - c * min(max(two - abs(k), zero), one), zero), one)
            k = h - one
            k -= six * np.float32(k >= four)
            o2[j] = min(max(v - c * min(max(two - abs(k), zero), one), zero), one)
        dst = out[i]
        for j in range(w_out):
            dst[j, 0] = np.uint8(np.int32(o0[j] * scale))
            dst[j, 1] = np.uint8(np.int32(o1[j] * scale))
            dst[j, 2] = np.uint8(np.int32(o2[j] * scale))


@functools.lru_cache(maxsize=1)
def _kernel():
    """`_crop_pixels` compiled (numba, cached on disk next to this file: ~5 s the first time, then ~0.2 s)."""
    import numba

    # error_model="numpy": a division by zero gives inf instead of a Python exception check, whose branch would
    # keep LLVM from vectorizing the loops (2.5x slower); no division here can be by zero
    return numba.njit(cache=True, nogil=True, error_model="numpy")(_crop_pixels)


def _crop_and_color(img: np.ndarray, box: tuple[float, float, float, float], out: np.ndarray | None,
                    p: AugmentationParams | None) -> np.ndarray:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if out is None:
        out = np.empty((h, w, 3), np.uint8)
    y0, y1, fy = _crop_axis(box[0], box[2], h, out.shape[0])
    x0, x1, fx = _crop_axis(box[1], box[3], w, out.shape[1])
    f = np.float32
    color = (f(p.brightness), f(p.contrast), f(p.saturation), f(p.hue)) if p is not None else (f(0), f(1), f(1), f(0))
    _kernel()(np.ascontiguousarray(img), y0, y1, fy, x0, x1, fx, p is not None, *color, out)
    return out


def augment(img: np.ndarray, p: AugmentationParams, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 3) -> augmented uint8 (H, W, 3) (same size, written to `out` if given), OpenVLA's op order
    and clipping, in one compiled pass (no float image round trips; ~4x less CPU than whole-image numpy ops)."""
    return _crop_and_color(img, p.box, out, p)


def center_crop(img: np.ndarray, scale: float = 0.9, out: np.ndarray | None = None) -> np.ndarray:
    """Test-time counterpart of the random crop: the central `scale` of the area, resized back (uint8 in, out)."""
    if scale >= 1.0:
        if out is None:
            return img
        out[...] = img
        return out
    side = math.sqrt(scale)
    lo = (1.0 - side) / 2.0
    return _crop_and_color(img, (lo, lo, lo + side, lo + side), out, None)


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


def compile_kernel() -> None:
    """Compile (or load from numba's on-disk cache) the fused pass now: a process that forks loader workers
    calls this first so that every worker inherits the compiled code instead of loading it again."""
    img = np.zeros((4, 4, 3), np.uint8)
    augment(img, AugmentationParams(box=(0.0, 0.0, 1.0, 1.0), brightness=0.0, contrast=1.0, saturation=1.0, hue=0.0))
