"""Image helpers for the reports: grids, error maps, PNG/GIF/SVG as inline data (no files, no network)."""

from __future__ import annotations

import base64
import io

import numpy as np


def png_b64(img: np.ndarray) -> str:
    """uint8 (H, W, 3) -> 'data:image/png;base64,...'."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def gif_b64(frames: np.ndarray, fps: float = 6.0) -> str:
    """uint8 (T, H, W, 3) -> looping animated GIF as a data URI."""
    from PIL import Image

    imgs = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode()


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    return img.repeat(factor, 0).repeat(factor, 1) if factor > 1 else img


def error_map(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-pixel absolute error as a heat image (black = 0, yellow = large), uint8 (H, W, 3)."""
    e = np.abs(pred.astype(np.float32) - true.astype(np.float32)).mean(-1) / 255.0
    e = np.clip(e * 3.0, 0, 1)
    return (np.stack([e, e**2 * 0.9, e**4 * 0.2], -1) * 255).astype(np.uint8)


def grid(rows: list[list[np.ndarray | None]], pad: int = 2, marks: dict[int, tuple[int, int, int]] | None = None,
         background: int = 255) -> np.ndarray:
    """Tile equally sized frames; None leaves a blank cell. `marks` colours the gap before column c."""
    h, w = next(f for r in rows for f in r if f is not None).shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), background, np.uint8)
    for i, r in enumerate(rows):
        for j, f in enumerate(r):
            if f is not None:
                y, x = pad + i * (h + pad), pad + j * (w + pad)
                out[y : y + h, x : x + w] = f
    for col, color in (marks or {}).items():
        x = col * (w + pad)
        out[:, max(x - 1, 0) : x + pad + 1] = color
    return out


def svg_inline(fig) -> str:
    """A matplotlib figure as inline <svg> markup (closes the figure)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    s = buf.getvalue()
    return s[s.index("<svg") :]
