"""The policy server's wire format now lives in `vla.serving.wire` (shared with `sim_envs.libero`); this name stays
for existing imports."""

from vla.serving.wire import DTYPES, MAX_HEADER, MAX_PAYLOAD, WireError, encode, recv, send  # noqa: F401
