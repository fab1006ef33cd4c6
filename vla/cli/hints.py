"""The closest valid key, for every command: which `key=value` overrides a command does not know.

Valid keys come from the command's own composed config (hydra `compose` of its primary config, schema
defaults included), so every command gets the same hint without a hand-kept list:

    Hint: vla-eval has no key 'polcy' (did you mean 'policy'?). Print every key with `vla-eval --cfg job`.
"""

from __future__ import annotations

import difflib
from typing import Any, Sequence

CONFIG_MODULE = "configs"


def config_keys(config_name: str) -> tuple[list[str], list[str]]:
    """(dotted keys, keys whose value is a free-form mapping) of a primary config composed with no overrides."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig, OmegaConf

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base=None):
        cfg = compose(config_name=config_name)
    keys: list[str] = []
    free: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for k in node.keys() if isinstance(node, DictConfig) else ():
            key = f"{prefix}{k}"
            keys.append(key)
            child = node._get_node(k)
            if isinstance(child, DictConfig):
                if not len(child) or OmegaConf.is_missing(node, k):
                    free.append(key)
                walk(child, key + ".")

    walk(cfg, "")
    return keys, free


def config_groups() -> list[str]:
    """The config groups (folders of `configs/`), which the command line may select as `group=option`."""
    from importlib.resources import files

    return sorted(p.name for p in files(CONFIG_MODULE).iterdir() if p.is_dir() and not p.name.startswith("_"))


def unknown_keys(argv: Sequence[str], keys: Sequence[str], free: Sequence[str] = (),
                 groups: Sequence[str] = ()) -> list[str]:
    """Keys of `key=value` overrides in `argv` that the config does not have (hydra.* and `+key` excluded)."""
    known = set(keys) | set(groups)
    bad = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg or arg.startswith("+"):
            continue
        key = arg.split("=", 1)[0].lstrip("~")
        if key == "hydra" or key.startswith("hydra.") or key in known:
            continue
        if any(key.startswith(k + ".") for k in free):
            continue
        bad.append(key)
    return bad


def closest_key_hint(command: str, config_name: str, argv: Sequence[str]) -> str:
    """'Hint: <command> has no key ...' with the closest valid key for each unknown one ('' when all are known)."""
    try:
        keys, free = config_keys(config_name)
    except Exception:  # noqa: BLE001  (the config itself is broken: hydra's own error says why)
        return ""
    bad = unknown_keys(argv, keys, free, config_groups())
    if not bad:
        return ""
    parts = []
    for key in bad:
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        if not close:  # a nested key typed without its parent: match the last part
            tail = {k.rsplit(".", 1)[-1]: k for k in keys}
            close = [tail[c] for c in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(tail), n=1, cutoff=0.75)]
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"Hint: {command} has no key {', '.join(parts)}. Print every key with `{command} --cfg job`."
