"""Does the fine-tuning data (or an adapter) fit the base it is applied to? Checked before any step runs.

A fine-tune from `init_from=<base>` silently goes wrong in four ways, each refused here with the field and the fix:
  - action dimension: the data's actions have another length than the base predicts (`config.action_dim`);
  - control rate: the data was recorded at another rate than the base's data (vla-train writes the rate of
    each training dataset, from its spec, to `control_hz.json` in every checkpoint and adapter; checked when the
    base has one and all its datasets share one rate);
  - unnorm_key: the data's name equals a key of the base whose statistics differ. The fine-tuned checkpoint
    keeps only the new data's statistics, so that key would quietly change meaning (vla/train/loop.py);
  - adapter base: a LoRA adapter records an identity of its base (`base_identity.json`: architecture config
    and a fingerprint of the weight files), compared before it is merged or loaded onto a base.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

logger = logging.getLogger(__name__)

BASE_IDENTITY_FILE = "base_identity.json"
CONTROL_HZ_FILE = "control_hz.json"  # an adapter's training data rates (its config.json is the base's)
# Config fields that describe the training data or the save, not the network the adapter was trained on.
_NOT_IDENTITY = {"norm_stats", "transformers_version", "_name_or_path", "torch_dtype", "dtype",
                 "architectures", "auto_map"}
_SAMPLE_BYTES = 256  # bytes read at the start and at the end of every tensor


class BaseMismatchError(ValueError):
    """The data or the adapter does not fit the base checkpoint; the message names the field and the fix."""


def _action_dim(stats: Any) -> int:
    action = stats.action if hasattr(stats, "action") else stats["action"]
    q99 = action.q99 if hasattr(action, "q99") else action["q99"]
    return int(np.asarray(q99).size)


def _stats_equal(a: Any, b: Any) -> bool:
    da = a.to_dict() if hasattr(a, "to_dict") else a
    db = b.to_dict() if hasattr(b, "to_dict") else b
    for field in ("action", "proprio"):
        fa, fb = da.get(field) or {}, db.get(field) or {}
        for k in set(fa) | set(fb):
            va, vb = fa.get(k), fb.get(k)
            if va is None or vb is None:
                if va is not vb:
                    return False
                continue
            va, vb = np.asarray(va, float), np.asarray(vb, float)
            if va.shape != vb.shape or not np.allclose(va, vb, rtol=1e-5, atol=1e-6):
                return False
    return True


def base_control_rates(base_dir: Path) -> dict[str, float]:
    """The control rate of each dataset the checkpoint at `base_dir` was trained on ({} when it records none)."""
    path = Path(base_dir) / CONTROL_HZ_FILE
    rates = json.loads(path.read_text()) if path.is_file() else {}
    return {k: float(v) for k, v in rates.items() if v}


def check_data_fits_base(base_dir: Path, base_config: Any, norm_stats: Mapping[str, Any],
                         control_hz: Mapping[str, float | None], *, check_rate: bool = True) -> None:
    """Refuse fine-tuning data that does not fit the base at `base_dir` (see the module docstring).

    `norm_stats` and `control_hz` are the new data's, by unnorm_key (dataset name)."""
    want_dim = int(base_config.action_dim)
    for key, stats in norm_stats.items():
        dim = _action_dim(stats)
        if dim != want_dim:
            raise BaseMismatchError(
                f"dataset {key!r} (data.datasets) has {dim}-D actions; the base init_from={str(base_dir)!r} predicts "
                f"{want_dim}-D actions (config.action_dim). Convert the actions to the base's {want_dim}-D "
                f"end-effector deltas + gripper (vla-convert action_source=..., or a LeRobot dataset's "
                f"lerobot.action_transform), or train a model of your own action size from scratch (init_from=scratch)")
    base_stats = dict(getattr(base_config, "norm_stats", None) or {})
    for key, stats in norm_stats.items():
        if key in base_stats and not _stats_equal(stats, base_stats[key]):
            raise BaseMismatchError(
                f"dataset name {key!r} is already an unnorm_key of the base init_from={str(base_dir)!r}, with other "
                f"statistics. The fine-tuned checkpoint keeps only the new data's statistics, so unnorm_key={key!r} "
                f"would silently mean your data. Rename the dataset: data.datasets=[{{path: <dir>, name: "
                f"{key}_<robot>}}] (the name becomes its unnorm_key), or write it under another name "
                f"(vla-convert name=..., vla-collect name=...)")
    if check_rate:
        _check_control_rate(base_dir, control_hz)


def _check_control_rate(base_dir: Path, control_hz: Mapping[str, float | None]) -> None:
    base_rates = base_control_rates(base_dir)
    distinct = sorted(set(base_rates.values()))
    if len(distinct) != 1:
        if distinct:
            logger.info("the base was trained at several control rates %s: the data's rate is not checked", distinct)
        return  # a base that records no rate (older checkpoints) or a mixture of rates has nothing to compare
    (base_hz,) = distinct
    for key, hz in control_hz.items():
        if hz and not np.isclose(float(hz), base_hz, rtol=1e-3):
            raise BaseMismatchError(
                f"dataset {key!r} (data.datasets) was recorded at {float(hz):g} Hz; the base init_from="
                f"{str(base_dir)!r} was trained on {base_hz:g} Hz data ({CONTROL_HZ_FILE}: {base_rates}). Actions "
                f"are per-step motions, so another rate changes their meaning: record or convert at {base_hz:g} Hz "
                f"(vla-convert rate_hz={base_hz:g}, vla-bridge bridge.node.rate_hz={base_hz:g}), or, to adapt the "
                f"base to a new rate on purpose, set trainer.check_control_rate=false")


# --- adapters and their base ----------------------------------------------------------------------------------
def base_identity(base_dir: Path) -> dict[str, Any]:
    """What identifies a base: its architecture config and a fingerprint of its weight files (each file's
    safetensors header - names, shapes, dtypes, offsets - and the first and last bytes of every tensor). Cheap
    even for a 7B checkpoint, and it tells apart any two trainings and a base from its own merged fine-tune
    (a merge or an update changes every element of the tensors it touches)."""
    base_dir = Path(base_dir)
    config = json.loads((base_dir / "config.json").read_text())
    arch = {k: v for k, v in sorted(config.items()) if k not in _NOT_IDENTITY}
    h = hashlib.sha256(json.dumps(arch, sort_keys=True).encode())
    complete = True
    for path in sorted(base_dir.glob("*.safetensors")):
        complete = _fingerprint_file(path, h) and complete
    return {"path": str(base_dir.resolve()), "fingerprint": h.hexdigest(), "complete": complete,
            "architecture": {k: arch.get(k) for k in ("model_type", "action_dim", "action_chunk", "action_head")}}


def _fingerprint_file(path: Path, h: Any) -> bool:
    """Add `path`'s header and a sample of every tensor to `h`; False when the file is shorter than its header
    says (a cut-short copy: the merge or the loader names it)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        h.update(path.name.encode() + raw)
        try:
            spans = sorted(tuple(t["data_offsets"]) for k, t in json.loads(raw).items() if k != "__metadata__")
        except (ValueError, KeyError, TypeError, AttributeError):
            return False
        start = 8 + n
        if spans and start + spans[-1][1] != size:
            return False
        for begin, end in spans:
            f.seek(start + begin)
            h.update(f.read(min(_SAMPLE_BYTES, end - begin)))
            if end - begin > _SAMPLE_BYTES:
                f.seek(start + end - _SAMPLE_BYTES)
                h.update(f.read(_SAMPLE_BYTES))
    return True


def write_base_identity(adapter_dir: Path, base_dir: Path) -> None:
    (Path(adapter_dir) / BASE_IDENTITY_FILE).write_text(json.dumps(base_identity(base_dir), indent=2))


def check_adapter_base(adapter_dir: Path, base_dir: Path) -> None:
    """Refuse to apply the adapter at `adapter_dir` to a base other than the one it was trained on.

    Adapters saved before the identity was recorded are let through (the merge still refuses weights that
    have no match in the base)."""
    path = Path(adapter_dir) / BASE_IDENTITY_FILE
    if not path.is_file():
        logger.warning("%s has no %s (saved by an older vla-train): its base cannot be checked", adapter_dir,
                       BASE_IDENTITY_FILE)
        return
    recorded = json.loads(path.read_text())
    given = base_identity(Path(base_dir))
    if not given["complete"]:  # truncated or unreadable weight files: the loader / merge reports which one
        logger.warning("base %s has incomplete weight files: only its architecture is compared", base_dir)
        if recorded.get("architecture") == given["architecture"]:
            return
    if recorded["fingerprint"] != given["fingerprint"]:
        raise BaseMismatchError(
            f"adapter {str(adapter_dir)!r} was trained on the base {recorded['path']!r}, not on {given['path']!r} "
            f"(their configs or weights differ: architecture {recorded.get('architecture')} vs "
            f"{given['architecture']}). An adapter only works on its own base: pass base={recorded['path']} "
            f"(vla-merge) / init_from={recorded['path']} (vla-train), or train an adapter on this base")
