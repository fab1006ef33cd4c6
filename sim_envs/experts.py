"""Scripted experts: per-task waypoint state machines driving the same 7-D action interface as any policy.

Each expert reads privileged ground truth (`TabletopEnv.privileged_state()`), picks the current waypoint
and returns the proportional step towards it, clipped to the controller's per-step limits. Experts are
closed-loop (they re-plan every step from the measured state), so perturbations are corrected.

    expert = make_expert(env)                       # a vla.Policy bound to one env
    expert.reset(info["instruction"]); action = expert.act(obs)

For vector envs, build one state-fed expert per sub-env and pass each the states from
`envs.call("privileged_state")`:

    experts = [make_expert_for_task(name) for name in envs.get_attr("task_name")]
    actions = [e.act_from_state(s) for e, s in zip(experts, envs.call("privileged_state"))]
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from vla.core.types import Observation, Policy

OPEN, CLOSED = 1.0, 0.0
MAX_STEP = 0.04  # m per control step the experts ask for (the controller allows 0.05)
MAX_YAW_STEP = 0.25  # rad
HOVER = 0.10  # m above a grasp point before descending
GRASP_STEPS = 4  # control steps with the gripper closing before moving on


def _wrap_quarter(angle: float) -> float:
    """Wrap to [-pi/4, pi/4): cubes look the same every 90 degrees."""
    return float((angle + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class ScriptedExpert(Policy):
    """Base class: a phase machine over waypoints. Subclasses implement `plan(state) -> (target, yaw, grip)`."""

    cameras = ("primary",)
    task_name: str = ""

    def __init__(self, state_fn: Callable[[], dict[str, Any]] | None = None, *, gain: float = 1.0):
        self._state_fn = state_fn
        self.gain = gain
        self.reset("")

    def reset(self, instruction: str) -> None:
        self.phase = "start"
        self.counter = 0
        self.memory: dict[str, Any] = {}

    def act(self, observation: Observation | None = None) -> np.ndarray:
        if self._state_fn is None:
            raise RuntimeError("this expert has no env bound; use make_expert(env) or call act_from_state(state)")
        return self.act_from_state(self._state_fn())

    def act_from_state(self, state: dict[str, Any]) -> np.ndarray:
        target, yaw, grip = self.plan(state)
        ee = np.asarray(state["ee_pos"], float)
        action = np.zeros(7, np.float32)
        action[:3] = np.clip(self.gain * (np.asarray(target) - ee), -MAX_STEP, MAX_STEP)
        if yaw is not None:
            action[5] = np.clip(_wrap(yaw - state["ee_yaw"]), -MAX_YAW_STEP, MAX_YAW_STEP)
        action[6] = grip
        return action

    def plan(self, state: dict[str, Any]) -> tuple[np.ndarray, float | None, float]:
        raise NotImplementedError

    # -- shared motion primitives ----------------------------------------------------------------------------
    def _go(self, phase: str) -> None:
        self.phase, self.counter = phase, 0

    @staticmethod
    def _near(state, target, tol: float) -> bool:
        return bool(np.linalg.norm(np.asarray(state["ee_pos"]) - np.asarray(target)) < tol)

    def _pick(self, state, obj_pos, obj_yaw, next_phase: str):
        """Approach above the object, descend, close. Returns a waypoint, or None once grasped."""
        ee_yaw = state["ee_yaw"]
        yaw = ee_yaw + _wrap_quarter(obj_yaw - ee_yaw)
        above = np.array([obj_pos[0], obj_pos[1], obj_pos[2] + HOVER])
        grasp = np.array([obj_pos[0], obj_pos[1], max(obj_pos[2], 0.035)])
        if self.phase in ("start", "approach"):
            self.phase = "approach"
            xy_err = np.linalg.norm(np.asarray(state["ee_pos"])[:2] - above[:2])
            yaw_err = abs(_wrap(yaw - ee_yaw))
            if xy_err < 0.012 and yaw_err < 0.08:
                self._go("descend")
            else:
                return above, yaw, OPEN
        if self.phase == "descend":
            if self._near(state, grasp, 0.008):
                self._go("grasp")
            else:
                return grasp, yaw, OPEN
        if self.phase == "grasp":
            self.counter += 1
            if self.counter > GRASP_STEPS:
                self._go(next_phase)
                return None
            return grasp, yaw, CLOSED
        return None


class LiftExpert(ScriptedExpert):
    task_name = "LiftCube"

    def plan(self, state):
        obj = np.asarray(state["object_pos"])
        wp = self._pick(state, obj, state["object_yaw"], "lift")
        if wp is not None:
            return wp
        # Lift: straight up past the success height.
        target = np.array([obj[0], obj[1], state["lift_z"] + 0.06])
        return target, None, CLOSED


#: Task name -> expert class (kept in step with sim_envs.tasks.TASK_CLASSES; tests check both match).
EXPERTS: dict[str, type[ScriptedExpert]] = {cls.task_name: cls for cls in (LiftExpert,)}


def make_expert_for_task(task_name: str, state_fn: Callable[[], dict[str, Any]] | None = None) -> ScriptedExpert:
    """An expert for `task_name`; without `state_fn` feed it with `act_from_state`."""
    try:
        cls = EXPERTS[task_name]
    except KeyError:
        raise ValueError(f"no scripted expert for task {task_name!r}; experts exist for {sorted(EXPERTS)}") from None
    return cls(state_fn)


def make_expert(env) -> ScriptedExpert:
    """The scripted expert of `env`'s task, reading privileged state from `env.unwrapped` (a vla.Policy)."""
    base = env.unwrapped
    if not hasattr(base, "privileged_state"):
        raise TypeError(f"make_expert needs a sim_envs TabletopEnv (or a wrapper of one), got {type(base).__name__}")
    return make_expert_for_task(base.task.name, base.privileged_state)
