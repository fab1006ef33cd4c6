"""The policy server now lives in `vla.serving.policy_server` (shared with `sim_envs.libero`, which must not
import `robot_bridge`); this name stays for existing imports."""

from vla.serving.policy_server import (  # noqa: F401
    PROTOCOL,
    PolicyServer,
    PolicyServerError,
    RemotePolicy,
    observation_from_wire,
    observation_to_wire,
)
