"""One way to name a policy, for every command: the spec grammar and the registry of policy kinds.

Grammar (`vla-eval policy=...`, `wm-eval policies=[...]`, `wm-viz policy=...`, `vla-bridge policy=...`):

    kind[:key=value,key=value,...]        e.g.  vla:path=outputs/train/final,unnorm_key=sim_liftcube
                                                random:scale=0.05
    <checkpoint directory>                shorthand for vla:path=<directory>

Options may also be separated by `;` (hydra splits list overrides at commas: `policies=[vla:path=a;noise=0.02]`).
The same spec as a mapping, for hydra structured configs: `{kind: vla, path: outputs/train/final}`.

Options every kind takes (applied by the registry, around what the kind builds):
    name=<label>      the name in results (default: the spec as written)
    seed=<int>        the policy's own random seed (default: the caller's)
    noise=<metres>    Gaussian noise on dx, dy, dz of every action (a degraded variant)
    blank_images=1    the policy sees black images (the no-vision ablation of a visual policy)
    instruction=<text> the policy always reads this instruction (the blind-language baseline)

`vla` registers the kinds that need nothing but `vla` (`vla`, `random`, `noop`, `callable`, `tiny_vla`);
packages register their own when imported (`sim_envs`: `expert`, `no_vision`; `world_model`: `servo`;
`robot_bridge`: `remote`, `tiny_cnn`), so `vla` imports none of them. LeRobot's `policies/factory.py` is
the model: one factory, kinds looked up by name.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from vla.core.types import Policy

logger = logging.getLogger(__name__)

#: What a builder may return: one policy, or a zero-argument factory of fresh instances (for policies that
#: keep per-episode state and run in several envs at once).
PolicySource = Union[Policy, Callable[[], Policy]]
COMMON_OPTIONS = ("name", "seed", "noise", "blank_images", "instruction")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class PolicySpecError(ValueError):
    """A policy spec that cannot be built (unknown kind or option, bad value); the message says the fix."""


@dataclass(frozen=True)
class PolicySpec:
    """A parsed spec: the kind and its options (strings when parsed from text, typed from a mapping)."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def name(self) -> str:
        return str(self.options.get("name") or self.text or self.kind)

    def __str__(self) -> str:
        return self.text or format_spec(self.kind, self.options)


def format_spec(kind: str, options: Mapping[str, Any]) -> str:
    return kind + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")


def parse_policy_spec(spec: "str | Path | Mapping[str, Any] | PolicySpec") -> PolicySpec:
    """Parse a spec string, mapping or `PolicySpec` (see the module docstring)."""
    if isinstance(spec, PolicySpec):
        return spec
    if isinstance(spec, Mapping):
        options = {str(k): v for k, v in spec.items() if v is not None}
        kind = str(options.pop("kind", "") or "")
        if not kind:
            raise PolicySpecError(f"policy spec {dict(spec)!r} has no 'kind'; choose one of {sorted(_REGISTRY)}")
        return PolicySpec(kind, options, format_spec(kind, options))
    text = str(spec).strip()
    if not text:
        raise PolicySpecError(f"empty policy spec; choose one of {sorted(_REGISTRY)} or a checkpoint directory")
    kind, sep, rest = text.partition(":")
    if not sep and kind not in _REGISTRY and (Path(text).expanduser().is_dir() or "/" in text or text.startswith(".")):
        return PolicySpec("vla", {"path": text}, text)
    options: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.replace(";", ",").split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise PolicySpecError(f"policy spec {text!r}: expected key=value, got {part!r}")
        options[key.strip()] = value.strip()
    return PolicySpec(kind.strip(), options, text)


class PolicyOptions:
    """A spec's options as a builder reads them: typed getters, and a check that each is known."""

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self._values = dict(spec.options)

    def _take(self, key: str) -> Any:
        return self._values.get(key)

    def has(self, key: str) -> bool:
        return key in self._values

    def str(self, key: str, default: str | None = None) -> str | None:
        v = self._take(key)
        return default if v is None else str(v)

    def require(self, key: str, what: str) -> str:
        v = self._take(key)
        if v in (None, ""):
            raise PolicySpecError(f"policy spec {self.spec}: kind {self.spec.kind!r} needs {key}=<{what}>")
        return str(v)

    def float(self, key: str, default: float) -> float:
        return self._convert(key, default, float, "a number")

    def int(self, key: str, default: int) -> int:
        return self._convert(key, default, int, "an integer")

    def bool(self, key: str, default: bool = False) -> bool:
        v = self._take(key)
        if v is None:
            return default
        if isinstance(v, bool):
            return v
        if str(v).lower() in _TRUE:
            return True
        if str(v).lower() in _FALSE:
            return False
        raise PolicySpecError(f"policy spec {self.spec}: {key}={v!r} must be 1/0 (true/false)")

    def raw(self, key: str, default: Any = None) -> Any:
        v = self._take(key)
        return default if v is None else v

    def _convert(self, key: str, default, cast, what: str):
        v = self._take(key)
        if v is None or v == "":
            return default
        try:
            return cast(v)
        except (TypeError, ValueError):
            raise PolicySpecError(f"policy spec {self.spec}: {key}={v!r} must be {what}") from None

    def check_known(self, valid: Sequence[str]) -> None:
        """Raise naming every option that is neither the kind's nor common, with the closest valid one."""
        unknown = [k for k in self._values if k not in valid and k not in COMMON_OPTIONS]
        if unknown:
            choices = sorted(set(valid) | set(COMMON_OPTIONS))
            parts = [k + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(k, choices, n=1)) else "")
                     for k in unknown]
            raise PolicySpecError(f"policy spec {self.spec}: kind {self.spec.kind!r} has no option {', '.join(parts)}; "
                                  f"it takes {choices}")


@dataclass
class PolicyContext:
    """What the calling command knows that a builder may need; builders read only what they use."""

    device: str = "cpu"
    seed: int = 0
    #: gymnasium ids of the tasks the policy will run on (sim baselines read their action bounds / experts).
    tasks: tuple[str, ...] = ()
    #: RLDS dataset directories (the no-vision baseline replays their mean trajectory).
    datasets: tuple[str, ...] = ()
    #: statistics key of a multi-dataset checkpoint (used when the spec does not name one).
    unnorm_key: str | None = None
    #: (low, high) (6,) end-effector delta bounds for `random`, or a function returning them (None: scale).
    action_bounds: Any = None
    #: anything else a package's own kinds need.
    extras: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[PolicyOptions, PolicyContext], PolicySource]


@dataclass(frozen=True)
class PolicyKind:
    """One registered kind: how to build it, its options (for errors and `describe_policies`), a summary."""

    kind: str
    builder: Builder
    options: tuple[str, ...]
    summary: str
    package: str


_REGISTRY: dict[str, PolicyKind] = {}


def register_policy(kind: str, *, options: Sequence[str] = (), summary: str = "") -> Callable[[Builder], Builder]:
    """Decorator registering `builder(options, context) -> Policy | factory` under `kind`.

    A package registers its kinds at import; registering a kind twice from different modules is an error
    (two meanings of one name), re-registering from the same module (a reload) replaces it.
    """

    def deco(builder: Builder) -> Builder:
        old = _REGISTRY.get(kind)
        if old is not None and old.package != builder.__module__:
            raise ValueError(f"policy kind {kind!r} is registered by {old.package} already; choose another name")
        _REGISTRY[kind] = PolicyKind(kind, builder, tuple(options), summary, builder.__module__)
        return builder

    return deco


def registered_policies() -> dict[str, PolicyKind]:
    """kind -> `PolicyKind`, for the kinds of every package imported so far."""
    _ensure_builtins()
    return dict(_REGISTRY)


def describe_policies() -> list[dict[str, str]]:
    """One row per registered kind (kind, options, summary, package), for help texts and docs."""
    return [{"kind": k.kind, "options": ",".join(k.options), "summary": k.summary, "package": k.package}
            for k in registered_policies().values()]


def policy_source(spec: "str | Path | Mapping[str, Any] | PolicySpec",
                  context: PolicyContext | None = None) -> tuple[str, PolicySource]:
    """(name, policy or zero-argument factory) for a spec: what a runner with many parallel envs takes.

    Raises `PolicySpecError` naming the unknown kind / option and the valid ones.
    """
    _ensure_builtins()
    spec = parse_policy_spec(spec)
    context = context or PolicyContext()
    entry = _REGISTRY.get(spec.kind)
    if entry is None:
        close = difflib.get_close_matches(spec.kind, list(_REGISTRY), n=1)
        raise PolicySpecError(
            f"policy {str(spec)!r}: unknown kind {spec.kind!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; registered kinds: {sorted(_REGISTRY)}, or an existing checkpoint directory. Kinds of a package are "
            "registered when it is imported (sim_envs: expert, no_vision; world_model: servo; robot_bridge: remote, tiny_cnn)")
    opts = PolicyOptions(spec)
    opts.check_known(entry.options)  # before building: a typo must not cost a checkpoint load
    opts.str("name")
    seed = opts.int("seed", context.seed)
    noise = opts.float("noise", 0.0)
    blank = opts.bool("blank_images", False)
    fixed_instruction = opts.str("instruction")
    if seed != context.seed:
        context = replace(context, seed=seed)
    built = entry.builder(opts, context)
    if noise < 0:
        raise PolicySpecError(f"policy spec {spec}: noise={noise} must be >= 0 (metres)")
    if not noise and not blank and fixed_instruction is None:
        return spec.name, built
    from vla.policy.wrappers import BlankImagesPolicy, FixedInstructionPolicy, NoisyPolicy

    def wrap(policy: Policy, instance: int = 0) -> Policy:
        if fixed_instruction is not None:
            policy = FixedInstructionPolicy(policy, fixed_instruction)
        if blank:
            policy = BlankImagesPolicy(policy)
        if noise:
            policy = NoisyPolicy(policy, noise, seed=seed + instance)
        return policy

    if isinstance(built, Policy):
        return spec.name, wrap(built)
    counter = iter(range(1 << 30))
    return spec.name, lambda: wrap(built(), next(counter))


def make_policy(spec: "str | Path | Mapping[str, Any] | PolicySpec",
                context: PolicyContext | None = None) -> tuple[str, Policy]:
    """(name, `Policy`) for a spec: one instance (a factory's first)."""
    name, source = policy_source(spec, context)
    return name, source if isinstance(source, Policy) else source()


def _ensure_builtins() -> None:
    import vla.policy.builtins  # noqa: F401  (registers vla's own kinds)
