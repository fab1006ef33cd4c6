"""The two things the trainer plugs in: the model (+ processor) and the data (+ statistics).

Model: `init_from=scratch` builds the `model` preset (e.g. `tiny`, configs/model/) with a project-made tokenizer;
otherwise `init_from` is a local checkpoint directory (`VLAForActionPrediction.from_pretrained`).
Data: RLDS dataset directories read by `vla.data.loader`, normalized with statistics from
`vla.data.statistics`; a held-out set of whole episodes per dataset serves validation. The loader's workers
turn samples into model inputs (`VLAProcessor.transform`) and each process reads its own share (`Shard`), so
the training loop receives padded, model-ready batches.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from vla.model.schema import ModelConfig
from vla.train.compat import CONTROL_HZ_FILE, write_base_identity
from vla.train.errors import DataError

logger = logging.getLogger(__name__)

STATISTICS_FILE = "dataset_statistics.json"


# ------------------------------------------------------------------------------------------------ model


@dataclass
class ModelBundle:
    model: torch.nn.Module  # VLAForActionPrediction
    processor: Any  # VLAProcessor
    base_dir: Path | None  # the pretrained checkpoint it started from (None: scratch)


def build_model(init_from: str, model_cfg: ModelConfig, *, load_dtype: torch.dtype | None = None,
                weights_dir: Path | None = None) -> ModelBundle:
    """The model and processor to train; `weights_dir` (a checkpoint's model/) replaces the weights (resume)."""
    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.processing_vla import VLAProcessor

    if init_from == "scratch":
        from vla.model.presets import build_preset

        config, processor = build_preset(model_cfg)
        base_dir = None
        if weights_dir is None:
            logger.info("building model preset %r from scratch", model_cfg.name)
            return ModelBundle(VLAForActionPrediction(config), processor, None)
    else:
        base_dir = Path(init_from).expanduser()
        if not (base_dir / "config.json").is_file():
            hint = "it does not exist" if not base_dir.exists() else "it has no config.json"
            raise FileNotFoundError(
                f"init_from={init_from!r} is not a checkpoint directory ({hint}). Give a directory written by "
                "vla-train / save_pretrained, convert a released OpenVLA one with `vla-import`, or use init_from=scratch"
            )
        processor = VLAProcessor.from_pretrained(base_dir)
    path = weights_dir or base_dir
    kwargs = {"dtype": load_dtype} if load_dtype is not None else {}
    model = VLAForActionPrediction.from_pretrained(str(path), **kwargs)
    logger.info("loaded model weights from %s", path)
    return ModelBundle(model, processor, base_dir)


def save_model_dir(model: torch.nn.Module, processor: Any, state_dict: dict, out: Path, *, statistics: dict,
                   lora: bool, base_dir: Path | None, control_hz: dict | None = None) -> None:
    """A directory `VLAPolicy.from_pretrained` (full) or `vla-merge` (LoRA adapter) reads back.

    `state_dict` is the full (gathered) state dict of `model`; for LoRA peft keeps the adapter weights only.
    """
    out.mkdir(parents=True, exist_ok=True)
    if lora:
        model.peft_config["default"].base_model_name_or_path = str(Path(base_dir).resolve())
        model.save_pretrained(str(out), state_dict=state_dict, save_embedding_layers=False)
        write_base_identity(out, Path(base_dir))  # vla-merge / resume refuse this adapter on another base
    else:
        model.save_pretrained(str(out), state_dict=state_dict)
    processor.save_pretrained(out)
    (out / STATISTICS_FILE).write_text(json.dumps(statistics, indent=2))
    if control_hz is not None:  # the training data's rates, by unnorm_key (vla/train/compat.py); vla-merge copies it
        (out / CONTROL_HZ_FILE).write_text(json.dumps(control_hz, indent=2))


def load_adapter_weights(model: torch.nn.Module, adapter_dir: Path) -> None:
    """Put the LoRA weights saved in `adapter_dir` into a peft model (resume)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    unexpected = getattr(result, "unexpected_keys", None) or []
    if unexpected:
        raise ValueError(f"adapter in {adapter_dir} does not fit the model: unexpected keys {unexpected[:3]}")


# ------------------------------------------------------------------------------------------------ data


@dataclass
class DataBundle:
    unnorm_key: str  # the key of the first dataset (the one a single-dataset fine-tune un-normalizes with)
    norm_stats: dict[str, Any]  # unnorm_key (dataset name) -> DatasetStatistics, one per training dataset
    train: Any  # RLDSLoader of this process's model-ready samples: .batches(n), state_dict() / load_state_dict()
    make_val: Callable[[], Any] | None  # a fresh, ordered RLDSLoader over the held-out episodes (all of them)
    num_train_episodes: int
    num_val_episodes: int
    config: Any = None  # the DataConfig actually read (shaped for the model)
    control_hz: dict[str, float | None] = field(default_factory=dict)  # unnorm_key -> its spec's control rate


def split_names(split: str, val_fraction: float) -> tuple[str, str | None]:
    """(train split, validation split) holding out the last `val_fraction` of each dataset's episodes."""
    if val_fraction <= 0:
        return split, None
    if "[" in split:
        raise DataError(f"data.split={split!r} is already sliced; trainer.val_fraction={val_fraction} would slice it "
                        "again. Use a plain split name or set trainer.val_fraction=0")
    cut = int(round(100 * (1.0 - val_fraction)))
    return f"{split}[:{cut}%]", f"{split}[{cut}%:]"


def build_data(cfg: Any, *, model_config: Any, processor: Any, seed: int, val_fraction: float,
               shard: Any = None) -> DataBundle:
    """Train/val loaders of model-ready samples over `cfg` (a `vla.data.config.DataConfig`), shaped for the model.

    Frames are resized to the model's input size and carry its cameras (and its action chunk), so the data
    config never has to repeat the model's dimensions (`shape_for_model` logs what it replaces). `processor`
    tokenizes and builds pixel tensors in the loader's workers; `shard` (a `vla.data.loader.Shard`) is this
    process's slice of the training stream; validation reads every held-out step in every process.
    Statistics: one pass per dataset, cached on disk.
    """
    from dataclasses import replace

    from vla.data.config import to_data_config
    from vla.data.loader import RLDSLoader

    cfg = shape_for_model(to_data_config(cfg), model_config)
    train_split, val_split = split_names(cfg.split, val_fraction)
    cfg = replace(cfg, seed=cfg.seed + seed, split=train_split)
    model_ready = {"transform": processor.transform, "collate": processor.collator()}
    try:
        train = RLDSLoader(cfg, train=True, shard=shard, **model_ready)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise DataError(f"cannot load the training data: {e}") from e
    _check_has_steps(train)
    norm_stats = train.statistics
    make_val, n_val = None, 0
    if val_split is not None:
        val_cfg = replace(cfg, split=val_split, image_augmentation=False)
        try:
            probe = RLDSLoader(val_cfg, train=False)
            n_val = probe.num_episodes
            make_val = lambda: RLDSLoader(val_cfg, train=False, sources=probe.sources, **model_ready)  # noqa: E731
        except ValueError as e:  # a dataset too small to hold episodes out
            logger.warning("no validation: %s (trainer.val_fraction=%s); training on all episodes", e, val_fraction)
            cfg = replace(cfg, split=cfg.split.split("[")[0])
            train = RLDSLoader(cfg, train=True, shard=shard, **model_ready)
    unnorm_key = next(iter(norm_stats))
    control_hz = {src.name: getattr(src.spec, "control_hz", None) for src in train.sources}
    return DataBundle(unnorm_key, norm_stats, train, make_val, train.num_episodes, n_val, cfg, control_hz)


def shape_for_model(cfg: Any, model_config: Any) -> Any:
    """The data config with the model's image size, cameras and action chunk (a `DataConfig` copy).

    The model decides what it reads (configs/train.yaml: "image size and cameras follow the model"):
    `data.image_size` and `data.cameras` take the model's values, and each one replaced is logged (INFO, not
    WARNING: the data groups in configs/data/ set both for the loader on its own, so a default run replaces
    them whenever the model is not a 224 px one reading those cameras; config.yaml records what was read). A
    window chunk is different: `data.window.action_chunk` other than 1 is always a choice, so one that
    differs from the model's `action_chunk` is refused.
    """
    from dataclasses import replace

    model_chunk = int(model_config.action_chunk)
    window = cfg.window
    if window.action_chunk not in (1, model_chunk):
        raise DataError(
            f"data.window.action_chunk={window.action_chunk} but the model predicts chunks of {model_chunk} "
            f"(model.action_chunk, or the checkpoint's config.json); set data.window.action_chunk={model_chunk} "
            f"(or 1, to follow the model), or train a model with model.action_chunk={window.action_chunk}"
        )
    if model_chunk > 1 and window.action_chunk != model_chunk:
        logger.info("data.window.action_chunk follows the model: %d", model_chunk)
        window = replace(window, action_chunk=model_chunk)
    image_size, cameras = int(model_config.image_size), list(model_config.cameras)
    for name, ours, model in (("image_size", cfg.image_size, image_size), ("cameras", list(cfg.cameras), cameras)):
        if ours != model:
            logger.info("data.%s=%s replaced by the model's %s (model.%s, or the checkpoint's config.json): "
                        "frames are read the way the model sees them; set data.%s=%s to make this explicit",
                        name, _fmt(ours), _fmt(model), name, name, _fmt(model))
    return replace(cfg, image_size=image_size, cameras=cameras, window=window)


def _fmt(value: Any) -> str:
    """A value as written on the command line (lists as [a,b])."""
    return f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)


def _check_has_steps(loader: Any) -> None:
    empty = [name for name, st in loader.statistics.items() if st.num_transitions == 0]
    if empty:
        raise DataError(f"dataset(s) {empty} have no steps (num_transitions = 0); there is nothing to train on. "
                        "Collect episodes with at least one step (vla-collect) or drop them from data.datasets")
