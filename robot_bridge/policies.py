"""The policy the bridge runs, named in its config and built by vla's one policy registry.

`PolicyConfig` (hydra structured, `vla-bridge policy.kind=vla policy.path=...`) is the bridge's spelling of a
`vla.policy` spec: `PolicyConfig.spec()` is the mapping `{kind: ..., option: value}` that
`vla.policy.make_policy` builds, so the bridge, `vla-eval` and `wm-eval` share one grammar and one set of kinds.

Kinds (`policy.kind=<kind>`, with the `policy.*` fields each reads):
  vla      (vla)  a checkpoint directory: path, unnorm_key, device
  remote   (here) `RemotePolicy` against `vla-bridge role=policy_server`: host, port, timeout_s
  callable (vla)  target="package.module:function" returning a `vla.Policy` (your own wrapper), called with kwargs
  random   (vla)  uniform random actions (seeded): translation +-scale m, rotation +-5*scale rad, gripper
                  open/closed; exercises the loop and the safety layer without a model
  tiny_cnn (here) a small untrained torch CNN over the primary image and proprio, for latency tests: kwargs
                  {proprio_dim: N}
  tiny_vla (vla)  the tiny VLA preset with random weights and synthetic statistics: the real inference path at
                  toy size, for latency tests: kwargs {action_chunk: K} for K-action chunks
`seed` and `device` go to the builder through `PolicyContext`. `remote` and `tiny_cnn` are registered with
`vla.policy.register_policy` when `robot_bridge` is imported, so any process that imports it can name them
in a text spec too (`remote:host=gpu-box,port=5555`).

Why `policy.kind=vla policy.path=DIR` and not `policy=vla:path=DIR`: `policy` is a structured node, and hydra
refuses a string for it (a string-typed field would lose the typed schema that checks every `policy.*` key and
names the closest valid one). The text form of the same spec is what the other commands take.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.core.types import Observation, Policy
from vla.policy import PolicyContext, PolicyOptions, make_policy, register_policy

logger = logging.getLogger(__name__)

#: The `PolicyConfig` fields each kind reads (beyond `kind`, `seed`, `device`, `torch_threads`).
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "vla": ("path", "unnorm_key"),
    "remote": ("host", "port", "timeout_s"),
    "callable": ("target", "kwargs"),
    "random": ("scale",),
    "tiny_cnn": ("kwargs",),
    "tiny_vla": ("kwargs",),
}
POLICY_KINDS = tuple(KIND_FIELDS)
#: `random`'s rotation bound per unit of its translation bound (the bridge's random policy always had it).
RANDOM_ROTATION_RATIO = 5.0


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
    kwargs: dict[str, Any] = field(default_factory=dict)  # callable: its arguments; tiny_cnn: {proprio_dim: N}; tiny_vla: {action_chunk: K}
    seed: int = 0
    scale: float = 0.01  # random: translation in +-scale m, rotation in +-5*scale rad per step
    torch_threads: int = 0  # >0: torch.set_num_threads for this process (small models on a busy CPU: 1)

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"bridge policy.kind={self.kind!r}; choose one of {POLICY_KINDS}")
        if self.kind == "vla" and not self.path:
            raise ValueError("policy.kind=vla needs policy.path=<checkpoint directory> (nothing downloads)")
        if self.kind == "callable" and ":" not in self.target:
            raise ValueError("policy.kind=callable needs policy.target='package.module:function'")

    def spec(self) -> dict[str, Any]:
        """The `vla.policy` spec mapping of this config (only the fields its kind reads)."""
        spec: dict[str, Any] = {"kind": self.kind}
        if self.kind == "random":
            spec.update(scale=self.scale, rot_scale=RANDOM_ROTATION_RATIO * self.scale)
        elif self.kind in ("tiny_cnn", "tiny_vla"):
            spec.update(self.kwargs)
        else:
            spec.update({f: getattr(self, f) for f in KIND_FIELDS[self.kind]})
        return spec

    def context(self) -> PolicyContext:
        return PolicyContext(device=self.device, seed=self.seed)


def build_policy(cfg: PolicyConfig) -> Policy:
    """The policy `cfg` names, after setting this process's torch threads when asked."""
    if cfg.torch_threads > 0:
        # Intra-op threads fighting other processes for few cores cost far more than they give a small
        # model: tiny_cnn measured 281 ms (2 threads) vs 6 ms (1 thread) per action on a loaded 2-core box.
        import torch

        torch.set_num_threads(cfg.torch_threads)
    return make_policy(cfg.spec(), cfg.context())[1]


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


@register_policy("remote", options=("host", "port", "timeout_s"),
                 summary="a policy served by `vla-bridge role=policy_server` (TCP, JSON + raw bytes)")
def _remote(opts: PolicyOptions, ctx: PolicyContext) -> Policy:
    from vla.serving.policy_server import RemotePolicy

    return RemotePolicy(opts.str("host", PolicyConfig.host), opts.int("port", PolicyConfig.port),
                        timeout_s=opts.float("timeout_s", PolicyConfig.timeout_s))


@register_policy("tiny_cnn", options=("proprio_dim",),
                 summary="a small untrained torch CNN over the primary image and proprio (latency tests)")
def _tiny_cnn(opts: PolicyOptions, ctx: PolicyContext) -> Policy:
    return TinyCNNPolicy(seed=ctx.seed, proprio_dim=opts.int("proprio_dim", 0))
