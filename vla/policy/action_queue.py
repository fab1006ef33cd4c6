"""`ActionQueue`: a policy's chunks turned into one action per control step (receding horizon).

A chunked policy predicts K actions per call; the caller executes the first `execute_steps` of them
open-loop and asks again when they are spent (ACT's temporal ensembling off, LeRobot's `_action_queue`,
Octo's `RHCWrapper`). The simulator runner, the world model's imagined and simulated rollouts and the robot
bridge all keep one queue per running episode, so the rule lives here once:

    queue = ActionQueue(execute_steps=4)
    queue.reset()                                  # new episode
    if queue.empty:
        queue.push(policy.act(observation))        # validates, keeps the first execute_steps actions
    action = queue.pop()                           # (7,) float32

`step(policy, observation)` does the two in one call for callers that ask the policy themselves.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from vla.core.types import Observation, Policy, validate_action


class ActionQueue:
    """Pending actions of one episode.

    Args:
        execute_steps: how many actions of each chunk run before the policy is asked again (None: the whole
            chunk). Single actions (shape (7,)) are one-step chunks.
    """

    def __init__(self, execute_steps: int | None = None) -> None:
        if execute_steps is not None and int(execute_steps) < 1:
            raise ValueError(f"execute_steps={execute_steps}: execute at least 1 action of each chunk (None: all)")
        self.execute_steps = None if execute_steps is None else int(execute_steps)
        self._pending: deque[np.ndarray] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def empty(self) -> bool:
        return not self._pending

    def reset(self) -> None:
        """Drop pending actions (new episode, e-stop, or a policy switch)."""
        self._pending.clear()

    clear = reset

    def push(self, output, *, name: str = "policy action") -> int:
        """Queue a policy output ((7,) or (K, 7)), validated against the contract; returns how many were queued.

        Raises `ContractError` (naming `name`) for a wrong shape, NaN/inf or a gripper outside [0, 1]; the
        queue is left unchanged then.
        """
        arr = validate_action(output, allow_chunk=True, name=name)
        chunk = arr[None] if arr.ndim == 1 else arr
        k = len(chunk) if self.execute_steps is None else min(self.execute_steps, len(chunk))
        self._pending.extend(np.array(a, np.float32) for a in chunk[:k])
        return k

    def pop(self) -> np.ndarray:
        """The next action (7,); IndexError when nothing is pending (push a chunk first)."""
        if not self._pending:
            raise IndexError("ActionQueue is empty: push the policy's next chunk first")
        return self._pending.popleft()

    def step(self, policy: Policy, observation: Observation) -> np.ndarray:
        """The next action, asking `policy` only when the queue is empty."""
        if not self._pending:
            self.push(policy.act(observation))
        return self.pop()
