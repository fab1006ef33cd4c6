"""Merge a LoRA adapter into its base checkpoint, one safetensors shard at a time.

OpenVLA's merge loads the whole 7B base on every rank and runs out of memory (facts/openvla.md). Here the
merge is plain tensor arithmetic on the files, in one process: for each base shard, load it, add
`scale * B @ A` to the weights the adapter targets, write the shard out, free it. Each shard is streamed
tensor by tensor, so peak host memory is the largest adapted weight (in float32) plus the adapter, not a shard
and not the model. The output is a standalone checkpoint directory: the base
`config.json` with `norm_stats` set to the adapter's (fine-tuning data) statistics, the merged shards (same sharding and
index as the base), the processor files and `dataset_statistics.json`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
STATISTICS_FILE = "dataset_statistics.json"
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
#: files of a checkpoint directory that are not weights or config and travel with the merged model.
_SKIP_COPY = {ADAPTER_CONFIG, ADAPTER_WEIGHTS, "config.json", "README.md", "base_identity.json", *_WEIGHT_FILES}


class MergeError(ValueError):
    """The adapter and base do not fit together, or a directory is not what it should be."""


def _base_shards(base_dir: Path) -> tuple[list[str], dict | None]:
    index = base_dir / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        return sorted(set(data["weight_map"].values())), data
    if (base_dir / "model.safetensors").is_file():
        return ["model.safetensors"], None
    raise MergeError(f"base checkpoint {base_dir} has no model.safetensors or model.safetensors.index.json")


def read_adapter(adapter_dir: Path) -> tuple[dict, dict[str, tuple[torch.Tensor, torch.Tensor]], float]:
    """Adapter config, {base weight key: (A, B)} and the LoRA scale alpha / r (or / sqrt(r) for rsLoRA)."""
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / ADAPTER_CONFIG
    if not cfg_path.is_file() or not (adapter_dir / ADAPTER_WEIGHTS).is_file():
        raise MergeError(f"{adapter_dir} is not a LoRA adapter directory: it needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("peft_type", "LORA") != "LORA":
        raise MergeError(f"adapter type {cfg.get('peft_type')!r} cannot be merged here; only LoRA")
    unsupported = [k for k in ("rank_pattern", "alpha_pattern") if cfg.get(k)] + (["use_dora"] if cfg.get("use_dora") else [])
    if unsupported:
        raise MergeError(f"adapter uses {unsupported}, which this merge does not support; merge it with peft's merge_and_unload")
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    tensors = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in key:
                module = key.split(marker)[0]
                module = module[len("base_model.model."):] if module.startswith("base_model.model.") else module
                pairs.setdefault(f"{module}.weight", {})[part] = t
                break
        else:
            raise MergeError(f"adapter tensor {key!r} is not a LoRA A/B matrix (modules_to_save is not supported)")
    lora = {}
    for wkey, ab in pairs.items():
        if set(ab) != {"lora_A", "lora_B"}:
            raise MergeError(f"adapter has only {sorted(ab)} for {wkey}")
        lora[wkey] = (ab["lora_A"], ab["lora_B"])
    return cfg, lora, scale


def _keys_of(path: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return set(f.keys())


def _skeleton(base_dir: Path):
    """The base model built on the meta device (no memory): it knows how module names map to file keys."""
    from vla.model.configuration_vla import VLAConfig
    from vla.model.modeling_vla import VLAForActionPrediction

    config = VLAConfig.from_pretrained(base_dir)
    with torch.device("meta"):
        return VLAForActionPrediction(config)


def _disk_key(module_key: str, skeleton, disk_keys: set[str]) -> str:
    """File key of a parameter named `module_key` in the model.

    transformers 5 renames some weights between module and file (e.g. DINOv2's `attention.k_proj` is stored
    as `attention.attention.key`); `revert_weight_conversion` applies the same renaming `save_pretrained` does.
    """
    from transformers.core_model_loading import revert_weight_conversion

    if module_key in disk_keys:
        return module_key
    shape = skeleton.get_parameter(module_key).shape
    mapped = list(revert_weight_conversion(skeleton, {module_key: torch.empty(shape, device="meta")}))
    if len(mapped) != 1 or mapped[0] not in disk_keys:
        raise MergeError(f"cannot find the base weight for adapter module {module_key} (renamed to {mapped}); "
                         "was the adapter trained on this base?")
    return mapped[0]


#: safetensors dtype names -> torch dtypes (every dtype a checkpoint may hold).
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64, "I32": torch.int32,
           "I16": torch.int16, "I8": torch.int8, "U64": torch.uint64, "U32": torch.uint32, "U16": torch.uint16,
           "U8": torch.uint8, "BOOL": torch.bool}
_COPY_CHUNK = 64 << 20


def _merge_shard(src: Path, dst: Path, remaining: dict, scale: float, fan_in_fan_out: bool) -> None:
    """Write shard `src` to `dst` with the LoRA deltas of its weights added, one tensor at a time.

    safetensors' `save_file` serializes a whole shard in memory and `safe_open` maps the whole file (on the 7B
    with 5 GB shards: 11.5 GB host peak), so the shard is streamed here with plain reads and writes of the
    (simple) safetensors layout: an 8-byte header length, a JSON header, the raw tensor bytes. The header does
    not change (the merge keeps dtype and shape); untouched tensors are copied in 64 MB chunks; a targeted weight
    is read, merged in float32 and written. Peak host memory: the largest targeted weight in float32 plus the
    adapter.
    """
    import struct

    with open(src, "rb") as fin:
        head = fin.read(8)
        if len(head) != 8:
            raise MergeError(f"{src} is not a safetensors file (shorter than its header length)")
        (n,) = struct.unpack("<Q", head)
        raw = fin.read(n)
        try:
            header = json.loads(raw)
        except ValueError as e:
            raise MergeError(f"{src} is not a safetensors file (bad header: {e})") from None
        entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                         key=lambda kv: kv[1]["data_offsets"][0])
        tmp = dst.with_name(dst.name + ".partial")
        try:
            _stream(fin, tmp, head, raw, entries, 8 + n, src, remaining, scale, fan_in_fan_out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(dst)


def lora_delta(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """B @ A of one adapted layer: Linear (out, r) @ (r, in); Conv2d as peft builds it, A (r, in, k, k) and a 1x1
    B (out, r, 1, 1), whose product is the (out, in, k, k) kernel delta."""
    if a.dim() == 4:
        if b.shape[2:] != (1, 1):
            raise MergeError(f"conv LoRA with a {tuple(b.shape[2:])} kernel in B cannot be merged (peft makes it 1x1)")
        return torch.einsum("or,rikl->oikl", b[:, :, 0, 0].float(), a.float())
    return b.float() @ a.float()  # (out, r) @ (r, in) -> (out, in)


def _stream(fin, tmp: Path, head: bytes, raw: bytes, entries: list, base: int, src: Path, remaining: dict,
            scale: float, fan_in_fan_out: bool) -> None:
    """Copy one shard's header and tensors from `fin` to `tmp`, adding the LoRA deltas to the targeted weights."""
    with open(tmp, "wb") as out:
        out.write(head)
        out.write(raw)
        position = 0
        for key, info in entries:
            start, end = info["data_offsets"]
            if start != position:
                raise MergeError(f"{src}: tensor data of {key} does not follow the previous tensor; "
                                 "re-save the base checkpoint with save_pretrained")
            fin.seek(base + start)
            if key in remaining:
                dtype = _DTYPES.get(info["dtype"])
                if dtype is None:
                    raise MergeError(f"{src}: LoRA target {key} has dtype {info['dtype']}, which cannot be merged")
                data = bytearray(fin.read(end - start))
                if len(data) != end - start:
                    raise MergeError(f"{src} is truncated (tensor {key})")
                w = torch.frombuffer(data, dtype=dtype).reshape(info["shape"])
                del data
                a, b = remaining.pop(key)
                delta = lora_delta(a, b) * scale
                if fan_in_fan_out:
                    delta = delta.T
                if delta.shape != w.shape:
                    raise MergeError(f"LoRA delta for {key} has shape {tuple(delta.shape)}, base weight "
                                     f"{tuple(w.shape)}")
                merged = (w.float() + delta).to(dtype)
                del w, delta
                out.write(memoryview(merged.reshape(-1).view(torch.uint8).numpy()))
                del merged
            else:
                left = end - start
                while left:
                    chunk = fin.read(min(left, _COPY_CHUNK))
                    if not chunk:
                        raise MergeError(f"{src} is truncated (tensor {key})")
                    out.write(chunk)
                    left -= len(chunk)
            position = end


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path, *, base_dir: str | Path | None = None) -> Path:
    """Write a standalone checkpoint = base + LoRA delta into `output_dir`; returns it.

    Args:
        adapter_dir: a peft adapter directory (as `vla-train trainer.mode=lora` saves it).
        output_dir: where the merged checkpoint goes (created; must not hold a checkpoint already).
        base_dir: the base checkpoint; default: the adapter's `base_model_name_or_path`.
    """
    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    cfg, lora, scale = read_adapter(adapter_dir)
    base_dir = Path(base_dir or cfg.get("base_model_name_or_path") or "")
    if not (base_dir / "config.json").is_file():
        raise MergeError(
            f"base checkpoint {str(base_dir)!r} not found (no config.json there); pass base_dir=... / "
            "vla-merge base=PATH pointing at the checkpoint the adapter was trained on"
        )
    if (output_dir / "config.json").exists():
        raise MergeError(f"{output_dir} already holds a checkpoint; choose an empty output directory")
    from vla.train.compat import BaseMismatchError, check_adapter_base

    try:
        check_adapter_base(adapter_dir, base_dir)
    except BaseMismatchError as e:
        raise MergeError(str(e)) from e
    fan_in_fan_out = bool(cfg.get("fan_in_fan_out", False))
    shards, index = _base_shards(base_dir)
    disk_keys = set(index["weight_map"]) if index is not None else _keys_of(base_dir / shards[0])
    output_dir.mkdir(parents=True, exist_ok=True)

    skeleton = _skeleton(base_dir)
    lora = {_disk_key(k, skeleton, disk_keys): ab for k, ab in lora.items()}
    remaining = dict(lora)
    for shard in shards:
        _merge_shard(base_dir / shard, output_dir / shard, remaining, scale, fan_in_fan_out)
        logger.info("merged shard %s", shard)
    if remaining:
        raise MergeError(
            f"{len(remaining)} adapter weights have no match in the base {base_dir}, e.g. {sorted(remaining)[:3]}; "
            "was the adapter trained on this base?"
        )
    if index is not None:
        (output_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))

    config = json.loads((base_dir / "config.json").read_text())
    stats_path = adapter_dir / STATISTICS_FILE
    if stats_path.is_file():  # the fine-tuning data's statistics replace the base's (as vla-train saves them)
        config["norm_stats"] = json.loads(stats_path.read_text())
    (output_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))

    # processor, tokenizer, statistics: from the adapter dir (saved with the run), else from the base
    for src in (base_dir, adapter_dir):
        for p in src.iterdir():
            if p.is_file() and p.name not in _SKIP_COPY and not p.name.endswith(".safetensors"):
                shutil.copy2(p, output_dir / p.name)
    logger.info("merged %d LoRA weights (scale %.4g) into %s", len(lora), scale, output_dir)
    return output_dir
