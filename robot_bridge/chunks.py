"""The node's plan: the policy's action chunks laid out on the control ticks they are meant for.

A chunk computed from the observation of tick `i` holds actions for ticks i, i+1, ... (receding horizon:
only the first `execute_steps` are kept). Asked synchronously, a chunk starts at the tick that asked. Asked
asynchronously (`AsyncChunks`), the next chunk is computed while the current one runs, so by the time it is
ready, `now - i` ticks have passed: its first `now - i` actions are already out of date and are dropped
(the splice is by the time actually consumed, not by the count of chunks), and the rest replaces the plan
from `now` on. At the seam the old and the new plan are cross-faded over `seam_steps` ticks, so the
commanded velocity does not jump from one chunk's idea of the motion to the other's (LeRobot users filed
"violent arm jumps" at chunk seams, lerobot PRs #4223, #4454; ros2_controllers added spline chunk ingestion,
PRs #2491 / #2573). The gripper is not blended: the new chunk's command holds from the seam on.

    plan = ChunkTimeline(execute_steps=None, seam_steps=3)
    plan.splice(chunk, obs_tick=7, now_tick=9)   # chunk[2] is the action of tick 9
    plan.pop(9)                                  # (7,) or None when the plan has nothing for tick 9
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vla.core.types import validate_action

logger = logging.getLogger(__name__)


@dataclass
class Seam:
    """What one splice did.

    stale: actions of the new chunk already out of date (ticks consumed while it was computed), dropped.
    used: actions of the new chunk in the plan now (0: the whole chunk came too late).
    blended: ticks cross-faded with the old plan.
    jump: change of the translation/rotation step from the last action executed before the seam to the first
        one after it, as spliced ((2,) norms: m, rad per step); `naive_jump` the same without the cross-fade.
    """

    stale: int
    used: int
    blended: int
    jump: np.ndarray
    naive_jump: np.ndarray


def _step_change(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    if a is None:
        return np.zeros(2)
    d = np.asarray(b[:6], np.float64) - np.asarray(a[:6], np.float64)
    return np.array([np.linalg.norm(d[:3]), np.linalg.norm(d[3:6])])


class ChunkTimeline:
    """Pending actions by tick (see the module docstring).

    Args:
        execute_steps: how many actions of each chunk to keep (None: all).
        seam_steps: ticks over which a new chunk is cross-faded in (0: switch at once).
    """

    def __init__(self, execute_steps: int | None = None, seam_steps: int = 0):
        if execute_steps is not None and execute_steps < 1:
            raise ValueError(f"execute_steps={execute_steps}: keep at least 1 action of each chunk (None: all)")
        if seam_steps < 0:
            raise ValueError(f"seam_steps={seam_steps} must be >= 0")
        self.execute_steps, self.seam_steps = execute_steps, seam_steps
        self._start = 0  # tick of self._actions[0]
        self._actions: deque[np.ndarray] = deque()
        self.last: np.ndarray | None = None  # the action popped last (for the seam's jump)

    def reset(self) -> None:
        self._actions.clear()
        self.last = None

    def _drop_before(self, tick: int) -> None:
        while self._actions and self._start < tick:
            self._actions.popleft()
            self._start += 1
        if not self._actions:
            self._start = tick

    def remaining(self, tick: int) -> int:
        """Actions the plan holds for `tick` and after."""
        return max(0, len(self._actions) - max(0, tick - self._start))

    def pop(self, tick: int) -> np.ndarray | None:
        """The action of `tick` (actions of earlier ticks are dropped), None when the plan has none."""
        self._drop_before(tick)
        if not self._actions or self._start != tick:
            return None
        self._start += 1
        self.last = self._actions.popleft()
        return self.last

    def upcoming(self, tick: int, n: int) -> list[np.ndarray]:
        """Up to `n` planned actions from `tick` on (without taking them)."""
        skip = max(0, tick - self._start)
        return [self._actions[i] for i in range(skip, min(len(self._actions), skip + n))]

    def splice(self, output, obs_tick: int, now_tick: int, *, name: str = "policy output") -> Seam:
        """Lay a policy output ((7,) or (K, 7), validated) computed from the observation of `obs_tick` on the
        plan from `now_tick` on; raises ContractError (plan unchanged) for a bad output."""
        arr = validate_action(output, allow_chunk=True, name=name)
        chunk = (arr[None] if arr.ndim == 1 else arr).astype(np.float32)
        if self.execute_steps is not None:
            chunk = chunk[: self.execute_steps]
        stale = max(0, now_tick - obs_tick)
        fresh = chunk[stale:]
        if len(fresh) == 0:
            return Seam(stale=len(chunk), used=0, blended=0, jump=np.zeros(2), naive_jump=np.zeros(2))
        old = self.upcoming(now_tick, len(fresh))
        new = [a.copy() for a in fresh]
        blended = min(self.seam_steps, len(old), len(new))
        for s in range(blended):  # weight of the new plan rises 1/(S+1), 2/(S+1), ...: no step is a jump
            w = (s + 1) / (self.seam_steps + 1)
            new[s][:6] = (1.0 - w) * old[s][:6] + w * new[s][:6]
        naive = _step_change(self.last, fresh[0])
        jump = _step_change(self.last, new[0])
        self._actions = deque(new)
        self._start = now_tick
        return Seam(stale=stale, used=len(new), blended=blended, jump=jump, naive_jump=naive)


class AsyncChunks:
    """Computes the next chunk in a worker thread while the node executes the current one.

    The node calls `collect` and then `want` every tick: a finished chunk is spliced in (by the ticks
    consumed since its observation), and a new one is asked for when the plan would run out before a chunk
    asked now could arrive: the slowest of the last 10 inference times, in ticks, plus the seam, plus one
    (a chunk that finishes between ticks is taken at the next one).
    A `reset` (any stop) makes an inference still running belong to the past: its result is dropped.
    """

    def __init__(self, act: Callable, period: float, seam_steps: int):
        self._act, self.period, self.seam_steps = act, period, seam_steps
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-async")
        self._inflight: tuple[Future, int, int, float] | None = None  # (future, obs tick, generation, t0)
        self._generation = 0
        self._durations: deque[float] = deque(maxlen=10)
        self.error = ""

    def reset(self) -> None:
        self._generation += 1

    @property
    def busy(self) -> bool:
        return self._inflight is not None

    def lead_ticks(self) -> int:
        """How many ticks ahead of running out the next chunk is asked for."""
        slowest = max(self._durations) if self._durations else self.period
        return int(np.ceil(slowest / self.period)) + self.seam_steps + 1

    def want(self, remaining: int) -> bool:
        return self._inflight is None and remaining <= self.lead_ticks()

    def _timed(self, observation) -> tuple[object, float]:
        t0 = time.perf_counter()
        return self._act(observation), time.perf_counter() - t0

    def submit(self, observation, tick: int) -> None:
        self._inflight = (self._executor.submit(self._timed, observation), tick, self._generation, time.perf_counter())

    def collect(self) -> tuple[object, int, float] | None:
        """(output, observation tick, seconds the inference computed) of a finished inference of the current
        generation."""
        if self._inflight is None or not self._inflight[0].done():
            return None
        fut, obs_tick, gen, t0 = self._inflight
        self._inflight = None
        try:
            out, seconds = fut.result()
            self._durations.append(seconds)
        except Exception as e:
            self._durations.append(time.perf_counter() - t0)  # remote server gone, model error, ...: the node says so if the plan runs dry
            self.error = f"{type(e).__name__}: {e}"
            logger.warning("asynchronous policy call failed: %s", self.error)
            return None
        self.error = ""
        return (out, obs_tick, seconds) if gen == self._generation else None

    def running_for(self) -> float:
        return time.perf_counter() - self._inflight[3] if self._inflight else 0.0

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
