"""Typed configuration of `vla-train` (hydra structured configs).

The YAML files in `configs/train.yaml` and `configs/trainer/*.yaml` only select and override; the
schema and its validation live here. Registered in hydra's ConfigStore by `register_configs()` (called by
the CLI), so `vla-train trainer.stepz=1` fails with hydra's "Key 'stepz' not in 'TrainerConfig'".

Batch sizes are global: `trainer.batch_size` samples per optimizer step whatever the number of processes,
so one process and `torchrun --nproc_per_node 2` run the same optimization (gradient accumulation makes
up the difference: `accumulation = batch_size / (micro_batch_size * world_size)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING

from vla.data.config import DataConfig
from vla.model.schema import ModelConfig


class FinetuneMode(str, Enum):
    """What is trained. `lora` follows OpenVLA (adapters on every linear layer of both towers, projector
    and Llama); `projector` trains the projector only; `freeze_vision` trains everything but the vision (the towers or the conv backbone, and with `vision_film` the
    instruction's FiLM that conditions it), to keep what grounding pretraining taught the vision."""

    full = "full"
    lora = "lora"
    projector = "projector"
    freeze_vision = "freeze_vision"


class Schedule(str, Enum):
    constant = "constant"
    cosine = "cosine"
    linear = "linear"


class Precision(str, Enum):
    """`auto`: bf16 autocast on a GPU, fp32 on the CPU (bf16 on CPU is slow and gains nothing here)."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Parallelism(str, Enum):
    """How several processes share the model: `auto` picks FSDP above `fsdp_min_params`, DDP below."""

    auto = "auto"
    ddp = "ddp"
    fsdp = "fsdp"


@dataclass
class LoraSettings:
    """peft LoRA settings; the defaults are OpenVLA's `vla-scripts/finetune.py` ones."""

    rank: int = 32
    alpha: int = 16
    dropout: float = 0.0
    target_modules: str = "all-linear"
    init: str = "gaussian"

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise ValueError(f"trainer.lora.rank must be > 0, got {self.rank}")


@dataclass
class TrainerConfig:
    """Optimization, precision, logging and checkpointing of one run."""

    steps: int = 1000
    batch_size: int = 16  # global samples per optimizer step
    micro_batch_size: Optional[int] = None  # per process and forward pass; None -> batch_size / world_size
    mode: FinetuneMode = FinetuneMode.full
    lora: LoraSettings = field(default_factory=LoraSettings)
    lr: float = 5e-4
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 0
    schedule: Schedule = Schedule.constant
    min_lr_ratio: float = 0.1  # cosine/linear decay ends at lr * min_lr_ratio
    max_grad_norm: Optional[float] = 1.0  # None: no clipping
    #: L1 head only: weight of the gripper dimension in the action loss (the others weigh 1; the loss is divided
    #: by the mean weight). The gripper changes on one or two steps per episode, so its share of a plain L1 is
    #: tiny and tiny models learn to never close or open in time (docs/history.md, L4).
    gripper_loss_weight: float = 1.0
    #: init_from=<base>: refuse data recorded at another control rate than the base's (vla/train/compat.py);
    #: false adapts the base to a new rate on purpose.
    check_control_rate: bool = True
    precision: Precision = Precision.auto
    gradient_checkpointing: Optional[bool] = None  # None: on when training on a GPU
    parallelism: Parallelism = Parallelism.auto
    fsdp_min_params: int = 1_000_000_000
    device: str = "auto"  # auto | cpu | cuda
    num_threads: Optional[int] = None  # torch CPU threads per process; None: torch's default
    val_fraction: float = 0.1  # whole episodes held out for validation: the last 10% of each dataset's split
    max_train_seconds: Optional[float] = None  # wall-clock budget: stop early, save and export (not resumable-exact)
    log_every: int = 10
    val_every: int = 0  # 0: validate only at the end
    val_batches: int = 8
    save_every: int = 500  # 0: save only at the end
    keep_last: int = 3
    resume: str = "auto"  # auto (latest checkpoint in output_dir) | never | a checkpoint directory
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "vla"
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.steps <= 0:
            problems.append(f"trainer.steps must be > 0, got {self.steps}")
        if self.gripper_loss_weight <= 0:
            problems.append(f"trainer.gripper_loss_weight must be > 0, got {self.gripper_loss_weight}")
        if self.batch_size <= 0:
            problems.append(f"trainer.batch_size must be > 0, got {self.batch_size}")
        if self.micro_batch_size is not None and self.micro_batch_size <= 0:
            problems.append(f"trainer.micro_batch_size must be > 0 or null, got {self.micro_batch_size}")
        if self.lr <= 0:
            problems.append(f"trainer.lr must be > 0, got {self.lr}")
        if self.keep_last < 1:
            problems.append(f"trainer.keep_last must be >= 1, got {self.keep_last}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"trainer.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"trainer.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"trainer.device must be auto, cpu or cuda, got {self.device!r}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class TrainConfig:
    """Root config of `vla-train`.

    `init_from: scratch` builds a fresh model from the `model` preset (`model=tiny model.llm.num_layers=4`);
    any other value is a local checkpoint directory (a saved `VLAForActionPrediction`, e.g. an imported
    OpenVLA-7B), whose own config is used and `model` is ignored. Nothing is downloaded.
    """

    init_from: str = "scratch"  # scratch (build `model`) or a local checkpoint directory (its config wins)
    model: ModelConfig = field(default_factory=ModelConfig)  # a preset from configs/model/ (vla.model.schema)
    data: DataConfig = MISSING  # vla.data.config.DataConfig: data.datasets=[{path: <root>/<name>/<version>}]
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    output_dir: str = "outputs/train"
    seed: int = 0


def register_configs() -> None:
    """Register the schemas in hydra's ConfigStore (the YAML files extend them by name)."""
    from hydra.core.config_store import ConfigStore

    from vla.data.config import register_configs as register_data
    from vla.model.schema import register_configs as register_model

    register_data()
    register_model()
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)


def compose_train_config(overrides: list[str] | None = None):
    """`configs/train.yaml` with its defaults (model=tiny, trainer=tiny) and hydra-style overrides, as the CLI
    builds it; works inside another hydra app too (e.g. the demo)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    overrides = list(overrides or [])
    if GlobalHydra.instance().is_initialized():
        return compose(config_name="train", overrides=overrides)
    with initialize_config_module(config_module="configs", version_base=None):
        return compose(config_name="train", overrides=overrides)


def to_train_config(cfg: Any) -> TrainConfig:
    """A validated `TrainConfig` from a `TrainConfig`, a hydra DictConfig (used as is) or a plain dict (merged
    over `configs/train.yaml`'s defaults, so `run({...})` trains like `vla-train` with the same overrides)."""
    from omegaconf import OmegaConf

    if isinstance(cfg, TrainConfig):
        return cfg
    if OmegaConf.is_config(cfg):
        base = OmegaConf.structured(TrainConfig)
        merged = OmegaConf.merge(base, cfg)
    else:
        base = compose_train_config()
        base = OmegaConf.merge(OmegaConf.structured(TrainConfig), {k: v for k, v in base.items() if k != "hydra"})
        merged = OmegaConf.merge(base, OmegaConf.create(dict(cfg)))
    return OmegaConf.to_object(merged)


def to_container(cfg: TrainConfig) -> dict:
    """Plain dict (enums as strings) for saving beside a checkpoint."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
