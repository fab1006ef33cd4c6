"""A hint printed after hydra's own error when a command-line key is not in the command's schema."""

from __future__ import annotations

import dataclasses
import difflib
import sys
from typing import Sequence


def _keys(schema, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(schema):
        out.append(prefix + f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            out += _keys(type(default), prefix + f.name + ".")
    return out


def unknown_override_keys(argv: Sequence[str], schema, groups: Sequence[str] = ()) -> list[str]:
    """Keys of `key=value` overrides that neither the schema nor a config group knows."""
    known = set(_keys(schema)) | set(groups)
    bad = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra.") or key == "hydra":
            continue
        if key not in known and not any(key.startswith(k + ".") for k in known if k in groups):
            bad.append(key)
    return bad


def hint(command: str, argv: Sequence[str], schema, groups: Sequence[str] = ()) -> str:
    """'Hint: ...' naming the unknown keys, the closest valid ones and all valid keys ('' when all are known)."""
    bad = unknown_override_keys(argv, schema, groups)
    if not bad:
        return ""
    valid = _keys(schema)
    parts = []
    for key in bad:
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"Hint: {command} has no key {', '.join(parts)}. Valid keys: {', '.join(valid)}"
        + (f"; config groups: {', '.join(groups)}" if groups else "")
        + f". Print the full config with `{command} --cfg job`."
    )


def write_hint(command: str, schema, groups: Sequence[str] = ()) -> None:
    text = hint(command, sys.argv[1:], schema, groups)
    if text:
        sys.stderr.write(text + "\n")
