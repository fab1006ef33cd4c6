"""Hydra schema of the `data` config group (configs/data/*.yaml): what the torch loader reads and how.

    # configs/data/sim_pick.yaml
    defaults: [data_schema]
    datasets:
      - {path: outputs/data/sim_pick/1.0.0, weight: 1.0}
    cameras: [primary, wrist]

Datasets are either registered names (looked up as `<data_root>/<tfds_name>/<version>`, see
`vla.data.oxe`), explicit directories (`path`, any `RLDSWriter` output or OXE copy), or a named mixture
(`mixture: oxe_magic_soup_plus_minus`). Weights are multiplied by each dataset's number of transitions,
as in OpenVLA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from vla.core.types import CAMERA_NAMES
from vla.data.augmentation import AugmentationConfig
from vla.data.lerobot.options import LeRobotOptions, to_options
from vla.data.oxe.registry import ZERO_ACTION_FILTERS


@dataclass
class DatasetEntry:
    """One dataset of the mixture: a registered `name`, or a `path` (name then defaults to the dataset's own)."""

    name: Optional[str] = None
    path: Optional[str] = None
    weight: float = 1.0
    format: str = "auto"  # auto (LeRobot when `path` has meta/info.json) | rlds | lerobot
    lerobot: LeRobotOptions = field(default_factory=LeRobotOptions)  # feature mapping of a LeRobot dataset

    def __post_init__(self) -> None:
        if self.format not in ("auto", "rlds", "lerobot"):
            raise ValueError(f"data.datasets format={self.format!r} for {self.name or self.path}; choose auto, rlds or lerobot")
        if not isinstance(self.lerobot, LeRobotOptions):
            self.lerobot = to_options(self.lerobot)
        if self.name is None and self.path is None:
            raise ValueError("a data.datasets entry needs a `name` (registered dataset) or a `path` (<root>/<name>/<version>)")
        if not self.weight >= 0:
            raise ValueError(f"data.datasets weight must be >= 0, got {self.weight} for {self.name or self.path}")


@dataclass
class WindowConfig:
    """Windows for chunked policies and world models: `history` frames up to step t (t included),
    `future_frames` frames after t, and the `action_chunk` actions t .. t+K-1. All 1/0/1 = single frames."""

    history: int = 1
    future_frames: int = 0
    action_chunk: int = 1

    def __post_init__(self) -> None:
        if self.history < 1 or self.future_frames < 0 or self.action_chunk < 1:
            raise ValueError(
                f"data.window needs history >= 1, future_frames >= 0, action_chunk >= 1; got {self.history}, "
                f"{self.future_frames}, {self.action_chunk}"
            )

    @property
    def is_frames(self) -> bool:
        return self.history == 1 and self.future_frames == 0 and self.action_chunk == 1


@dataclass
class DataConfig:
    """The `data` group: datasets, what a sample holds, and how the loader shuffles and parallelizes.

    Attributes:
        datasets: explicit datasets (name and/or path, weight); used when `mixture` is None.
        mixture: a named mixture (`vla.data.oxe.MIXTURES`) whose datasets live under `data_root`.
        data_root: folder with `<tfds_name>/<version>/` of registered datasets.
        split: split to read (TFDS slicing allowed: "train[:95%]").
        cameras: cameras per sample, from `primary`, `secondary` (a second third-person view, e.g. DROID's
            `exterior_image_2_left`) and `wrist`; every dataset of the mixture must have them.
        image_size: frames are resized to (image_size, image_size) like the reference (lanczos3).
        window: history / future frames / action chunk (defaults: single frames).
        image_augmentation: OpenVLA's random crop + colour jitter (`augmentation` ranges) in training.
        center_crop: crop the central `augmentation.crop_scale` area in evaluation mode (the test-time
            counterpart for a policy trained with augmentation).
        shuffle_buffer: samples held (encoded) for shuffling, in total over all streams.
        num_workers: torch DataLoader worker processes (0: in the training process).
        num_streams: independent sample streams; the order of samples depends on (seed, num_streams,
            chunk_size) only, so any num_workers dividing num_streams gives the same batches.
        chunk_size: samples a worker prepares at a time (use the batch size for the fastest `batches()`).
        frame_threads: threads per loader process decoding and augmenting the frames of a chunk (JPEG
            decoding and the numpy/torch image ops release the GIL); the samples do not depend on it.
        seed: the stream seed (training also offsets it by the run seed).
        statistics_cache: where `dataset_statistics_*.json` are cached (None: ~/.cache/vla/statistics).
        skip_unlabeled: leave out episodes with no language instruction on any step, as OpenVLA's training
            does (`skip_unlabeled=True`; many DROID episodes are unlabeled). False trains on them with an
            empty instruction. Statistics cover every episode either way, as in the reference.
        zero_action_filter: how no-op steps of datasets that flag them (DROID's `filter_zero_actions`) are
            found, each one dropped when every action of its chunk is a no-op: `reference` (OpenVLA's test
            against the normalized zero of fixed DROID statistics: it drops zero actions only on data
            normalized with those statistics, and keeps them on any other DROID-layout set), `exact` (all six
            motion dims exactly zero, on any statistics), `off` (keep every step).
    """

    datasets: list[DatasetEntry] = field(default_factory=list)
    mixture: Optional[str] = None
    data_root: str = "data"
    split: str = "train"
    cameras: list[str] = field(default_factory=lambda: ["primary"])
    image_size: int = 224
    window: WindowConfig = field(default_factory=WindowConfig)
    image_augmentation: bool = True
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    center_crop: bool = False
    shuffle_buffer: int = 4000
    num_workers: int = 2
    num_streams: int = 2
    chunk_size: int = 32
    frame_threads: int = 1
    seed: int = 0
    statistics_cache: Optional[str] = None
    skip_unlabeled: bool = True
    zero_action_filter: str = "reference"

    def __post_init__(self) -> None:
        if self.mixture is None and not self.datasets:
            raise ValueError(
                "the data config names no dataset: set data.datasets=[{path: <root>/<name>/<version>}] "
                "or data.mixture=<name> with data.data_root"
            )
        if self.mixture is not None and self.datasets:
            raise ValueError("set data.mixture or data.datasets, not both")
        self.datasets = [d if isinstance(d, DatasetEntry) else DatasetEntry(**dict(d)) for d in self.datasets]
        if isinstance(self.window, dict):
            self.window = WindowConfig(**self.window)
        if isinstance(self.augmentation, dict):
            self.augmentation = AugmentationConfig(**self.augmentation)
        bad = [c for c in self.cameras if c not in CAMERA_NAMES]
        if bad or not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"data.cameras must be distinct names from [{', '.join(CAMERA_NAMES)}], got "
                             f"{list(self.cameras)}")
        for name in ("image_size", "shuffle_buffer", "num_streams", "chunk_size", "frame_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.zero_action_filter not in ZERO_ACTION_FILTERS:
            raise ValueError(f"data.zero_action_filter={self.zero_action_filter!r}; allowed: {list(ZERO_ACTION_FILTERS)} "
                             "(reference: OpenVLA's DROID test, exact: zero motion, off: keep every step)")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.num_workers > 0 and self.num_streams % self.num_workers:
            raise ValueError(
                f"data.num_streams ({self.num_streams}) must be a multiple of data.num_workers ({self.num_workers}) "
                f"so every worker serves whole streams; e.g. data.num_streams={self.num_workers * max(1, self.num_streams // self.num_workers)}"
            )


def to_data_config(cfg: Any) -> DataConfig:
    """A `DataConfig` from a hydra DictConfig, a plain dict or a `DataConfig` (typos in keys are errors)."""
    if isinstance(cfg, DataConfig):
        return cfg
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(DataConfig), cfg if OmegaConf.is_config(cfg) else OmegaConf.create(dict(cfg)))
    return OmegaConf.to_object(merged)


def register_configs() -> None:
    """Register the schema in hydra's ConfigStore as `data/data_schema` (the YAML files extend it)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="data", name="data_schema", node=DataConfig)
