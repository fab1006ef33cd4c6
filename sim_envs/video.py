"""Episode videos: primary and wrist cameras side by side, the instruction written over them, as mp4; and
several episodes next to each other in one mp4 (`write_side_by_side`: the same scene under two instructions).

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


def read_mp4(path: str | Path) -> list[np.ndarray]:
    """The frames of an mp4 (e.g. one `EpisodeVideo.save` wrote), uint8 (H, W, 3) each."""
    import imageio.v2 as imageio

    with imageio.get_reader(Path(path), format="ffmpeg") as reader:
        return [np.asarray(f, dtype=np.uint8)[..., :3] for f in reader]


def compose_side_by_side(frames: Sequence[np.ndarray], titles: Sequence[str], *, gap: int = 8) -> np.ndarray:
    """One frame of several episodes next to each other, each with its title in a band above it.

    Args:
        frames: one uint8 (H_i, W_i, 3) frame per episode (e.g. `compose_frame` outputs).
        titles: one line per episode (wrapped to its half), e.g. the instruction and the outcome.
        gap: pixels of black between the episodes.
    Returns:
        uint8 (H', W', 3) with even H' and W'.
    """
    from PIL import Image, ImageDraw

    if len(frames) != len(titles) or not frames:
        raise ValueError(f"compose_side_by_side needs one title per frame, got {len(frames)} frames and "
                         f"{len(titles)} titles")
    h = max(f.shape[0] for f in frames)
    size = max(10, h // 16)
    font = _font(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(t, probe, font, f.shape[1] - 8) for f, t in zip(frames, titles)]
    band = max(len(lines) for lines in wrapped) * (size + 4) + 8
    tiles = []
    for f, lines in zip(frames, wrapped):
        tile = Image.new("RGB", (f.shape[1], band + h))
        tile.paste(Image.fromarray(np.asarray(f, dtype=np.uint8)), (0, band))
        draw = ImageDraw.Draw(tile)
        for i, line in enumerate(lines):
            draw.text((4, 4 + i * (size + 4)), line, fill=(255, 255, 255), font=font)
        tiles.append(np.asarray(tile))
    spacer = np.zeros((band + h, gap, 3), np.uint8)
    row = np.concatenate([x for t in tiles for x in (t, spacer)][:-1], axis=1)
    return np.ascontiguousarray(np.pad(row, ((0, row.shape[0] % 2), (0, row.shape[1] % 2), (0, 0))))


def write_side_by_side(episodes: Sequence[Sequence[np.ndarray]], titles: Sequence[str], path: str | Path,
                       fps: float = 10.0) -> Path:
    """Several episodes played next to each other in one mp4, each under its title (`compose_side_by_side`).

    A shorter episode holds its last frame until the longest one ends, so the outcomes stay side by side.
    """
    if not episodes or any(len(e) == 0 for e in episodes):
        raise ValueError(f"write_side_by_side needs at least one frame per episode, got lengths "
                         f"{[len(e) for e in episodes]}")
    n = max(len(e) for e in episodes)
    frames = [compose_side_by_side([e[min(t, len(e) - 1)] for e in episodes], titles) for t in range(n)]
    return write_mp4(frames, path, fps=fps)
