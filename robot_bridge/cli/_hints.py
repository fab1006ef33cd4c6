"""A hint after hydra's own error when a command-line key is not in the command's schema."""

from __future__ import annotations

import dataclasses
import difflib
import sys
from typing import Sequence


def schema_keys(schema, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(schema):
        out.append(prefix + f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            out += schema_keys(type(default), prefix + f.name + ".")
    return out


def write_hint(command: str, schema, groups: Sequence[str] = ()) -> None:
    """Print 'Hint: ...' naming unknown keys of `key=value` overrides and the closest valid ones."""
    valid = schema_keys(schema)
    known = set(valid) | set(groups)
    bad = []
    for arg in sys.argv[1:]:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        if key == "hydra" or key.startswith("hydra.") or key in known:
            continue
        if any(key.startswith(k + ".") for k in known if k.endswith(("cameras", "kwargs", "env_kwargs"))):
            continue  # free-form dict entries
        bad.append(key)
    if not bad:
        return
    parts = []
    for key in bad:
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    sys.stderr.write(f"Hint: {command} has no key {', '.join(parts)}. Print every key with `{command} --cfg job`"
                     + (f"; config groups: {', '.join(groups)}" if groups else "") + ".\n")
