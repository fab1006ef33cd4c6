"""The world model: frame autoencoder + latent dynamics + the statistics and metadata inference needs.

A checkpoint directory holds `model.safetensors` and `world_model.json` (architecture, cameras, the image
size and proprio size of the training data, action/proprio statistics in OpenVLA's layout, latent
normalization, training horizon). Loading it and feeding episodes from other cameras, image sizes or robots
fails with `DataMismatchError` naming the difference.

Example:
    wm = WorldModel.load("outputs/wm")
    wm.prepare(episodes)                                  # latents + normalized proprio/actions
    state = wm.start_state(episodes[0], t=5)              # history ending at step 5
    out = wm.step(state, action)                          # next latent, proprio, success prob
    frames = wm.decode(out.latents)                       # {camera: uint8 (1, S, S, 3)}
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vla.core.statistics import DatasetStatistics
from world_model.config import WorldModelConfig
from world_model.data import DataMismatchError, WMEpisode, resize_frames, window_indices
from world_model.dynamics import ConvDynamics, LatentDynamics
from world_model.encoder import FrameAutoencoder
from world_model.success_head import StateSuccessHead

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
META = "world_model.json"


@dataclass
class RolloutState:
    """The model's context: the last `history` steps (normalized), batch B."""

    latents: torch.Tensor  # (B, H, N, D)
    proprio: torch.Tensor  # (B, H, P)
    action: torch.Tensor  # (B, H, 7); the last entry is set by `step`
    pad: int = 0  # leading entries that repeat the episode's first step (they take its action, as in training)


@dataclass
class StepOutput:
    latents: torch.Tensor  # (B, N, D) normalized
    proprio: np.ndarray  # (B, P) raw units
    norm_proprio: torch.Tensor  # (B, P) normalized (what a proprio-conditioned decoder takes)
    success_prob: np.ndarray  # (B,)
    reward: np.ndarray  # (B,)


class WorldModel(torch.nn.Module):
    def __init__(self, config: WorldModelConfig, *, proprio_dim: int, statistics: DatasetStatistics,
                 source_image_size: tuple[int, int], train_rollout_steps: int = 0, max_episode_length: int = 0,
                 success_pos_weight: float = 1.0, feature_dims: dict[str, int] | None = None):
        super().__init__()
        self.config = config
        self.proprio_dim = int(proprio_dim)  # the modelled state: the robot's proprio, then `feature_dims`
        self.feature_dims = {str(k): int(v) for k, v in (feature_dims or {}).items()}
        if list(self.feature_dims) != list(config.state_features):
            raise ValueError(f"feature sizes {self.feature_dims} do not match world_model.state_features "
                             f"{list(config.state_features)}")
        if sum(self.feature_dims.values()) > self.proprio_dim:
            raise ValueError(f"state features {self.feature_dims} exceed the state size {self.proprio_dim}")
        self.statistics = statistics
        self.source_image_size = tuple(int(v) for v in source_image_size)
        self.train_rollout_steps = int(train_rollout_steps)
        self.max_episode_length = int(max_episode_length)  # longest training episode: imagination beyond it warns
        # The success head is trained with positives weighted by this factor (success is rare), which raises its
        # logit by log(weight) wherever the outcome is uncertain; `success_probability` takes it back out, so
        # 0.5 means even odds (without it, drifting imagined states crossed 0.5 far too easily).
        self.success_pos_weight = float(success_pos_weight)
        #: The arithmetic of imagination on a CPU (`world_model.fast_step`): "float32", or "bfloat16" (dynamics and
        #: decoder, ~2x faster on CPUs with bfloat16 instructions; set it with `set_imagination_precision`).
        self.imagination_precision = "float32"
        self.autoencoder = FrameAutoencoder(config.enc_channels, config.latent_channels, len(config.cameras),
                                            decoder=config.decoder, dec_channels=config.dec_channels,
                                            dec_blocks=config.dec_blocks,
                                            proprio_dim=self.proprio_dim if config.proprio_decoder else 0,
                                            grid=config.latent_grid, proprio_conditioning=config.proprio_conditioning)
        num_tokens = len(config.cameras) * config.tokens_per_camera
        state_success = None
        if config.success_head in ("state", "lowdim"):
            state_success = StateSuccessHead(num_tokens if config.success_head == "state" else 0, config.token_dim,
                                             self.proprio_dim)
        elif config.success_head == "objects":  # the state features alone (they follow the robot's proprio)
            features = sum(self.feature_dims.values())
            state_success = StateSuccessHead(0, config.token_dim, features, start=self.proprio_dim - features)
        if config.dynamics == "conv":
            self.dynamics = ConvDynamics(len(config.cameras), config.latent_channels, config.latent_grid, config.patch,
                                         self.proprio_dim, config.history, channels=config.conv_channels,
                                         blocks=config.conv_blocks, state_success=state_success)
        else:
            self.dynamics = LatentDynamics(
                num_tokens=num_tokens, token_dim=config.token_dim,
                proprio_dim=self.proprio_dim, history=config.history, dim=config.dim, depth=config.depth,
                heads=config.heads, mlp_ratio=config.mlp_ratio, dropout=config.dropout, action_film=config.action_film,
                state_success=state_success,
            )
        self.register_buffer("latent_mean", torch.zeros(config.latent_channels))
        self.register_buffer("latent_std", torch.ones(config.latent_channels))

    # -- latents <-> tokens --------------------------------------------------------------------------------
    @property
    def cameras(self) -> list[str]:
        return list(self.config.cameras)

    @property
    def robot_proprio_dim(self) -> int:
        """Size of the robot's proprio, the part of the modelled state a policy observes."""
        return self.proprio_dim - sum(self.feature_dims.values())

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    def feature_slice(self, name: str) -> slice:
        """Where state feature `name` lies in the modelled state (raw or normalized proprio vectors)."""
        start = self.robot_proprio_dim
        for k, d in self.feature_dims.items():
            if k == name:
                return slice(start, start + d)
            start += d
        raise KeyError(f"{name!r} is not a state feature of this model (it has {list(self.feature_dims)})")

    def _to_tokens(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, cams, C, g, g) latent maps -> (B, cams * (g/p)^2, C*p*p) normalized tokens."""
        b, k, c, g, _ = maps.shape
        p = self.config.patch
        maps = (maps - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]
        x = maps.reshape(b, k, c, g // p, p, g // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(b, k * (g // p) ** 2, c * p * p)

    def _to_maps(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inverse of `_to_tokens`: (B, N, D) -> (B, cams, C, g, g) in encoder units."""
        b = tokens.shape[0]
        k, c, p, g = len(self.cameras), self.config.latent_channels, self.config.patch, self.config.latent_grid
        x = tokens.reshape(b, k, g // p, g // p, c, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, k, c, g, g)
        return x * self.latent_std[:, None, None] + self.latent_mean[:, None, None]

    @torch.no_grad()
    def encode(self, frames: dict[str, np.ndarray], batch_size: int = 256) -> torch.Tensor:
        """{camera: uint8 (T, S, S, 3) at the model size} -> normalized tokens (T, N, D)."""
        maps = []
        for c in self.cameras:
            x = torch.from_numpy(np.ascontiguousarray(frames[c])).permute(0, 3, 1, 2).float() / 255.0
            x = x.to(self.device)
            maps.append(torch.cat([self.autoencoder.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]))
        return self._to_tokens(torch.stack(maps, 1))

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, size: tuple[int, int] | None = None,
               proprio: torch.Tensor | np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Normalized tokens (B, N, D) -> {camera: uint8 (B, H, W, 3)}, resized to `size` if given.

        `proprio`: normalized (B, P), needed by a proprio-conditioned decoder (ignored otherwise). All
        cameras go through the decoder in one batch (one call per imagined step, not one per camera)."""
        maps = self._to_maps(tokens)  # (B, K, C, g, g)
        b, k = maps.shape[:2]
        cam = torch.arange(k, device=maps.device).repeat(b)
        prop = None
        if self.autoencoder.proprio_map is not None or self.autoencoder.proprio_field is not None:
            if proprio is None:
                raise ValueError("this world model's decoder is conditioned on proprio: pass decode(..., proprio=...)")
            prop = torch.as_tensor(np.asarray(proprio, np.float32) if not torch.is_tensor(proprio) else proprio).float()
            prop = prop.to(maps.device).reshape(b, -1).repeat_interleave(k, 0)
        img = self.autoencoder.decode(maps.flatten(0, 1), cam, prop)  # (B*K, 3, S, S)
        if size is not None and tuple(size) != tuple(img.shape[-2:]):
            img = torch.nn.functional.interpolate(img, size=tuple(size), mode="bilinear", align_corners=False)
        img = img.clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1).reshape(b, k, *img.shape[-2:], 3)
        arr = img.cpu().numpy()
        return {c: arr[:, i] for i, c in enumerate(self.cameras)}

    # -- data ----------------------------------------------------------------------------------------------
    def check_episode(self, ep: WMEpisode) -> None:
        """Raise DataMismatchError when an episode does not match what the model was trained on."""
        name = ep.metadata.episode_id or "<episode>"
        missing = [c for c in self.cameras if c not in ep.frames]
        if missing:
            raise DataMismatchError(f"episode {name!r} lacks cameras {missing}; the checkpoint was trained on {self.cameras}")
        if ep.source_size and tuple(ep.source_size) != (0, 0) and tuple(ep.source_size) != self.source_image_size:
            raise DataMismatchError(
                f"episode {name!r} has {tuple(ep.source_size)} images, the checkpoint was trained on "
                f"{self.source_image_size} images; collect data at that size or retrain on this data (wm-train)"
            )
        if dict(ep.feature_dims) != self.feature_dims:
            raise DataMismatchError(
                f"episode {name!r} carries state features {dict(ep.feature_dims)}, the checkpoint models "
                f"{self.feature_dims}; load episodes with state_features={list(self.feature_dims)}")
        if ep.proprio.shape[1] != self.proprio_dim:
            raise DataMismatchError(
                f"episode {name!r} has proprio of size {ep.proprio.shape[1]}, the checkpoint expects {self.proprio_dim}"
            )

    def norm_proprio(self, p: np.ndarray) -> np.ndarray:
        if self.proprio_dim == 0 or self.statistics.proprio is None:
            return np.zeros((*p.shape[:-1], 0), np.float32)
        return self.statistics.proprio.normalize(p)

    def unnorm_proprio(self, p: np.ndarray) -> np.ndarray:
        if self.proprio_dim == 0 or self.statistics.proprio is None:
            return np.zeros((*p.shape[:-1], 0), np.float32)
        return self.statistics.proprio.unnormalize(np.clip(p, -1, 1))

    def norm_action(self, a: np.ndarray) -> np.ndarray:
        return self.statistics.action.normalize(np.asarray(a, np.float32))

    def actions_in_range(self, actions: np.ndarray, margin: float = 0.05) -> np.ndarray:
        """Raw actions (T, 7) -> (T,) bool: every dimension within the training actions' [min, max], widened by
        `margin` x that range. No training data shows what an action outside it does, so what the model
        predicts after it is extrapolation (the reason a random policy can "succeed" in imagination)."""
        st = self.statistics.action
        lo, hi = np.asarray(st.min, np.float64), np.asarray(st.max, np.float64)
        pad = margin * (hi - lo)
        a = np.asarray(actions, np.float64).reshape(-1, lo.shape[0])
        return np.all((a >= lo - pad - 1e-9) & (a <= hi + pad + 1e-9), axis=1)

    def _latents_key(self) -> tuple:
        """Whose latents an episode caches: this model (not a copy of it) with these encoder weights. Another
        model's latents live in another space: an ensemble's members, or two checkpoints compared on the same
        episodes, must each encode them (a shared cache once gave every member the first one's latents)."""
        token = self.__dict__.setdefault("_latents_token", object())
        versions = sum(t._version for t in (*self.autoencoder.parameters(), self.latent_mean, self.latent_std))
        return token, versions

    def prepare(self, episodes: list[WMEpisode]) -> None:
        """Encode frames and normalize proprio/actions of each episode (in place; cached on the episode for
        this model, see `_latents_key`)."""
        key = self._latents_key()
        for ep in episodes:
            self.check_episode(ep)
            if ep.latents is None or ep.latents_key != key:
                ep.latents = self.encode(ep.frames).cpu().numpy()
                ep.latents_key = key
            ep.norm_proprio = self.norm_proprio(ep.proprio)
            ep.norm_action = self.norm_action(ep.action)

    # -- dynamics ------------------------------------------------------------------------------------------
    def start_state(self, ep: WMEpisode, t: int = 0) -> RolloutState:
        """Context ending at step t of a prepared episode (steps before 0 repeat step 0, as in training)."""
        if ep.latents is None or ep.latents_key != self._latents_key():
            self.prepare([ep])
        if not 0 <= t < len(ep):
            raise IndexError(f"start step {t} is outside episode {ep.metadata.episode_id!r} of {len(ep)} steps")
        h = self.config.history
        idx = window_indices(len(ep), t - h + 1, h)
        return RolloutState(
            latents=torch.from_numpy(ep.latents[idx])[None].float(),
            proprio=torch.from_numpy(ep.norm_proprio[idx])[None].float(),
            action=torch.from_numpy(ep.norm_action[idx])[None].float(),
            pad=max(h - 1 - t, 0),
        )

    @torch.inference_mode()
    def step(self, state: RolloutState, action: np.ndarray, dynamics=None) -> tuple[RolloutState, StepOutput]:
        """Apply raw actions (B, 7) at the last context step; return the shifted context and the prediction.

        `dynamics` (normalized latents, proprio, actions of the context) -> (next latents, next proprio, success
        logit, reward) of the last step replaces the eager `self.dynamics` (`world_model.fast_step` passes its
        traced graph)."""
        a = torch.from_numpy(self.norm_action(np.asarray(action, np.float32).reshape(-1, 7))).to(state.action.device)
        act = state.action.clone()
        act[:, -1] = a
        if state.pad and state.pad == act.shape[1] - 1:
            # The context is step 0 repeated: the repeats carry step 0's action, as in training windows.
            act[:, : state.pad] = a[:, None]
        if dynamics is None:
            out = self.dynamics(state.latents, state.proprio, act, last_only=True)
            z, p, logit, reward = out["latents"][:, -1], out["proprio"][:, -1], out["success_logit"][:, -1], out["reward"][:, -1]
        else:
            z, p, logit, reward = dynamics(state.latents, state.proprio, act)
        new_state = RolloutState(
            latents=torch.cat([state.latents[:, 1:], z[:, None]], 1),
            proprio=torch.cat([state.proprio[:, 1:], p[:, None]], 1),
            action=torch.cat([act[:, 1:], act[:, -1:]], 1),
            pad=max(state.pad - 1, 0),
        )
        return new_state, StepOutput(
            latents=z, proprio=self.unnorm_proprio(p.float().cpu().numpy()), norm_proprio=p,
            success_prob=self.success_probability(logit), reward=reward.float().cpu().numpy(),
        )

    def set_imagination_precision(self, precision: str) -> "WorldModel":
        """Imagine in "float32" (default) or "bfloat16" (`imagine`, `imagine_batch`, `compare_policies` on a CPU):
        bfloat16 runs the dynamics under autocast and decodes with a bfloat16 copy of the decoder, keeping the
        rollout state in float32. Measured: bench/results/world_model_speed.json (speed), docs/world_model.md
        (how far verdicts move). Training is unaffected."""
        from world_model.fast_step import PRECISIONS

        if precision not in PRECISIONS:
            raise ValueError(f"imagination precision must be one of {list(PRECISIONS)}, got {precision!r}")
        self.imagination_precision = precision
        return self

    def success_probability(self, logit: torch.Tensor) -> np.ndarray:
        """Calibrated success probability from the head's logit (undoes the positive weighting of training)."""
        return torch.sigmoid(logit.float() - math.log(self.success_pos_weight)).cpu().numpy()

    # -- save / load ---------------------------------------------------------------------------------------
    def metadata(self) -> dict:
        return {
            "config": dataclasses.asdict(self.config),
            "proprio_dim": self.proprio_dim,
            "statistics": self.statistics.to_dict(),
            "source_image_size": list(self.source_image_size),
            "train_rollout_steps": self.train_rollout_steps,
            "max_episode_length": self.max_episode_length,
            "success_pos_weight": self.success_pos_weight,
            "feature_dims": self.feature_dims,
            "format": 2,
        }

    def save(self, directory: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(d / WEIGHTS))
        (d / META).write_text(json.dumps(self.metadata(), indent=1))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "WorldModel":
        from safetensors.torch import load_file

        d = Path(directory)
        if (d / "latest").is_dir() and not (d / META).is_file():
            d = d / "latest"
        if not (d / META).is_file() or not (d / WEIGHTS).is_file():
            raise FileNotFoundError(
                f"{directory} is not a world-model checkpoint (needs {META} and {WEIGHTS}); "
                "pass the output_dir of wm-train or its 'latest' subdirectory"
            )
        meta = json.loads((d / META).read_text())
        if meta.get("format", 1) < 2:  # format 1 had the conv decoder and no action FiLM
            meta["config"].update(decoder="conv", action_film=False, proprio_decoder=False)
        meta["config"].setdefault("success_head", "features")  # checkpoints from before the option
        cfg = WorldModelConfig(**meta["config"])
        model = cls(cfg, proprio_dim=meta["proprio_dim"], statistics=DatasetStatistics.from_dict(meta["statistics"]),
                    source_image_size=tuple(meta["source_image_size"]),
                    train_rollout_steps=meta.get("train_rollout_steps", 0),
                    max_episode_length=meta.get("max_episode_length", 0),
                    success_pos_weight=meta.get("success_pos_weight", 1.0),
                    feature_dims=meta.get("feature_dims", {}))
        model.load_state_dict(load_file(str(d / WEIGHTS)))
        model.eval()
        return model


def to_model_frames(images: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """{camera: uint8 (H, W, 3) or (T, H, W, 3)} -> same at the model's internal size, with a time axis."""
    return {c: resize_frames(v[None] if v.ndim == 3 else v, size) for c, v in images.items()}
