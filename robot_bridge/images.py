"""sensor_msgs/Image -> uint8 (H, W, 3) RGB, for live DDS messages (the node) and recorded ones (the converter).

Works on any object with the message's fields (`encoding`, `height`, `width`, `step`, `data`): a cyclonedds
`msgs.Image` or a rosbags message. It needs numpy only, so `vla-convert` does not load cyclonedds for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: encodings the bridge turns into (H, W, 3) RGB; anything else is reported, not guessed.
CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def array_from_image(msg: Any) -> np.ndarray:
    """uint8 (H, W, 3) RGB from a sensor_msgs/Image, or ValueError saying what is malformed."""
    enc = msg.encoding
    if enc not in CHANNELS:
        raise ValueError(f"unsupported image encoding {enc!r}; supported: {sorted(CHANNELS)}")
    c = CHANNELS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = msg.data if isinstance(msg.data, (bytes, bytearray)) else bytes(msg.data)
    if h <= 0 or w <= 0 or step < w * c or len(data) != h * step:
        raise ValueError(f"malformed {enc} image: height={h} width={w} step={step} but {len(data)} bytes of data")
    arr = np.frombuffer(data, np.uint8).reshape(h, step)[:, : w * c].reshape(h, w, c)
    if enc.startswith("bgr"):
        arr = arr[..., [2, 1, 0]]
    elif c == 4:
        arr = arr[..., :3]
    elif c == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)
