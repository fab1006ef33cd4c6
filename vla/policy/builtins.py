"""The policy kinds `vla` itself provides (see `vla.policy.registry` for the grammar)."""

from __future__ import annotations

import importlib
import time
from typing import Callable

import numpy as np

from vla.core.types import Policy
from vla.policy.baselines import NoOpPolicy, RandomPolicy
from vla.policy.registry import PolicyContext, PolicyOptions, PolicySpecError, register_policy
from vla.policy.wrappers import PolicyWrapper


@register_policy("vla", options=("path", "unnorm_key", "device", "dtype", "center_crop", "unknown_words", "base"),
                 summary="a checkpoint directory (vla-train / vla-import output); a bare directory means the same; "
                         "a LoRA adapter directory runs on its base (base=<dir>, default: the one it records)")
def _vla(opts: PolicyOptions, ctx: PolicyContext) -> Policy:
    from vla.data.statistics import UNKNOWN_WORDS

    unknown_words = opts.str("unknown_words", "warn")
    if unknown_words not in UNKNOWN_WORDS:  # checked before the checkpoint loads
        raise PolicySpecError(f"policy spec {opts.spec}: unknown_words={unknown_words!r}; choose one of "
                              f"{list(UNKNOWN_WORDS)} (warn: one warning per instruction with words the checkpoint "
                              "never saw, error: refuse it, ignore: run silently)")
    from vla.model.policy import VLAPolicy  # torch + transformers only when a checkpoint is asked for

    path = opts.require("path", "checkpoint directory")
    kwargs = {"unnorm_key": opts.str("unnorm_key") or ctx.unnorm_key, "device": opts.str("device", ctx.device),
              "dtype": opts.str("dtype"), "center_crop": opts.bool("center_crop", False), "unknown_words": unknown_words}
    if _is_adapter_dir(path):
        return _adapter_policy(path, opts.str("base"), **kwargs)
    return VLAPolicy.from_pretrained(path, **kwargs)


def _is_adapter_dir(path: str) -> bool:
    from pathlib import Path

    p = Path(path).expanduser()
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def _adapter_policy(path: str, base: str | None, *, unnorm_key, device, dtype, center_crop, unknown_words) -> Policy:
    """A LoRA adapter (vla-train trainer=lora) attached to its base, un-normalizing with the adapter's statistics;
    refused on a base other than the one it was trained on (vla.train.compat)."""
    import json
    from pathlib import Path

    from peft import PeftModel

    from vla.model.policy import VLAPolicy, load_checkpoint
    from vla.train.compat import check_adapter_base

    adapter = Path(path).expanduser()
    base_dir = Path(base or json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path") or "")
    if not (base_dir / "config.json").is_file():
        raise PolicySpecError(f"LoRA adapter {str(adapter)!r}: its base {str(base_dir)!r} is not a checkpoint directory; "
                              "give it: vla:path=<adapter>,base=<base checkpoint dir> (or merge it: vla-merge)")
    check_adapter_base(adapter, base_dir)
    model, processor = load_checkpoint(base_dir, device=device, dtype=dtype)
    model = PeftModel.from_pretrained(model, str(adapter)).get_base_model().eval()  # LoRA layers injected in place
    stats = json.loads((adapter / "dataset_statistics.json").read_text())
    return VLAPolicy(model.to(device), processor, unnorm_key=unnorm_key, norm_stats=stats, center_crop=center_crop,
                     unknown_words=unknown_words)


@register_policy("random", options=("scale", "rot_scale"),
                 summary="uniform random actions: in the task's action bounds, or translation +-scale m and "
                         "rotation +-rot_scale rad; gripper open/closed at p=0.5 (chance level)")
def _random(opts: PolicyOptions, ctx: PolicyContext) -> Callable[[], Policy]:
    if opts.has("scale") or opts.has("rot_scale"):
        scale, rot = opts.float("scale", 0.0), opts.float("rot_scale", 0.0)
        low, high = -np.array([scale] * 3 + [rot] * 3), np.array([scale] * 3 + [rot] * 3)
    elif ctx.action_bounds is not None:
        low, high = ctx.action_bounds() if callable(ctx.action_bounds) else ctx.action_bounds
    else:
        raise PolicySpecError(f"policy spec {opts.spec}: random needs bounds; give scale=<m>[,rot_scale=<rad>] "
                              "(this command knows no task action bounds)")
    counter = iter(range(1 << 30))
    return lambda: RandomPolicy(low, high, seed=ctx.seed + next(counter))


@register_policy("noop", summary="zero motion, gripper open")
def _noop(opts: PolicyOptions, ctx: PolicyContext) -> Policy:
    return NoOpPolicy()


@register_policy("callable", options=("target", "kwargs"),
                 summary="target=package.module:function returning a vla.Policy (your own wrapper), called with kwargs")
def _callable(opts: PolicyOptions, ctx: PolicyContext) -> Policy:
    target = opts.require("target", "package.module:function")
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise PolicySpecError(f"policy spec {opts.spec}: target={target!r} must be 'package.module:function'")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise PolicySpecError(f"policy spec {opts.spec}: cannot load {target!r}: {e}") from None
    policy = fn(**dict(opts.raw("kwargs", {}) or {}))
    if not isinstance(policy, Policy):
        raise PolicySpecError(f"{target} returned {type(policy).__name__}, not a vla.Policy")
    return policy


@register_policy("tiny_vla", options=("action_chunk", "latency_ms"),
                 summary="the tiny VLA preset with random weights and synthetic statistics (latency tests); "
                         "action_chunk=K>1: K-action chunks by parallel decoding (OpenVLA-OFT style); "
                         "latency_ms: each call also waits that long (a bigger model, or one on a remote GPU)")
def _tiny_vla(opts: PolicyOptions, ctx: PolicyContext) -> Policy:
    policy = tiny_vla_policy(seed=ctx.seed, action_chunk=opts.int("action_chunk", 1))
    latency = opts.float("latency_ms", 0.0)
    return _Delayed(policy, latency / 1e3) if latency > 0 else policy


class _Delayed(PolicyWrapper):
    """`base`, answering `seconds` later (waiting without using the CPU, like a remote server would)."""

    def __init__(self, base: Policy, seconds: float) -> None:
        super().__init__(base)
        self.seconds = seconds

    def act_batch(self, observations):
        out = self.base.act_batch(list(observations))
        time.sleep(self.seconds)
        return out


def tiny_vla_policy(seed: int = 0, action_chunk: int = 1) -> Policy:
    """The tiny VLA preset, randomly initialized, with synthetic statistics: the real inference path at toy size.
    `action_chunk` > 1 predicts chunks of that many actions (the preset's parallel decoding)."""
    from vla.core.statistics import ArrayStatistics, DatasetStatistics
    from vla.model.policy import VLAPolicy
    from vla.model.presets import build_model

    chunked = {"decoding": "parallel", "action_chunk": action_chunk} if action_chunk > 1 else {}
    model, processor = build_model("tiny", seed=seed, **chunked)
    rng = np.random.default_rng(seed)
    stats = DatasetStatistics(action=ArrayStatistics.compute(rng.normal(0, 0.005, (100, 7)), mask=[True] * 6 + [False]))
    return VLAPolicy(model, processor, norm_stats={"synthetic": stats.to_dict()})
