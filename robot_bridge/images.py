"""sensor_msgs/Image or CompressedImage -> uint8 (H, W, 3) RGB, for live DDS messages (the node) and recorded
ones (the converter).

Works on any object with the message's fields (Image: `encoding`, `height`, `width`, `step`, `data`;
CompressedImage: `format`, `data`): a cyclonedds `msgs.Image` or a rosbags message. Image needs numpy only, so
`vla-convert` does not load cyclonedds for it; CompressedImage (JPEG or PNG) is decoded with Pillow.
"""

from __future__ import annotations

import io
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


def array_from_compressed(msg: Any) -> np.ndarray:
    """uint8 (H, W, 3) RGB from a sensor_msgs/CompressedImage (JPEG or PNG), or ValueError saying why not.

    `format` is image_transport's "<original encoding>; <jpeg|png> compressed <encoding>" (or a bare "jpeg" /
    "png"). compressed_image_transport hands OpenCV colour images as bgr8, so the file itself is an ordinary
    RGB JPEG or PNG whatever the original encoding was: decoded as a file, not by the format text.
    """
    fmt = str(getattr(msg, "format", "") or "")
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise ValueError(f"CompressedImage format {fmt!r} is a depth image (compressedDepth), not a camera image")
    data = msg.data if isinstance(msg.data, (bytes, bytearray)) else bytes(msg.data)
    from PIL import Image as PILImage

    try:
        im = PILImage.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # PIL raises several types for bad data
        raise ValueError(f"CompressedImage with format {fmt!r}: cannot decode its {len(data)} bytes as JPEG or PNG "
                         f"({type(e).__name__}: {e})") from None
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, np.uint8))


def array_from_any(msg: Any) -> np.ndarray:
    """Image or CompressedImage (told apart by their fields) -> uint8 (H, W, 3) RGB."""
    return array_from_compressed(msg) if hasattr(msg, "format") else array_from_image(msg)
