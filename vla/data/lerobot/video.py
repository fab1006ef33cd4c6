"""mp4 camera streams through PyAV (FFmpeg in its wheel: AV1 via dav1d, H.264, HEVC decode; SVT-AV1, x264 encode).

LeRobot (0.4) writes AV1 (`libsvtav1`, yuv420p, a keyframe every 2 frames, crf 30) by default, and reads it back
with torchcodec. We decode an episode's whole segment in one sequential pass (one seek, then every frame once),
which is what a training loader wants, instead of a seek per sampled frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vla.data.lerobot.meta import LeRobotFormatError

#: LeRobot's default encoding (lerobot.datasets.video_utils.encode_video_frames).
DEFAULT_CODEC = "libsvtav1"


def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is in requirements-cpu.txt
        raise ImportError("video features of LeRobot datasets need PyAV: pip install av (see requirements-cpu.txt)") from e
    return av


def _decode_error(path: Path, e: Exception) -> LeRobotFormatError:
    return LeRobotFormatError(
        f"cannot decode {path} ({type(e).__name__}: {e}). The file is missing or damaged, or its codec is not in "
        "PyAV's FFmpeg (AV1, H.264, HEVC, VP9 decode here): re-download it, or re-encode it, e.g. "
        f"`ffmpeg -i {path.name} -c:v libx264 -pix_fmt yuv420p -g 2 fixed.mp4`, and put it in its place"
    )


def decode_frames(path: str | Path, times: Sequence[float], fps: float, *,
                  size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The frames shown at `times` (seconds in the file) as uint8 (H, W, 3), resized to `size` (lanczos3, as the
    loader resizes) when given. One seek to the keyframe before the first time, then a sequential decode."""
    av = _av()
    path = Path(path)
    times = np.asarray(times, np.float64)
    if times.size == 0:
        return []
    tol = 0.4 / fps
    out: list[np.ndarray | None] = [None] * len(times)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if times[0] > tol:
                container.seek(int(max(0.0, times[0] - tol) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time)
                if t > times[-1] + tol:
                    break
                j = int(np.searchsorted(times, t))
                j = min(range(max(0, j - 1), min(len(times), j + 1)), key=lambda k: abs(times[k] - t))
                if abs(times[j] - t) <= tol and out[j] is None:
                    img = frame.to_ndarray(format="rgb24")
                    out[j] = _resize(img, size)
    except (OSError, ValueError, IndexError) as e:
        raise _decode_error(path, e) from e
    except Exception as e:  # av.FFmpegError and friends
        if type(e).__module__.startswith("av"):
            raise _decode_error(path, e) from e
        raise
    missing = [i for i, f in enumerate(out) if f is None]
    if missing:
        raise LeRobotFormatError(
            f"{path}: no frame at {len(missing)} of {len(times)} timestamps (first: t={times[missing[0]]:.4f} s); the "
            "video is shorter than the episode index says or was encoded at another fps. Check it with "
            f"`ffprobe {path.name}`, or re-record/re-encode the episode"
        )
    return out  # type: ignore[return-value]


def _resize(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or img.shape[:2] == tuple(size):
        return img
    from vla.data.augmentation import resize_image

    return resize_image(img, size)


class PNGFrame(bytes):
    """The PNG bytes of an `image` feature frame, decoded by FFmpeg's PNG decoder (PyAV): the same pixels as PIL,
    in about half its CPU time. The loader holds these encoded and calls `to_array()` after its shuffle buffer."""

    __slots__ = ()

    def to_array(self) -> np.ndarray:
        return decode_png(self)


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 (H, W, 3) (grey and RGBA converted as PIL's convert("RGB") does)."""
    av = _av()
    ctx = av.codec.CodecContext.create("png", "r")  # one per image: the decoder keeps state between packets
    ctx.thread_count = 1
    try:
        frames = ctx.decode(av.Packet(bytes(data)))
    except Exception as e:
        raise LeRobotFormatError(f"a PNG frame does not decode ({type(e).__name__}: {e}); the parquet file holding it "
                                 "is damaged: re-download the dataset") from e
    if len(frames) != 1:
        raise LeRobotFormatError(f"a PNG frame decoded to {len(frames)} images; the parquet file is damaged")
    return frames[0].to_ndarray(format="rgb24")


class VideoEncoder:
    """Appends frames to one mp4 (one stream, frame i at i / fps): the v3.0 layout puts episodes one after
    another in a file, each found by its [from_timestamp, to_timestamp)."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], *, codec: str = DEFAULT_CODEC,
                 crf: int = 30, gop: int = 2) -> None:
        av = _av()
        from fractions import Fraction

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.frames = 0
        self.codec = codec
        options = {"g": str(gop), "crf": str(crf)}
        if codec == "libsvtav1":
            options["preset"] = "12"
        self._container = av.open(str(self.path), "w")
        rate = Fraction(fps).limit_denominator(1000)
        self._stream = self._container.add_stream(codec, rate=rate, options=options)
        self._stream.width, self._stream.height = int(size[1]), int(size[0])
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = 1 / rate
        self._av = av

    def add(self, frames: np.ndarray) -> tuple[float, float]:
        """Encode (T, H, W, 3) uint8 frames; returns their [from_timestamp, to_timestamp) in the file."""
        start = self.frames
        for img in frames:
            frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.frames
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1
        return start / self.fps, self.frames / self.fps

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
