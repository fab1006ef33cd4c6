"""Policy variants for ranking tests, built from short specs (config-friendly strings).

Spec grammar: `kind[:key=value,key=value...]`
    servo:gain=0.6,noise=0.0,bias=0.0   pixel-based visual servo (SquareWorld, `world_model.toy`)
    random:scale=0.05                    uniform random actions
    vla:path=outputs/vla,noise=0.01      a VLA checkpoint (`vla.model.policy.VLAPolicy`), optionally with
                                         injected Gaussian action noise and `novision=1` (blank images)
    noop                                 zero motion, gripper open
Any spec takes `noise=` (Gaussian on dx,dy,dz, metres) and `novision=1` as wrappers, and `name=` to label it.
"""

from __future__ import annotations

import numpy as np

from vla.core.types import Observation, Policy, validate_action


class NoisyPolicy(Policy):
    """Adds Gaussian noise to the translation part of another policy's actions (a degraded variant)."""

    def __init__(self, base: Policy, noise: float, seed: int = 0):
        self.base, self.noise, self._seed = base, float(noise), seed
        self.chunk_size, self.cameras = base.chunk_size, base.cameras
        self._rng = np.random.default_rng(seed)

    def reset(self, instruction: str) -> None:
        self._rng = np.random.default_rng(self._seed)
        self.base.reset(instruction)

    def act(self, observation: Observation) -> np.ndarray:
        a = validate_action(self.base.act(observation)).copy()
        a[..., :3] += self._rng.normal(0, self.noise, a[..., :3].shape)
        return a


class NoVisionPolicy(Policy):
    """Shows the wrapped policy black images (the no-vision baseline)."""

    def __init__(self, base: Policy):
        self.base, self.chunk_size, self.cameras = base, base.chunk_size, base.cameras

    def reset(self, instruction: str) -> None:
        self.base.reset(instruction)

    def act(self, observation: Observation) -> np.ndarray:
        blank = {k: np.zeros_like(v) for k, v in observation.images.items()}
        return self.base.act(Observation(blank, observation.proprio, observation.instruction, observation.timestamp))


class NoOpPolicy(Policy):
    def act(self, observation: Observation) -> np.ndarray:
        a = np.zeros(7, np.float32)
        a[6] = 1.0
        return a


def _parse(spec: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = spec.partition(":")
    args = {}
    for part in filter(None, rest.split(",")):
        k, eq, v = part.partition("=")
        if not eq:
            raise ValueError(f"policy spec {spec!r}: expected key=value, got {part!r}")
        args[k.strip()] = v.strip()
    return kind.strip(), args


def make_policy(spec: str, seed: int = 0) -> tuple[str, Policy]:
    """Build (name, policy) from a spec string (see the module docstring)."""
    kind, args = _parse(spec)
    name = args.pop("name", spec)
    noise = float(args.pop("noise", 0.0))
    novision = args.pop("novision", "0") in ("1", "true", "True")
    pseed = int(args.pop("seed", seed))
    if kind == "servo":
        from world_model.toy import VisualServoPolicy

        policy: Policy = VisualServoPolicy(gain=float(args.pop("gain", 0.6)), bias=float(args.pop("bias", 0.0)), seed=pseed)
    elif kind == "random":
        from world_model.toy import RandomPolicy

        policy = RandomPolicy(scale=float(args.pop("scale", 0.05)), seed=pseed)
    elif kind == "noop":
        policy = NoOpPolicy()
    elif kind == "vla":
        from vla.model.policy import VLAPolicy

        if "path" not in args:
            raise ValueError(f"policy spec {spec!r}: vla needs path=<checkpoint dir>")
        policy = VLAPolicy.from_pretrained(args.pop("path"), unnorm_key=args.pop("unnorm_key", None) or None)
    else:
        raise ValueError(f"unknown policy kind {kind!r} in {spec!r}; choose servo, random, noop or vla")
    if args:
        raise ValueError(f"policy spec {spec!r}: unknown keys {sorted(args)} for kind {kind!r}")
    if novision:
        policy = NoVisionPolicy(policy)
    if noise > 0:
        policy = NoisyPolicy(policy, noise, seed=pseed)
    return name, policy
