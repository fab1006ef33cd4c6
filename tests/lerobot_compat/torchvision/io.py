"""`torchvision.io.VideoReader` as torchvision 0.2x implements its "pyav" backend (torchvision/io/video_reader.py):
a PyAV container, `seek(t, keyframes_only)` to the keyframe at or before t, then frames as
{"data": uint8 (C, H, W) tensor of the rgb24 frame, "pts": seconds}. LeRobot's `decode_video_frames(...,
backend="pyav")` uses exactly this (and `.container.close()`)."""

import av
import numpy as np
import torch


class VideoReader:
    def __init__(self, src: str, stream: str = "video", num_threads: int = 0) -> None:
        if stream != "video":
            raise RuntimeError("the .venv-lerobot stand-in reads video streams only")
        self.container = av.open(src, metadata_errors="ignore")
        self._stream = self.container.streams.video[0]
        self._c = None

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._c is None:
            self._c = self.container.decode(video=0)
        try:
            frame = next(self._c)
        except (StopIteration, av.error.EOFError):
            raise StopIteration from None
        data = torch.from_numpy(np.ascontiguousarray(frame.to_rgb().to_ndarray().transpose(2, 0, 1)))
        return {"data": data, "pts": float(frame.pts * frame.time_base)}

    def seek(self, time_s: float, keyframes_only: bool = False) -> "VideoReader":
        # torchvision: offset in stream time base, backward seek to a keyframe; exact seeks are not offered by PyAV
        self.container.seek(int(time_s / self._stream.time_base), stream=self._stream, any_frame=not keyframes_only,
                            backward=True)
        self._c = self.container.decode(video=0)
        return self
