"""TFRecord files without TensorFlow: the framing, CRC32C checks, and an offset index for random access.

A TFRecord file is a sequence of records, each
    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)
with `masked_crc(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2**32)` (see tensorflow/core/lib/hash/crc32c.h).
Every record read here is checked against both CRCs; a corrupt or truncated file raises `TFRecordError`
naming the file and the byte offset, never a silent skip.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO, Iterator

import google_crc32c

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


class TFRecordError(IOError):
    """A TFRecord file is corrupt or truncated; the message names the file, the byte offset and what to do."""


def masked_crc32c(data: bytes | memoryview) -> int:
    crc = google_crc32c.value(bytes(data) if isinstance(data, memoryview) else data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _fix_hint(path: Path) -> str:
    return (
        f"the shard {path.name} is damaged (partial copy or download?): copy or regenerate it, "
        f"or remove the dataset directory {path.parent} and write it again"
    )


def _read_header(f: BinaryIO, path: Path, offset: int, file_size: int) -> int | None:
    """Read and check one record header at `offset`; None at a clean end of file."""
    head = f.read(_HEADER.size)
    if not head:
        return None
    if len(head) < _HEADER.size:
        raise TFRecordError(
            f"{path}: truncated record header at byte offset {offset} ({len(head)} of {_HEADER.size} bytes, "
            f"file is {file_size} bytes); {_fix_hint(path)}"
        )
    length, length_crc = _HEADER.unpack(head)
    if masked_crc32c(head[:8]) != length_crc:
        raise TFRecordError(
            f"{path}: CRC mismatch in the record length at byte offset {offset}; {_fix_hint(path)}"
        )
    end = offset + _HEADER.size + length + _FOOTER.size
    if end > file_size:
        raise TFRecordError(
            f"{path}: truncated record at byte offset {offset}: it needs {length} data bytes (to offset {end}), "
            f"the file has {file_size} bytes; {_fix_hint(path)}"
        )
    return length


def read_record(f: BinaryIO, path: str | os.PathLike, offset: int, length: int | None = None) -> bytes:
    """Read the record at `offset` from an open file, checking both CRCs; return its data."""
    path = Path(path)
    f.seek(offset)
    if length is None:
        size = os.fstat(f.fileno()).st_size
        length = _read_header(f, path, offset, size)
        if length is None:
            raise TFRecordError(f"{path}: no record at byte offset {offset} (end of file)")
    else:
        f.seek(offset + _HEADER.size)
    data = f.read(length)
    footer = f.read(_FOOTER.size)
    if len(data) != length or len(footer) != _FOOTER.size:
        raise TFRecordError(f"{path}: truncated record at byte offset {offset}; {_fix_hint(path)}")
    (data_crc,) = _FOOTER.unpack(footer)
    if masked_crc32c(data) != data_crc:
        raise TFRecordError(
            f"{path}: CRC mismatch in the record data at byte offset {offset} ({length} bytes); {_fix_hint(path)}"
        )
    return data


def index_records(path: str | os.PathLike) -> list[tuple[int, int]]:
    """(offset, data length) of every record, reading only the headers (checked); the data CRCs are checked on read."""
    path = Path(path)
    out: list[tuple[int, int]] = []
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while True:
            f.seek(offset)
            length = _read_header(f, path, offset, size)
            if length is None:
                break
            out.append((offset, length))
            offset += _HEADER.size + length + _FOOTER.size
    return out


def iter_records(path: str | os.PathLike) -> Iterator[bytes]:
    """Every record's data, in file order, each checked against its CRCs."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while True:
            length = _read_header(f, path, offset, size)
            if length is None:
                return
            data = f.read(length)
            (data_crc,) = _FOOTER.unpack(f.read(_FOOTER.size))
            if masked_crc32c(data) != data_crc:
                raise TFRecordError(
                    f"{path}: CRC mismatch in the record data at byte offset {offset} ({length} bytes); {_fix_hint(path)}"
                )
            yield data
            offset += _HEADER.size + length + _FOOTER.size


def write_records(path: str | os.PathLike, records: list[bytes]) -> None:
    """Write records in TFRecord framing (used by tests to build damaged files; datasets are written by TFDS)."""
    with open(path, "wb") as f:
        for data in records:
            head = struct.pack("<Q", len(data))
            f.write(head + struct.pack("<I", masked_crc32c(head)) + data + struct.pack("<I", masked_crc32c(data)))
