"""Decode serialized `tf.train.Example` protos without TensorFlow, driven by a TFDS `features.json`.

Two layers:
1. `parse_example(buf)`: the protobuf wire format of
       Example { Features features = 1 }   Features { map<string, Feature> feature = 1 }
       Feature { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3 } }
   into `{flat_key: list[bytes] | float32 array | int64 array}` (packed and unpacked repeated fields).
2. `FeatureSpec.from_features_json(d)` + `decode_example(buf, spec)`: TFDS's feature tree (FeaturesDict,
   Dataset/Sequence, Tensor/Scalar, Text, Image, ClassLabel) to the nested dict `tfds.as_numpy` yields, with
   sequences (RLDS `steps`) stacked over time. Flat keys join the nested names with "/", as TFDS does.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_DTYPES = {
    "bool": np.bool_, "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "float16": np.float16, "float32": np.float32, "float64": np.float64, "bfloat16": None,
    "string": object,
}
_FLOAT_KINDS = ("float16", "float32", "float64")


class ExampleDecodeError(ValueError):
    """A record is not a valid tf.Example or does not match features.json."""


# ----------------------------------------------------------------------------------------------- wire format
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ExampleDecodeError(f"varint longer than 10 bytes at byte {pos}")


def _skip(buf: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        return _varint(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        n, pos = _varint(buf, pos)
        return pos + n
    if wire == 5:
        return pos + 4
    raise ExampleDecodeError(f"unsupported protobuf wire type {wire} at byte {pos}")


def _packed_varints(buf: bytes, start: int, end: int) -> np.ndarray:
    chunk = buf[start:end]
    raw = np.frombuffer(chunk, np.uint8)
    if not np.any(raw & 0x80):  # every value < 128 (bools, small ints): one byte each
        return raw.astype(np.int64)
    vals = []
    pos = start
    while pos < end:
        v, pos = _varint(buf, pos)
        vals.append(v)
    return np.array(vals, np.uint64).view(np.int64)


def _parse_list(buf: bytes, start: int, end: int, kind: int) -> Any:
    """BytesList (1) -> list[bytes]; FloatList (2) -> float32 array; Int64List (3) -> int64 array."""
    out_bytes: list[bytes] = []
    floats: list[np.ndarray] = []
    ints: list[np.ndarray] = []
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos)
        fnum, wire = tag >> 3, tag & 7
        if fnum != 1:
            pos = _skip(buf, pos, wire)
            continue
        if kind == 1 and wire == 2:
            n, pos = _varint(buf, pos)
            out_bytes.append(buf[pos:pos + n])
            pos += n
        elif kind == 2 and wire == 2:  # packed floats
            n, pos = _varint(buf, pos)
            floats.append(np.frombuffer(buf, "<f4", n // 4, pos))
            pos += n
        elif kind == 2 and wire == 5:
            floats.append(np.frombuffer(buf, "<f4", 1, pos))
            pos += 4
        elif kind == 3 and wire == 2:  # packed varints
            n, pos = _varint(buf, pos)
            ints.append(_packed_varints(buf, pos, pos + n))
            pos += n
        elif kind == 3 and wire == 0:
            v, pos = _varint(buf, pos)
            ints.append(np.array([v], np.uint64).view(np.int64))
        else:
            raise ExampleDecodeError(f"unexpected wire type {wire} in a {('', 'bytes', 'float', 'int64')[kind]} list")
    if kind == 1:
        return out_bytes
    parts = floats if kind == 2 else ints
    dtype = np.float32 if kind == 2 else np.int64
    if not parts:
        return np.zeros(0, dtype)
    return parts[0].astype(dtype) if len(parts) == 1 else np.concatenate(parts).astype(dtype)


def _parse_feature(buf: bytes, start: int, end: int) -> Any:
    pos = start
    value: Any = []
    while pos < end:
        tag, pos = _varint(buf, pos)
        fnum, wire = tag >> 3, tag & 7
        if wire != 2:
            pos = _skip(buf, pos, wire)
            continue
        n, pos = _varint(buf, pos)
        if fnum in (1, 2, 3):
            value = _parse_list(buf, pos, pos + n, fnum)
        pos += n
    return value


def parse_example(buf: bytes) -> dict[str, Any]:
    """Wire-decode one serialized tf.Example into {key: list[bytes] | float32 array | int64 array}."""
    out: dict[str, Any] = {}
    try:
        pos, end = 0, len(buf)
        while pos < end:
            tag, pos = _varint(buf, pos)
            if tag != (1 << 3 | 2):  # Example.features
                pos = _skip(buf, pos, tag & 7)
                continue
            n, pos = _varint(buf, pos)
            fend = pos + n
            while pos < fend:  # Features: repeated map entries (field 1)
                tag, pos = _varint(buf, pos)
                if tag != (1 << 3 | 2):
                    pos = _skip(buf, pos, tag & 7)
                    continue
                m, pos = _varint(buf, pos)
                eend = pos + m
                key, value = None, []
                while pos < eend:
                    tag, pos = _varint(buf, pos)
                    k, pos = _varint(buf, pos)
                    if tag == (1 << 3 | 2):
                        key = buf[pos:pos + k].decode("utf-8")
                    elif tag == (2 << 3 | 2):
                        value = _parse_feature(buf, pos, pos + k)
                    pos += k
                if key is None:
                    raise ExampleDecodeError("a map entry in Example.features has no key")
                out[key] = value
            if pos != fend:
                raise ExampleDecodeError("Example.features length does not match its content")
        if pos != end:
            raise ExampleDecodeError("the message ends inside a field")
    except IndexError as e:
        raise ExampleDecodeError("the message ends inside a field (truncated tf.Example)") from e
    return out


# ------------------------------------------------------------------------------------------- features.json
@dataclass
class LeafSpec:
    """One stored feature: its flat key, TFDS kind and decoded dtype/shape (per element, without time)."""

    key: str
    kind: str  # "tensor" | "text" | "image" | "class_label"
    dtype: str
    shape: tuple[int, ...]
    encoding: str = "none"  # tensors: "none" | "bytes" | "zlib"
    image_format: str | None = None  # images: "jpeg" | "png" | None (sniffed)
    sequence: bool = False  # inside a Dataset / Sequence feature: values carry a leading time axis


@dataclass
class FeatureSpec:
    """The tree of a features.json: nested dict of names to `LeafSpec` (or to sub-trees)."""

    tree: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_features_json(cls, d: dict) -> "FeatureSpec":
        return cls(tree=_build(d, "", False))

    def leaves(self) -> list[LeafSpec]:
        out: list[LeafSpec] = []

        def walk(t: Any) -> None:
            if isinstance(t, LeafSpec):
                out.append(t)
            else:
                for v in t.values():
                    walk(v)

        walk(self.tree)
        return out

    def find(self, path: str) -> LeafSpec | None:
        node: Any = self.tree
        for part in path.split("/"):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, LeafSpec) else None


def _shape(d: dict) -> tuple[int, ...]:
    dims = d.get("shape", {}).get("dimensions", [])
    return tuple(int(x) for x in dims)


def _build(d: dict, prefix: str, sequence: bool) -> Any:
    cls = d.get("pythonClassName", "")
    short = cls.rsplit(".", 1)[-1]
    if "featuresDict" in d:
        feats = d["featuresDict"].get("features", {})
        return {name: _build(sub, f"{prefix}/{name}" if prefix else name, sequence) for name, sub in feats.items()}
    if "sequence" in d:
        if sequence:
            raise ExampleDecodeError(f"feature {prefix!r}: nested sequences (ragged) are not supported by this reader")
        return _build(d["sequence"]["feature"], prefix, True)
    if "tensor" in d:
        t = d["tensor"]
        return LeafSpec(prefix, "class_label" if short == "ClassLabel" else "tensor", t.get("dtype", "float32"),
                        _shape(t), t.get("encoding", "none").lower(), None, sequence)
    if "text" in d or short == "Text":
        return LeafSpec(prefix, "text", "string", (), "none", None, sequence)
    if "image" in d:
        im = d["image"]
        return LeafSpec(prefix, "image", im.get("dtype", "uint8"), _shape(im), "none", im.get("encodingFormat"), sequence)
    if "classLabel" in d or short == "ClassLabel":
        return LeafSpec(prefix, "class_label", "int64", (), "none", None, sequence)
    raise ExampleDecodeError(
        f"feature {prefix!r} has an unsupported TFDS feature type {cls or sorted(d)}; supported: FeaturesDict, "
        "Dataset, Sequence, Tensor, Scalar, Text, Image, ClassLabel. Read this dataset with tfds instead."
    )


# ---------------------------------------------------------------------------------------------- decoding
def _np_dtype(leaf: LeafSpec) -> Any:
    if leaf.dtype not in _DTYPES or _DTYPES[leaf.dtype] is None:
        raise ExampleDecodeError(f"feature {leaf.key!r}: dtype {leaf.dtype!r} is not supported by this reader")
    return _DTYPES[leaf.dtype]


def _decode_leaf(leaf: LeafSpec, raw: Any) -> Any:
    """Raw wire values of one feature -> numpy (stacked over time when `leaf.sequence`)."""
    dtype = _np_dtype(leaf)
    if leaf.kind in ("text", "image") or (leaf.kind == "tensor" and leaf.dtype == "string"):
        vals = raw if isinstance(raw, list) else []
        if leaf.kind == "tensor" and leaf.shape:
            arr = np.empty(len(vals), object)
            arr[:] = vals
            lead = (-1,) if leaf.sequence else ()
            return arr.reshape(lead + leaf.shape)
        if leaf.sequence:
            arr = np.empty(len(vals), object)
            arr[:] = vals
            return arr
        if len(vals) != 1:
            raise ExampleDecodeError(f"feature {leaf.key!r}: expected one value, found {len(vals)}")
        return vals[0]
    if leaf.encoding in ("bytes", "zlib"):
        vals = raw if isinstance(raw, list) else []
        if leaf.encoding == "zlib":
            vals = [zlib.decompress(v) for v in vals]
        arrs = [np.frombuffer(v, dtype).reshape(leaf.shape) for v in vals]
        if leaf.sequence:
            return np.stack(arrs) if arrs else np.zeros((0,) + leaf.shape, dtype)
        if len(arrs) != 1:
            raise ExampleDecodeError(f"feature {leaf.key!r}: expected one encoded tensor, found {len(arrs)}")
        return arrs[0].copy()
    if isinstance(raw, list):  # absent feature or wrong list type
        if raw:
            raise ExampleDecodeError(f"feature {leaf.key!r} ({leaf.dtype}) is stored as bytes in this record")
        raw = np.zeros(0, np.float32 if leaf.dtype in _FLOAT_KINDS else np.int64)
    if leaf.dtype in _FLOAT_KINDS and raw.dtype != np.float32:
        raise ExampleDecodeError(f"feature {leaf.key!r} ({leaf.dtype}) is stored as int64 in this record")
    arr = raw.astype(dtype) if raw.dtype != dtype else raw
    if leaf.sequence:
        per = int(np.prod(leaf.shape)) if leaf.shape else 1
        if per == 0 or arr.size % per:
            raise ExampleDecodeError(f"feature {leaf.key!r}: {arr.size} values do not fill steps of shape {leaf.shape}")
        return arr.reshape((arr.size // per,) + leaf.shape)
    if any(s < 0 for s in leaf.shape):
        return arr.reshape(tuple(s if s >= 0 else -1 for s in leaf.shape))
    expected = int(np.prod(leaf.shape)) if leaf.shape else 1
    if arr.size != expected:
        raise ExampleDecodeError(f"feature {leaf.key!r}: expected {expected} values of shape {leaf.shape}, found {arr.size}")
    return arr.reshape(leaf.shape) if leaf.shape else arr[0]


def decode_example(buf: bytes, spec: FeatureSpec, *, keys: set[str] | None = None) -> dict[str, Any]:
    """One serialized tf.Example -> nested dict as `tfds.as_numpy` (sequences stacked; images left encoded).

    `keys`: only decode these flat keys (others are omitted), for readers that need a few features.
    A feature named in features.json but absent from the record raises `ExampleDecodeError`.
    """
    raw = parse_example(buf)

    def walk(t: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, node in t.items():
            if isinstance(node, LeafSpec):
                if keys is not None and node.key not in keys:
                    continue
                if node.key not in raw:
                    raise ExampleDecodeError(
                        f"feature {node.key!r} is declared in features.json but missing from the record "
                        f"(record keys: {sorted(raw)[:20]})"
                    )
                out[name] = _decode_leaf(node, raw[node.key])
            else:
                sub = walk(node)
                if sub or keys is None:
                    out[name] = sub
        return out

    return walk(spec.tree)
