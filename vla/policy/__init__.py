"""The policy runtime every consumer shares: the spec grammar and registry, the action queue, wrappers.

    from vla.policy import ActionQueue, PolicyContext, make_policy
    name, policy = make_policy("vla:path=outputs/train/final", PolicyContext(device="cpu"))

Importing this package is cheap (numpy only); the VLA model loads when a `vla` spec is built.
"""

from vla.policy.action_queue import ActionQueue
from vla.policy.registry import (
    PolicyContext,
    PolicyOptions,
    PolicySpec,
    PolicySpecError,
    describe_policies,
    make_policy,
    parse_policy_spec,
    policy_source,
    register_policy,
    registered_policies,
)

__all__ = [
    "ActionQueue",
    "PolicyContext",
    "PolicyOptions",
    "PolicySpec",
    "PolicySpecError",
    "describe_policies",
    "make_policy",
    "parse_policy_spec",
    "policy_source",
    "register_policy",
    "registered_policies",
]
