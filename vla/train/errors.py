"""Errors a user can fix (bad config, missing files, bad data, NaN loss, full disk): the CLI prints their
message without a traceback."""

from __future__ import annotations

from vla.train.checkpoint import CheckpointError
from vla.train.merge import MergeError


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the message names the step and the checkpoint saved for inspection."""


class DataError(ValueError):
    """The training data cannot be used as configured (missing directory, no steps, no episodes left)."""


USER_ERRORS = (FileNotFoundError, ValueError, KeyError, CheckpointError, MergeError, NonFiniteLossError, DataError)
