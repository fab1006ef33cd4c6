"""The policy server's wire format: a JSON header plus raw array bytes. No pickle, nothing executable.

One frame:  uint32 little-endian header length | header (UTF-8 JSON object) | payload
The header lists the arrays in the payload: {"arrays": [{"name", "dtype", "shape"}...], ...other keys}.
Arrays are rebuilt with `np.frombuffer` from an allow-list of dtypes, with sizes checked against the
header, so a malicious or corrupt peer can at worst cause a clean `WireError`.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

import numpy as np

MAX_HEADER = 1 << 20
MAX_PAYLOAD = 256 << 20
DTYPES = {"uint8", "float32", "float64", "int32", "int64", "bool"}


class WireError(RuntimeError):
    """A frame was malformed, too large, or the peer went away."""


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> bytes:
    metas, blobs = [], []
    for name, arr in (arrays or {}).items():
        a = np.ascontiguousarray(arr)
        if a.dtype.name not in DTYPES:
            raise WireError(f"array {name!r} has dtype {a.dtype}; allowed {sorted(DTYPES)}")
        metas.append({"name": name, "dtype": a.dtype.name, "shape": list(a.shape)})
        blobs.append(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    head = json.dumps({**header, "arrays": metas}).encode()
    return struct.pack("<I", len(head)) + head + b"".join(blobs)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise WireError("connection closed by peer")
        got += k
    return bytes(buf)


def recv(sock: socket.socket) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read one frame; raise WireError on anything malformed (socket.timeout passes through)."""
    (hlen,) = struct.unpack("<I", _recv_exact(sock, 4))
    if hlen > MAX_HEADER:
        raise WireError(f"header of {hlen} bytes exceeds {MAX_HEADER}")
    try:
        header = json.loads(_recv_exact(sock, hlen))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"header is not JSON: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise WireError("header must be a JSON object with an 'arrays' list")
    arrays, total = {}, 0
    specs = []
    for meta in header.pop("arrays", []):
        try:
            name, dtype, shape = str(meta["name"]), str(meta["dtype"]), tuple(int(s) for s in meta["shape"])
        except (KeyError, TypeError, ValueError) as e:
            raise WireError(f"bad array entry {meta!r}: {e}") from None
        if dtype not in DTYPES or any(s < 0 for s in shape):
            raise WireError(f"array {name!r}: dtype {dtype!r} / shape {shape} not allowed")
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        total += nbytes
        if total > MAX_PAYLOAD:
            raise WireError(f"payload exceeds {MAX_PAYLOAD} bytes")
        specs.append((name, dtype, shape, nbytes))
    for name, dtype, shape, nbytes in specs:
        arrays[name] = np.frombuffer(_recv_exact(sock, nbytes), dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).astype(dtype)
    return header, arrays


def send(sock: socket.socket, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    sock.sendall(encode(header, arrays))
