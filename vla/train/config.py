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

from vla.model.schema import ModelConfig


class FinetuneMode(str, Enum):
    """What is trained. `lora` follows OpenVLA (adapters on every linear layer of both towers, projector
    and Llama); `projector` trains the projector only; `freeze_vision` trains everything but the towers."""

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
    precision: Precision = Precision.auto
    gradient_checkpointing: Optional[bool] = None  # None: on when training on a GPU
    parallelism: Parallelism = Parallelism.auto
    fsdp_min_params: int = 1_000_000_000
    device: str = "auto"  # auto | cpu | cuda
    num_threads: Optional[int] = None  # torch CPU threads per process; None: torch's default
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
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"trainer.device must be auto, cpu or cuda, got {self.device!r}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class DataSource:
    """Training data: RLDS dataset directories (or registered names), sampled by weight.

    `unnorm_key` names the statistics in the saved checkpoint (default: the first dataset's name), so a
    policy fine-tuned on a new robot un-normalizes with that robot's statistics.
    `val_episodes` whole episodes per dataset are held out for validation (a fraction when < 1).
    """

    datasets: list[str] = field(default_factory=list)
    weights: Optional[list[float]] = None
    unnorm_key: Optional[str] = None
    val_episodes: float = 0.1
    image_augmentation: bool = False
    shuffle_buffer: int = 1000
    num_workers: int = 0
    statistics_cache: Optional[str] = None

    def __post_init__(self) -> None:
        if self.weights is not None and len(self.weights) != len(self.datasets):
            raise ValueError(
                f"data.weights has {len(self.weights)} entries for {len(self.datasets)} datasets; give one per dataset or none"
            )
        if self.val_episodes < 0:
            raise ValueError(f"data.val_episodes must be >= 0, got {self.val_episodes}")


@dataclass
class TrainConfig:
    """Root config of `vla-train`.

    `init_from: scratch` builds a fresh model from the `model` preset (`model=tiny model.llm.num_layers=4`);
    any other value is a local checkpoint directory (a saved `VLAForActionPrediction`, e.g. an imported
    OpenVLA-7B), whose own config is used and `model` is ignored. Nothing is downloaded.
    """

    init_from: str = "scratch"  # scratch (build `model`) or a local checkpoint directory (its config wins)
    model: ModelConfig = field(default_factory=ModelConfig)  # a preset from configs/model/ (vla.model.schema)
    data: DataSource = field(default_factory=DataSource)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    output_dir: str = "outputs/train"
    seed: int = 0


def register_configs() -> None:
    """Register the schemas in hydra's ConfigStore (the YAML files extend them by name)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)


def to_train_config(cfg: Any) -> TrainConfig:
    """A `TrainConfig` from a hydra DictConfig, a plain dict or a `TrainConfig` (validated either way)."""
    from omegaconf import OmegaConf

    if isinstance(cfg, TrainConfig):
        return cfg
    base = OmegaConf.structured(TrainConfig)
    merged = OmegaConf.merge(base, cfg if OmegaConf.is_config(cfg) else OmegaConf.create(cfg))
    return OmegaConf.to_object(merged)


def to_container(cfg: TrainConfig) -> dict:
    """Plain dict (enums as strings) for saving beside a checkpoint."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
