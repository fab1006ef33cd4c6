"""Episode videos: primary and wrist cameras side by side, the instruction written over them, as mp4.

Written with imageio's bundled ffmpeg (libx264, yuv420p: plays in browsers and VS Code). Frames smaller
than `min_height` are enlarged by an integer factor (nearest neighbour) so the caption stays readable for
the small image sizes used in tests.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def compose_frame(
    images: Mapping[str, np.ndarray],
    caption: str = "",
    status: str = "",
    *,
    cameras: Sequence[str] = ("primary", "wrist"),
    min_height: int = 224,
) -> np.ndarray:
    """One video frame: the cameras side by side, `caption` at the top and `status` at the bottom.

    Args:
        images: camera name -> uint8 (H, W, 3); cameras missing from it are skipped.
        caption: the instruction (wrapped to the frame width).
        status: a short line, e.g. "step 12  dr=low  seed 1000003".
    Returns:
        uint8 (H', W', 3) with even H' and W' (what libx264 with yuv420p needs).
    """
    from PIL import Image, ImageDraw

    tiles = [np.asarray(images[c]) for c in cameras if c in images]
    if not tiles:
        raise ValueError(f"compose_frame needs at least one of the cameras {list(cameras)}, got {sorted(images)}")
    h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    frame = np.concatenate(tiles, axis=1)
    scale = max(1, -(-min_height // h))
    if scale > 1:
        frame = frame.repeat(scale, axis=0).repeat(scale, axis=1)
    frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)))
    if not caption and not status:
        return np.ascontiguousarray(frame)

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img, "RGBA")
    size = max(10, frame.shape[0] // 16)
    font = _font(size)
    lines = _wrap(caption, draw, font, frame.shape[1] - 8) if caption else []
    if lines:
        band = len(lines) * (size + 4) + 6
        draw.rectangle([0, 0, frame.shape[1], band], fill=(0, 0, 0, 150))
        for i, line in enumerate(lines):
            draw.text((4, 3 + i * (size + 4)), line, fill=(255, 255, 255, 255), font=font)
    if status:
        y0 = frame.shape[0] - size - 8
        draw.rectangle([0, y0, frame.shape[1], frame.shape[0]], fill=(0, 0, 0, 150))
        draw.text((4, y0 + 3), status, fill=(255, 255, 0, 255), font=font)
    return np.asarray(img)


def _wrap(text: str, draw, font, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    if line:
        lines.append(line)
    return lines


def write_mp4(frames: Sequence[np.ndarray], path: str | Path, fps: float = 10.0) -> Path:
    """Write uint8 (H, W, 3) frames (all the same size, even dimensions) to an H.264 mp4."""
    import imageio.v2 as imageio

    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # macro_block_size=1: frames are already even-sized; imageio would otherwise rescale to multiples of 16.
    with imageio.get_writer(
        path, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1, quality=7, ffmpeg_log_level="error"
    ) as writer:
        for f in frames:
            writer.append_data(np.asarray(f, dtype=np.uint8))
    return path


class EpisodeVideo:
    """Accumulates composed frames of one episode; `save` writes the mp4.

    One frame per observation: the reset observation and one after every executed action, so an episode
    of T steps gives T + 1 frames.
    """

    def __init__(self, caption: str, header: str = "", cameras: Sequence[str] = ("primary", "wrist")):
        self.caption = caption
        self.header = header
        self.cameras = tuple(cameras)
        self.frames: list[np.ndarray] = []

    def add(self, images: Mapping[str, np.ndarray], status: str = "") -> None:
        line = f"{self.header}  {status}".strip()
        self.frames.append(compose_frame(images, self.caption, line, cameras=self.cameras))

    def save(self, path: str | Path, fps: float = 10.0) -> Path:
        out = write_mp4(self.frames, path, fps=fps)
        logger.debug("wrote %s (%d frames)", out, len(self.frames))
        return out
