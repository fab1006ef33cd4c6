"""Typed configs of the world model and its commands (hydra structured-config schemas).

YAML under `configs/world_model/*.yaml` selects and overrides `WorldModelConfig`; the primary configs
`configs/wm_train.yaml`, `wm_eval.yaml`, `wm_viz.yaml` compose it with the command's own group. The schemas
are registered in hydra's ConfigStore by `register_configs()` (called by each command before hydra parses),
so a wrong key fails with hydra's "Key ... is not in struct" error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorldModelConfig:
    """Architecture of the latent world model.

    State per control step: each camera is encoded to a `latent_grid` x `latent_grid` x `latent_channels`
    map (the pixel decoder inverts it), cut into `(latent_grid / patch)^2` tokens; plus one proprio token.
    The dynamics is a frame-causal transformer over the last `history` steps (latent, proprio, action tokens)
    that predicts the next latent and proprio, and success / reward heads.
    """

    name: str = "tiny"
    cameras: list[str] = field(default_factory=lambda: ["primary", "wrist"])
    image_size: int = 64  # internal resolution (frames are resized to it); decoded frames are resized back
    enc_channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # conv widths, each halves H and W
    latent_channels: int = 8
    decoder: str = "shuffle"  # shuffle (sub-pixel conv, fast) | conv (upsampling blocks, the first version)
    dec_channels: int = 128  # shuffle decoder width
    dec_blocks: int = 1  # shuffle decoder residual blocks at the latent resolution
    proprio_decoder: bool = False  # decoder also conditioned on the proprio (draws the robot from it)
    # How: `map` (one MLP from the proprio to a latent-sized map, added to the latent) or `field` (a per-cell
    # MLP of the proprio and the cell's image position, added to the decoder's features; shuffle decoder only).
    proprio_conditioning: str = "map"
    patch: int = 4  # latent pixels per token side
    history: int = 3
    dim: int = 128
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    action_film: bool = True  # every latent token of a step is modulated (FiLM) by that step's action
    # Dynamics: `transformer` (frame-causal, over latent tokens) or `conv` (residual convolutions over the
    # latent maps of the history, FiLM-modulated by actions and proprio; see world_model/dynamics.py).
    dynamics: str = "transformer"
    conv_channels: int = 64
    conv_blocks: int = 3
    # Success: `features` (a head on the dynamics' features of the step, which include its action), `state`
    # (a classifier of the predicted next state alone: world_model/success_head.py), `lowdim` (of the predicted
    # proprio and state features) or `objects` (of the predicted state features alone, e.g. the objects' xyz).
    success_head: str = "features"
    # Per-step observation features modelled with the proprio (e.g. [object_state]: the task objects' xyz that
    # `vla-collect object_state=true` records). The dynamics predicts them like the proprio; policies never see
    # them (imagined observations carry the robot's proprio only). Privileged sim state, so a model with them
    # starts imagining from a sim state (`closed_loop` reads them from the env's `info`), not from a camera alone.
    state_features: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.decoder not in ("shuffle", "conv"):
            raise ValueError(f"world_model.decoder={self.decoder!r}: choose shuffle or conv")
        if self.dynamics not in ("transformer", "conv"):
            raise ValueError(f"world_model.dynamics={self.dynamics!r}: choose transformer or conv")
        if self.success_head not in ("features", "state", "lowdim", "objects"):
            raise ValueError(f"world_model.success_head={self.success_head!r}: choose features, state, lowdim or objects")
        if self.success_head in ("lowdim", "objects") and not self.state_features:
            raise ValueError(f"world_model.success_head={self.success_head} judges success from the predicted "
                             "state_features: set world_model.state_features=[object_state] (data from "
                             "vla-collect object_state=true), or choose success_head=state")
        if self.proprio_conditioning not in ("map", "field"):
            raise ValueError(f"world_model.proprio_conditioning={self.proprio_conditioning!r}: choose map or field")
        if not self.cameras:
            raise ValueError("world_model.cameras must name at least one camera, e.g. [primary]")
        if self.image_size % (2 ** len(self.enc_channels)) != 0:
            raise ValueError(
                f"world_model.image_size={self.image_size} must be divisible by 2**len(enc_channels)="
                f"{2 ** len(self.enc_channels)}"
            )
        if self.latent_grid % self.patch != 0:
            raise ValueError(f"latent grid {self.latent_grid} is not divisible by patch={self.patch}")
        if self.history < 1:
            raise ValueError(f"world_model.history must be >= 1, got {self.history}")
        if self.dim % self.heads != 0:
            raise ValueError(f"world_model.dim={self.dim} must be divisible by heads={self.heads}")

    @property
    def latent_grid(self) -> int:
        return self.image_size // (2 ** len(self.enc_channels))

    @property
    def tokens_per_camera(self) -> int:
        return (self.latent_grid // self.patch) ** 2

    @property
    def token_dim(self) -> int:
        return self.latent_channels * self.patch * self.patch


@dataclass
class WMDataConfig:
    """Which episodes to train on and how to split them."""

    dataset_dirs: list[str] = field(default_factory=list)  # RLDS dataset dirs (<root>/<name>/<version>)
    split: str = "train"
    max_episodes: int = 0  # 0 = all
    val_fraction: float = 0.15  # episode-level validation split
    holdout_seeds: list[int] = field(default_factory=list)  # DR seeds that only appear in validation
    holdout_seed_fraction: float = 0.0  # or: hold out this fraction of distinct seeds
    seed: int = 0


@dataclass
class WMTrainerConfig:
    """Two phases: the frame autoencoder, then the dynamics on frozen latents (encoded once)."""

    ae_steps: int = 1500
    ae_batch_size: int = 32
    ae_lr: float = 2e-3
    ae_latent_noise: float = 0.0  # autoencoder training: noise on latents (x their std), with proprio_decoder
    # With proprio_decoder: probability that the decoder gets the latent of another step of the same episode
    # (same camera) and must draw the frame of this step from it plus this step's proprio: the robot comes
    # from the proprio, the rest of the scene from the latent.
    ae_latent_swap: float = 0.0
    dyn_steps: int = 2000
    dyn_batch_size: int = 32
    dyn_lr: float = 1e-3
    rollout_steps: int = 3  # multi-step (autoregressive) loss horizon after the teacher-forced step
    rollout_weight: float = 1.0
    # Rollout steps also score predicted proprio and success (imagination reads both from its own predictions).
    rollout_heads: bool = False
    context_noise: float = 0.1  # std of Gaussian noise on history latents (normalized units)
    success_weight: float = 0.5
    proprio_weight: float = 1.0
    weight_decay: float = 1e-4
    log_every: int = 50
    val_every: int = 250
    ckpt_every: int = 500
    seed: int = 0
    threads: int = 0  # torch threads (0 = leave torch's default)


@dataclass
class WMTrainConfig:
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    data: WMDataConfig = field(default_factory=WMDataConfig)
    trainer: WMTrainerConfig = field(default_factory=WMTrainerConfig)
    output_dir: str = "outputs/wm"
    resume: bool = True


@dataclass
class WMEvalConfig:
    checkpoint: str = "outputs/wm"
    # More checkpoints of the same setup (e.g. wm-train with another trainer.seed): closed loop then runs every
    # policy in each member and averages their success rates (world_model.closed_loop.compare_policies).
    ensemble: list[str] = field(default_factory=list)
    dataset_dirs: list[str] = field(default_factory=list)  # default: the validation episodes of the checkpoint
    horizon: int = 8
    max_episodes: int = 16
    starts_per_episode: int = 4
    # Closed loop: gymnasium env id (e.g. vla_sim/LiftCube-v0) and policy variants.
    env_id: str = ""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policies: list[str] = field(default_factory=list)  # specs (vla.policy.registry; `servo`: world_model.policies)
    num_initial_states: int = 8
    max_steps: int = 40
    bootstrap: int = 1000
    output: str = "outputs/wm_eval/metrics.json"
    seed: int = 0


@dataclass
class WMVizConfig:
    checkpoint: str = "outputs/wm"
    dataset_dirs: list[str] = field(default_factory=list)
    output: str = "outputs/wm_viz/report.html"
    eval_json: str = ""  # metrics from wm-eval to include (closed-loop scatter, videos)
    horizon: int = 8
    num_rows: int = 3
    serve: bool = False  # interactive mode on localhost
    host: str = "127.0.0.1"
    port: int = 8765
    policy: str = ""  # policy spec that can drive the interactive mode
    seed: int = 0


def register_configs() -> None:
    """Register the schemas with hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="wm_train_schema", node=WMTrainConfig)
    cs.store(name="wm_eval_schema", node=WMEvalConfig)
    cs.store(name="wm_viz_schema", node=WMVizConfig)
    cs.store(group="world_model", name="world_model_schema", node=WorldModelConfig)
