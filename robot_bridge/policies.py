"""Build the policy the bridge runs from config: a VLA checkpoint, a remote server, or a test policy.

Kinds (`bridge policy=<kind>`, schema `PolicyConfig`):
  vla      `vla.model.policy.VLAPolicy.from_pretrained(path)` in this process
  remote   `RemotePolicy(host, port, timeout_s)` against `vla-bridge role=policy_server`
  callable "module:function" returning a `vla.Policy` (e.g. your own wrapper), called with `kwargs`
  random   small random actions (seeded), to exercise the loop and the safety layer without a model
  tiny_cnn a small torch CNN (conv + MLP over the primary image and proprio), untrained, for latency tests
  tiny_vla the project's tiny VLA preset with random weights (`vla.model.presets.build_model("tiny")`) and
           synthetic action statistics: the real inference path at toy size, for latency tests
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.core.types import Observation, Policy

logger = logging.getLogger(__name__)

POLICY_KINDS = ("vla", "remote", "callable", "random", "tiny_cnn", "tiny_vla")


@dataclass
class PolicyConfig:
    kind: str = "random"
    path: str = ""  # vla: checkpoint directory
    unnorm_key: str | None = None
    device: str = "cpu"
    host: str = "127.0.0.1"  # remote
    port: int = 5555
    timeout_s: float = 0.5
    target: str = ""  # callable: "module:function"
    kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    scale: float = 0.01  # random: std of the translation deltas (m)
    torch_threads: int = 0  # >0: torch.set_num_threads for this process (small models on a busy CPU: 1)

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"bridge policy.kind={self.kind!r}; choose one of {POLICY_KINDS}")
        if self.kind == "vla" and not self.path:
            raise ValueError("policy.kind=vla needs policy.path=<checkpoint directory> (nothing downloads)")
        if self.kind == "callable" and ":" not in self.target:
            raise ValueError("policy.kind=callable needs policy.target='package.module:function'")


class RandomPolicy(Policy):
    """Gaussian end-effector deltas, gripper uniform in [0, 1]; seeded, so runs repeat."""

    def __init__(self, seed: int = 0, scale: float = 0.01, cameras: tuple[str, ...] = ("primary",)):
        self.rng = np.random.default_rng(seed)
        self.scale = scale
        self.cameras = cameras

    def act(self, observation: Observation) -> np.ndarray:
        a = self.rng.normal(0, self.scale, 7).astype(np.float32)
        a[3:6] *= 5
        a[6] = self.rng.uniform(0, 1)
        return a


class TinyCNNPolicy(Policy):
    """A small untrained torch policy: 3 strided convs + MLP on the primary image and proprio (~50k params)."""

    def __init__(self, seed: int = 0, proprio_dim: int = 0):
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.torch = torch
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 + proprio_dim, 64), nn.ReLU(), nn.Linear(64, 7))
        self.proprio_dim = proprio_dim

    def act(self, observation: Observation) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            img = torch.from_numpy(observation.images["primary"]).permute(2, 0, 1)[None].float() / 255.0  # (1,3,H,W)
            feat = self.net(img)  # (1, 32)
            p = torch.from_numpy(observation.proprio[: self.proprio_dim].astype(np.float32))[None]
            if p.shape[1] < self.proprio_dim:
                p = torch.nn.functional.pad(p, (0, self.proprio_dim - p.shape[1]))
            out = self.head(torch.cat([feat, p], dim=1))[0].numpy()  # (7,)
        a = np.tanh(out).astype(np.float32) * 0.01
        a[6] = 1.0 / (1.0 + np.exp(-out[6]))
        return a


def tiny_vla_policy(seed: int = 0) -> Policy:
    """The tiny VLA preset, randomly initialized, with synthetic statistics (latency tests only)."""
    from vla.core.statistics import ArrayStatistics, DatasetStatistics
    from vla.model.policy import VLAPolicy
    from vla.model.presets import build_model

    model, processor = build_model("tiny", seed=seed)
    rng = np.random.default_rng(seed)
    stats = DatasetStatistics(action=ArrayStatistics.compute(rng.normal(0, 0.005, (100, 7)), mask=[True] * 6 + [False]))
    return VLAPolicy(model, processor, norm_stats={"synthetic": stats.to_dict()})


def make_policy(cfg: PolicyConfig) -> Policy:
    if cfg.torch_threads > 0:
        # Intra-op threads fighting other processes for few cores cost far more than they give a small
        # model: tiny_cnn measured 281 ms (2 threads) vs 6 ms (1 thread) per action on a loaded 2-core box.
        import torch

        torch.set_num_threads(cfg.torch_threads)
    if cfg.kind == "vla":
        from vla.model.policy import VLAPolicy  # the model helper's inference wrapper

        return VLAPolicy.from_pretrained(cfg.path, unnorm_key=cfg.unnorm_key, device=cfg.device)
    if cfg.kind == "remote":
        from robot_bridge.policy_server import RemotePolicy

        return RemotePolicy(cfg.host, cfg.port, timeout_s=cfg.timeout_s)
    if cfg.kind == "callable":
        from robot_bridge.commands import load_callable

        policy = load_callable(cfg.target)(**cfg.kwargs)
        if not isinstance(policy, Policy):
            raise TypeError(f"{cfg.target} returned {type(policy).__name__}, not a vla.Policy")
        return policy
    if cfg.kind == "tiny_vla":
        return tiny_vla_policy(seed=cfg.seed)
    if cfg.kind == "tiny_cnn":
        return TinyCNNPolicy(seed=cfg.seed, **cfg.kwargs)
    return RandomPolicy(seed=cfg.seed, scale=cfg.scale)
