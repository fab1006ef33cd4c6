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
CUBE_HALF = 0.02
MAX_STEP = 0.04  # m per control step the experts ask for (the controller allows 0.05)
MAX_YAW_STEP = 0.25  # rad
HOVER = 0.10  # m above a grasp point before descending
GRASP_STEPS = 4  # control steps with the gripper closing before moving on
#: Close when the grip site is this close to the grasp point: z within GRASP_Z_TOL and xy within GRASP_XY_TOL.
#: The open fingers (8 cm) capture a 4 cm cube anywhere within +-2 cm across, so xy need not be exact; a strict
#: 3-D threshold (0.8 cm) made the expert hover open at grasp height whenever the position jittered (DART noise,
#: DR latency), which taught learned policies to hover there without ever closing.
GRASP_Z_TOL = 0.008
GRASP_XY_TOL = 0.015
#: Half thickness (m) of the closed fingers along the push direction that the push constants were tuned with
#: (the Panda hand's); `state["finger_half_depth"]` gives the robot's own (`RobotDescription`).
PUSH_REFERENCE_DEPTH = 0.022


def _wrap_quarter(angle: float) -> float:
    """Wrap to [-pi/4, pi/4): cubes look the same every 90 degrees."""
    return float((angle + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def _grasp_yaw(ee_yaw: float, obj_yaw: float, period: float) -> float:
    """The gripper yaw nearest to `ee_yaw` that grasps an object looking the same every `period` rad (0: round)."""
    if period <= 0:
        return ee_yaw
    return float(ee_yaw + (obj_yaw - ee_yaw + period / 2) % period - period / 2)


def _wrap_half(angle: float) -> float:
    """Wrap to [-pi/2, pi/2): a parallel gripper looks the same every 180 degrees."""
    return float((angle + np.pi / 2) % np.pi - np.pi / 2)


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class ScriptedExpert(Policy):
    """Base class: a phase machine over waypoints. Subclasses implement `plan(state) -> (target, yaw, grip)`.

    `gain` 0.4 keeps the proportional step stable under the action latency of the DR levels: with d steps of
    delay, x[t+1] = x[t] - k x[t-d] is stable only for k < 2 sin(pi / (4d + 2)) (0.62 for d = 2), and the
    servo lag adds about half a step.
    """

    cameras = ("primary",)
    task_name: str = ""

    def __init__(self, state_fn: Callable[[], dict[str, Any]] | None = None, *, gain: float = 0.4):
        self._state_fn = state_fn
        self.gain = gain
        # Where the expert believes the object is, relative to where it is (m). Nonzero: a deliberate miss
        # (`vla-collect grasp_miss=...`), for failure data that world models and success detectors need.
        self.aim_offset = np.zeros(3)
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
        if np.any(self.aim_offset) and "object_pos" in state:
            state = {**state, "object_pos": np.asarray(state["object_pos"], float) + self.aim_offset}
        target, yaw, grip = self.plan(state)
        ee = np.asarray(state["ee_pos"], float)
        action = np.zeros(7, np.float32)
        action[:3] = np.clip(self.gain * (np.asarray(target) - ee), -MAX_STEP, MAX_STEP)
        if yaw is not None:
            action[5] = np.clip(self.gain * _wrap(yaw - state["ee_yaw"]), -MAX_YAW_STEP, MAX_YAW_STEP)
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
        """Approach above the object, descend, close. Returns a waypoint, or None once grasped.

        `state["grasp_period"]` (rad): the object's symmetry about z, pi/2 (cubes) unless given; 0 = round.
        `state["grasp_xy_tol"]` (m), for objects that squeeze out of an off-centre pinch (a ball): close only
        within this xy error on two steps in a row (under DR latency the hand otherwise swings through the
        window and past the object while the fingers close).
        """
        ee_yaw = state["ee_yaw"]
        yaw = _grasp_yaw(ee_yaw, obj_yaw, state.get("grasp_period", np.pi / 2))
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
            ee = np.asarray(state["ee_pos"])
            xy_tol = state.get("grasp_xy_tol", GRASP_XY_TOL)
            inside = abs(ee[2] - grasp[2]) < GRASP_Z_TOL and np.linalg.norm(ee[:2] - grasp[:2]) < xy_tol
            self.memory["inside"] = self.memory.get("inside", 0) + 1 if inside else 0
            if self.memory["inside"] >= (2 if "grasp_xy_tol" in state else 1):
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
    #: Start over when the fingers closed on nothing (the hand rose 4 cm above an object that stayed down).
    #: Off for LiftCube, whose failure data (`vla-collect grasp_miss=...`) is documented as one missed grasp.
    REGRASP = False

    def plan(self, state):
        obj = np.asarray(state["object_pos"])
        wp = self._pick(state, obj, state["object_yaw"], "lift")
        if wp is not None:
            return wp
        if self.REGRASP and state["ee_pos"][2] - obj[2] > 0.04 and obj[2] < state["lift_z"] - 0.05:
            self._go("approach")
            return self._pick(state, obj, state["object_yaw"], "lift")
        # Lift: straight up past the success height.
        target = np.array([obj[0], obj[1], state["lift_z"] + 0.06])
        return target, None, CLOSED


class LiftEasyExpert(LiftExpert):
    task_name = "LiftCubeEasy"


class PushExpert(ScriptedExpert):
    """Closed fingers behind the cube, on the line cube -> target; push along it, re-approach if it drifts off."""

    task_name = "PushCube"
    CONTACT = 0.05  # m behind the cube centre where the fingers start pushing
    PUSH_Z = 0.035

    def plan(self, state):
        ee = np.asarray(state["ee_pos"])
        obj, tgt = np.asarray(state["object_pos"]), np.asarray(state["target_pos"])
        d = tgt[:2] - obj[:2]
        u = d / max(np.linalg.norm(d), 1e-6)
        n = np.array([-u[1], u[0]])
        rel = ee[:2] - obj[:2]
        along, lateral = float(rel @ u), float(rel @ n)
        behind = obj[:2] - u * self.CONTACT
        yaw = self._push_yaw(state, u)
        if self.phase == "push":
            # Slipped off the line, or the hand rides up onto the cube: its grip point came within 1.7 cm of
            # where the fingers touch the cube's face (the fingers are thinner on some grippers).
            depth = state.get("finger_half_depth", PUSH_REFERENCE_DEPTH)
            if abs(lateral) > 0.02 or along > -0.025 - (depth - PUSH_REFERENCE_DEPTH):
                self._go("retreat")
            else:
                # Keep the fingers just behind the cube, advance up to 3 cm, steer back onto the line.
                xy = obj[:2] - u * (CUBE_HALF + 0.012) + u * min(float(np.linalg.norm(d)), 0.03) - n * lateral
                return np.array([*xy, self.PUSH_Z]), yaw, CLOSED
        if self.phase == "retreat":
            if ee[2] > self.PUSH_Z + HOVER * 0.8:
                self._go("approach")
            else:
                return np.array([ee[0] - u[0] * 0.01, ee[1] - u[1] * 0.01, self.PUSH_Z + HOVER]), yaw, CLOSED
        if self.phase in ("start", "approach"):
            self.phase = "approach"
            turned = yaw == 0.0 or abs(_wrap(yaw - state["ee_yaw"])) < 0.1
            if np.linalg.norm(ee[:2] - behind) < 0.01 and turned:
                self._go("descend")
            else:
                # Stay high while far away so the fingers never sweep the cube.
                z = self.PUSH_Z + HOVER if np.linalg.norm(ee[:2] - behind) > 0.02 else ee[2]
                return np.array([*behind, max(z, ee[2])]), yaw, CLOSED
        if self.phase == "descend":
            target = np.array([*behind, self.PUSH_Z])
            if self._near(state, target, 0.01):
                self._go("push")
            return target, yaw, CLOSED
        return np.array([*behind, self.PUSH_Z]), yaw, CLOSED

    @staticmethod
    def _push_yaw(state, u: np.ndarray) -> float:
        """Gripper yaw while pushing along `u`. Fingers thicker than the cube's half width (the Panda hand's,
        4.4 cm) push with either face: yaw 0. Thinner ones (the Rethink gripper's 2 cm) would push a side
        push with one finger's narrow side, a point contact that turns the cube off the line, so the hand turns
        to push with the face across both fingers (its x axis along `u`, either way round)."""
        if state.get("finger_half_depth", PUSH_REFERENCE_DEPTH) >= CUBE_HALF:
            return 0.0
        return _grasp_yaw(state["ee_yaw"], float(np.arctan2(u[1], u[0])), np.pi)


class PlaceExpert(ScriptedExpert):
    """Pick the cube, carry it above the place point, lower, open, back off upwards."""

    task_name = "PlaceCubeOnPlate"
    CARRY_Z = 0.14
    RELEASE_STEPS = 3
    #: How close (m, xy) the cube must be to the place point to lower it, and to let go once lowered. The plate
    #: tasks accept a cube centre up to 4-5 cm off the plate's axis; a tolerance that is tight against what the
    #: task needs teaches a policy, whose view of the plate is partly hidden by the held cube, to keep aligning
    #: and never let go (docs/history.md, L4-L5).
    PLACE_XY_TOL = 0.008

    def plan(self, state):
        ee = np.asarray(state["ee_pos"])
        obj = np.asarray(state["object_pos"])
        place = np.asarray(state["place_pos"])
        wp = self._pick(state, obj, state["object_yaw"], "lift")
        if wp is not None:
            return wp
        place_yaw = state.get("place_yaw")
        yaw = None if place_yaw is None else state["ee_yaw"] + _wrap_quarter(place_yaw - state["ee_yaw"])
        if self.phase == "lift":
            if ee[2] > self.CARRY_Z - 0.02:
                self._go("carry")
            else:
                return np.array([ee[0], ee[1], self.CARRY_Z]), None, CLOSED
        if self.phase == "carry":
            above = np.array([place[0], place[1], self.CARRY_Z])
            if obj[2] < place[2] - 0.005:  # dropped on the way: start over
                self._go("approach")
                return above, None, OPEN
            yaw_ok = yaw is None or abs(_wrap(yaw - state["ee_yaw"])) < 0.08
            if np.linalg.norm(obj[:2] - place[:2]) < self.PLACE_XY_TOL and yaw_ok:
                self._go("lower")
            else:
                return above + np.append(ee[:2] - obj[:2], 0.0), yaw, CLOSED
        if self.phase == "lower":
            target = np.array([place[0], place[1], place[2] + 0.012]) + np.append(ee[:2] - obj[:2], 0.0)
            target[2] = max(target[2] + (ee[2] - obj[2]), 0.035)
            lowered = ee[2] < target[2] + 0.006 and np.linalg.norm(obj[:2] - place[:2]) < self.PLACE_XY_TOL
            if obj[2] < place[2] + 0.008 or self._near(state, target, 0.006) or lowered:
                self._go("release")
            else:
                return target, yaw, CLOSED
        if self.phase == "release":
            self.counter += 1
            if self.counter > self.RELEASE_STEPS:
                self._go("retreat")
            return ee, None, OPEN
        return np.array([ee[0], ee[1], self.CARRY_Z]), None, OPEN


class StackExpert(PlaceExpert):
    task_name = "StackCube"


class LiftNamedCubeExpert(LiftExpert):
    task_name = "LiftNamedCube"
    REGRASP = True


class LiftNamedShapeExpert(LiftExpert):
    task_name = "LiftNamedShape"
    REGRASP = True


class PlaceNamedPlateExpert(PlaceExpert):
    task_name = "PlaceCubeOnNamedPlate"
    PLACE_XY_TOL = 0.02  # success: cube centre within 4 cm of the plate's axis


class PlaceSideCubeExpert(PlaceExpert):
    task_name = "PlaceSideCubeOnPlate"
    PLACE_XY_TOL = 0.02


class LiftOrPushExpert(PushExpert):
    """Lift or push the named cube, as the state's `verb` says (the lift and push experts' phase machines)."""

    task_name = "LiftOrPushCube"
    REGRASP = True  # read by LiftExpert.plan for the lift verb
    #: 1 cm higher than PushCube's: under DR high (low servo gains, high damping) the hand dips while it pushes
    #: and fingertips at 3.5 cm drag on the table (measured: 0.3 cm per step for a 1.5 cm command).
    PUSH_Z = 0.045
    #: Under DR latency and low servo gains the hand swings several cm while it descends and can land on the
    #: cube's top edge, where friction holds it: start further back, and stay above the cube (closed fingertips
    #: about 3.5 cm below the grip point) while the hand is more than 2.5 cm past the push point towards it
    #: (it lands on the edge from 3.5 cm on; a tighter bound holds DART-noised demonstrations up).
    CONTACT = 0.065
    CLEAR_Z = 0.09

    def plan(self, state):
        if state["verb"] == "lift":
            return LiftExpert.plan(self, state)
        target, yaw, grip = PushExpert.plan(self, state)
        if self.phase == "descend":
            d = np.asarray(state["target_pos"])[:2] - np.asarray(state["object_pos"])[:2]
            ahead = float((np.asarray(state["ee_pos"])[:2] - target[:2]) @ d) / max(float(np.linalg.norm(d)), 1e-6)
            if ahead > 0.025:
                target = np.array([target[0], target[1], max(target[2], self.CLEAR_Z)])
        return target, yaw, grip


class DrawerExpert(ScriptedExpert):
    """Open fingers around the vertical handle from above, close, pull along the drawer's slide axis."""

    task_name = "OpenDrawer"

    def plan(self, state):
        ee = np.asarray(state["ee_pos"])
        handle = np.asarray(state["handle_pos"])
        pull = np.asarray(state["pull_dir"])
        # Fingers close along the hand's y axis (world y at yaw 0): turn them across the pull direction.
        yaw = _wrap_half(float(np.arctan2(pull[1], pull[0])))
        above = np.array([handle[0], handle[1], handle[2] + HOVER])
        if self.phase in ("start", "approach"):
            self.phase = "approach"
            if np.linalg.norm(ee[:2] - above[:2]) < 0.008 and abs(_wrap(yaw - state["ee_yaw"])) < 0.08:
                self._go("descend")
            else:
                return above, yaw, OPEN
        if self.phase == "descend":
            if self._near(state, handle, 0.008):
                self._go("grasp")
            else:
                return handle, yaw, OPEN
        if self.phase == "grasp":
            self.counter += 1
            if self.counter > GRASP_STEPS:
                self._go("pull")
            return handle, yaw, CLOSED
        if np.linalg.norm(ee[:2] - handle[:2]) > 0.03:  # slipped off the handle: start over
            self._go("approach")
            return np.array([ee[0], ee[1], above[2]]), yaw, OPEN
        return handle + pull * (state["open_target"] - state["drawer_opening"] + 0.01), yaw, CLOSED


#: Task name -> expert class (kept in step with sim_envs.tasks.TASK_CLASSES; tests check both match).
EXPERTS: dict[str, type[ScriptedExpert]] = {
    cls.task_name: cls for cls in (LiftExpert, LiftEasyExpert, PushExpert, PlaceExpert, StackExpert, DrawerExpert,
                                   LiftNamedCubeExpert, LiftNamedShapeExpert, PlaceNamedPlateExpert,
                                   PlaceSideCubeExpert, LiftOrPushExpert)
}


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
