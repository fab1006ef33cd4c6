"""Where each period's action comes from: the rest of the current chunk, or the policy.

`sync`: when the plan is spent, the policy runs in a worker thread and the period waits for it, at most the
policy timeout; a late answer is discarded. `async`: the next chunk is computed in a worker thread while the
plan runs and spliced in by the periods consumed since its observation (robot_bridge/chunks.py); the period
never waits. Either way a period without an action gets a reason ("policy slow: ...", "policy failed: ...",
"rejected: ...") and the node stops for it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from robot_bridge.chunks import AsyncChunks, ChunkTimeline, Seam
from robot_bridge.config import NodeConfig
from vla.core.types import ContractError, Observation, Policy

#: (action or None, why there is none, seconds of the policy call finished this period)
Next = tuple[np.ndarray | None, str, float]


class ActionSource:
    """The plan, the policy workers and the episode the policy is in. `lock` is the node's (re-entrant): the plan
    is never changed while a callback (e-stop) stops the node."""

    def __init__(self, policy: Policy, node: NodeConfig, period: float, lock: threading.RLock):
        self.policy, self.period, self.lock = policy, period, lock
        asynchronous = node.inference == "async"
        self.plan = ChunkTimeline(node.execute_chunk or None, node.seam_steps if asynchronous else 0)
        self.chunks = AsyncChunks(self._call_policy, period, node.seam_steps) if asynchronous else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
        self._inflight: Future | None = None
        self._seam: Seam | None = None
        self._policy_instruction: str | None = None

    def new_episode(self) -> None:
        """Activation: an empty plan, and the policy is reset at its next call."""
        self.plan.reset()
        self._policy_instruction = None

    def stopped(self, keep_inflight: bool) -> None:
        """A stop ends the open-loop execution of a chunk; an asynchronous inference still running belongs to
        before the stop and is dropped, unless `keep_inflight` (the plan ran dry waiting for it, or one
        action was rejected)."""
        self.plan.reset()
        if self.chunks is not None and not keep_inflight:
            self.chunks.reset()

    def take_seam(self) -> Seam | None:
        """The splice made this period (async), once."""
        seam, self._seam = self._seam, None
        return seam

    def upcoming(self, tick: int, n: int) -> list[np.ndarray]:
        return self.plan.upcoming(tick, n)

    def next(self, obs: Observation, tick: int, timeout_periods: float) -> Next:
        """This period's action for `obs` at `tick`; the sync path waits at most `timeout_periods` periods."""
        if self.chunks is None:
            return self._next_sync(obs, tick, timeout_periods)
        with self.lock:  # nothing here waits, and a stop from a callback must not interleave with it
            return self._next_async(obs, tick)

    def _call_policy(self, obs: Observation):
        if self._policy_instruction != obs.instruction:  # a new instruction starts a new episode
            self.policy.reset(obs.instruction)
            self._policy_instruction = obs.instruction
        return self.policy.act(obs)

    def _next_sync(self, obs: Observation, tick: int, timeout_periods: float) -> Next:
        """The plan's action, else a policy call in the worker with a timeout."""
        with self.lock:
            planned = self.plan.pop(tick)
        if planned is not None:
            return planned, "", 0.0
        if self._inflight is not None:
            if not self._inflight.done():
                return None, f"policy slow: no action after {timeout_periods:g} periods", 0.0
            self._inflight = None  # a late answer belongs to an old observation: discard it
        t0 = time.perf_counter()
        fut = self._executor.submit(self._call_policy, obs)
        try:
            out = fut.result(timeout=timeout_periods * self.period)
        except TimeoutError:
            self._inflight = fut
            return None, f"policy slow: no action within {timeout_periods * self.period * 1e3:.0f} ms", time.perf_counter() - t0
        except Exception as e:  # remote server gone, model error, ...: stop and say so
            return None, f"policy failed: {type(e).__name__}: {e}", time.perf_counter() - t0
        dt = time.perf_counter() - t0
        with self.lock:
            try:
                self.plan.splice(out, tick, tick, name="policy output")  # validated; the first execute_chunk actions
            except ContractError as e:
                return None, f"rejected: {e}", dt
            return self.plan.pop(tick), "", dt

    def _next_async(self, obs: Observation, tick: int) -> Next:
        """Splice a finished chunk, ask for the next one when the plan would run out before it could arrive,
        take this period's action."""
        policy_s = 0.0
        done = self.chunks.collect()
        if done is not None:
            out, obs_tick, policy_s = done
            try:
                self._seam = self.plan.splice(out, obs_tick, tick, name="policy output")
            except ContractError as e:
                return None, f"rejected: {e}", policy_s
        if self.chunks.want(self.plan.remaining(tick)):
            self.chunks.submit(obs, tick)
        action = self.plan.pop(tick)
        if action is not None:
            return action, "", policy_s
        if self.chunks.error:
            return None, f"policy failed: {self.chunks.error}", policy_s
        return None, (f"policy slow: no planned action for this period; the next chunk has been computing for "
                      f"{self.chunks.running_for() * 1e3:.0f} ms"), policy_s

    def close(self) -> None:
        """Drop queued calls; a call already running finishes in its worker (bounded by the policy's own time)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.chunks is not None:
            self.chunks.close()
