"""The bridge node: rate loop, observation assembly, policy call, safety, watchdog, e-stop, lifecycle.

Independent of the transport (direct DDS or rclpy) and of time: `clock` (monotonic seconds, for the
watchdog and periods) and `wall_clock` (for message stamps) are injected, so tests can jump them.

Every period (`tick`), in order:
  lifecycle not ACTIVE         -> no command at all (status and heartbeat only)
  e-stop latched               -> stop; it is also sent at once from the e-stop callback
  clock went backwards         -> stop; every sensor must deliver again before motion resumes
  a required sensor is stale   -> stop ("stale camera 'primary': no message for 0.21 s")
  no instruction yet           -> stop
  next action (the plan, or a policy call with a timeout) -> safety filter -> command, or stop if rejected
With `inference=async` the policy computes the next chunk in a worker thread while the plan runs; a finished
chunk is spliced in by the periods consumed since its observation, cross-faded over `seam_steps`
(robot_bridge/chunks.py), and a period the plan has no action for is a stop ("policy slow").
A stop is a zero-velocity / hold command, sent every period while the reason lasts, and the status topic
(diagnostic_msgs/DiagnosticArray on /diagnostics) says why.
Lifecycle transitions come on the lifecycle topic or from code; on a ROS 2 lifecycle node (transport=rclpy)
also as lifecycle_msgs service calls (`/vla_bridge/change_state`, ...), and the live settings (instruction,
stale window, policy timeout, safety limits) are ROS 2 parameters (`bridge.safety.max_linear_velocity`, ...),
checked before they are taken; the structural ones are read-only parameters. Between ticks, `watchdog` (every quarter period in `run`) stops
at once when a required sensor goes stale, so a dying camera is not noticed one tick late.

The parts, one job each: robot_bridge/sensors.py (inputs, ages, the observation), robot_bridge/actions.py
(the plan and the policy workers), robot_bridge/commands.py (what goes to the arm), robot_bridge/safety.py
(the filter), robot_bridge/lifecycle.py (states); this module is the period and the state machine.

Example (sim arm on loopback, see robot_bridge/sim_arm.py for the other side):
    with make_transport("dds") as t:
        node = BridgeNode(BridgeConfig(), policy, t)
        node.run(stop_event)
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from robot_bridge import msgs
from robot_bridge.actions import ActionSource
from robot_bridge.chunks import Seam
from robot_bridge.commands import CommandPublisher
from robot_bridge.config import LIVE_SETTINGS, BridgeConfig, is_live, settings, with_changes
from robot_bridge.lifecycle import TRANSITION_FROM, Level, Lifecycle
from robot_bridge.safety import SafetyFilter
from robot_bridge.sensors import Sensors
from robot_bridge.transport.base import LATCHED, RELIABLE, SENSOR, Transport
from vla.core.types import ContractError, Observation, Policy

logger = logging.getLogger(__name__)

__all__ = ["BridgeNode", "Level", "Lifecycle", "TickReport"]


@dataclass
class TickReport:
    """What one period did (returned by `tick` for tests and benchmarks)."""

    state: Lifecycle
    moved: bool
    reason: str
    level: Level
    command: np.ndarray | None = None
    obs_stamp: float = 0.0
    policy_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    seam: Seam | None = None  # inference=async: the splice made this period


def _unprefixed(changes: dict[str, object]) -> dict[str, object]:
    """ROS 2 parameter names (`bridge.safety.max_linear_velocity`, as in the parameters file) -> setting names."""
    return {name.removeprefix("bridge."): value for name, value in changes.items()}


class BridgeNode:
    def __init__(self, cfg: BridgeConfig, policy: Policy, transport: Transport, *,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time):
        self.cfg, self.policy, self.transport = cfg, policy, transport
        self.clock, self.wall_clock = clock, wall_clock
        self.period = 1.0 / cfg.node.rate_hz
        self.stale_after = cfg.node.stale_after_periods * self.period
        self.state = Lifecycle.UNCONFIGURED
        self.safety = SafetyFilter(cfg.safety, self.period)
        self._lock = threading.RLock()
        self.sensors = Sensors(cfg, clock, self._lock)
        self.actions = ActionSource(policy, cfg.node, self.period, self._lock)
        self._instruction = cfg.node.instruction
        self._estop = False
        self._last_tick: float | None = None
        self._acted_stamp: float | None = None  # oldest capture stamp of the last observation acted on
        self._moving = False  # the last command sent was a motion (not a stop)
        self.ticks = 0
        self.last_reason = ""
        self.commands: CommandPublisher | None = None
        # On a ROS 2 lifecycle node (transport=rclpy) transitions also come as lifecycle_msgs service calls,
        # and settings as ROS 2 parameters; every transition goes through that one state machine.
        self._ros_lifecycle = transport.serve_lifecycle({name: getattr(self, "_" + name) for name in TRANSITION_FROM})
        transport.serve_parameters({f"bridge.{k}": v for k, v in settings(cfg).items()},
                                   live=lambda name: is_live(name.removeprefix("bridge.")),
                                   validate=lambda ch: self.check_settings(_unprefixed(ch)),
                                   apply=lambda ch: self.apply_settings(_unprefixed(ch)))
        if cfg.node.autostart:
            self.configure()
            self.activate()

    @property
    def malformed(self) -> dict[str, int]:
        """Malformed messages so far, by stream (`image primary`, `joint_states`, `ee_pose`, `lifecycle`)."""
        return self.sensors.malformed

    # ---- lifecycle -------------------------------------------------------------------------------------
    def configure(self) -> None:
        """Create publishers and subscriptions (UNCONFIGURED -> INACTIVE). Outputs stay gated."""
        self._transition("configure")

    def activate(self) -> None:
        self._transition("activate")

    def deactivate(self) -> None:
        self._transition("deactivate")

    def cleanup(self) -> None:
        self._transition("cleanup")

    def shutdown(self) -> None:
        """Stop and gate for good (FINALIZED: no transition leaves it)."""
        self._transition("shutdown")

    def _transition(self, name: str) -> None:
        """Carry out a transition: directly, or through the ROS 2 lifecycle node's state machine, which then
        calls `_<name>`. A transition the current state does not have runs directly (it does nothing but
        log), so rcl does not log it as an error."""
        if self._ros_lifecycle is None or self.state.value not in TRANSITION_FROM[name]:
            getattr(self, "_" + name)()
            return
        if name == "cleanup" and self.state is Lifecycle.ACTIVE:
            self._ros_lifecycle("deactivate")
        self._ros_lifecycle(name)

    def _configure(self) -> bool:
        with self._lock:
            if self.state is not Lifecycle.UNCONFIGURED:
                return self.state is Lifecycle.INACTIVE
            if self.commands is not None:  # configured before (cleanup only gates): endpoints exist
                self.state = Lifecycle.INACTIVE
                return True
            t, topics = self.transport, self.cfg.topics
            self.commands = CommandPublisher(self.cfg.output, topics, t, self.period, self.wall_clock)
            self._status_pub = t.publisher(topics.status, msgs.DiagnosticArray, RELIABLE)
            self._heartbeat_pub = t.publisher(topics.heartbeat, msgs.Header, RELIABLE) if topics.heartbeat else None
            s = self.sensors
            for cam, topic in topics.cameras.items():
                t.subscribe(topic, msgs.camera_message(topics, cam), SENSOR, lambda m, cam=cam: s.on_image(cam, m))
            if topics.joint_states:
                t.subscribe(topics.joint_states, msgs.JointState, SENSOR, s.on_joints)
            if topics.ee_pose:
                t.subscribe(topics.ee_pose, msgs.PoseStamped, SENSOR, s.on_ee)
            if topics.instruction:
                t.subscribe(topics.instruction, msgs.String, LATCHED, self._on_instruction)
            if topics.estop:
                t.subscribe(topics.estop, msgs.Bool, LATCHED, self._on_estop)
            if topics.lifecycle:
                t.subscribe(topics.lifecycle, msgs.String, RELIABLE, self._on_lifecycle)
            self.state = Lifecycle.INACTIVE
            logger.info("configured: %s command, %.1f Hz, cameras %s", self.cfg.output.command, self.cfg.node.rate_hz,
                        list(topics.cameras))
            return True

    def _activate(self) -> bool:
        with self._lock:
            if self.state is Lifecycle.INACTIVE:
                self.safety.reset()  # ramp up from rest under the acceleration limit
                self.actions.new_episode()  # activation starts a new episode: the policy is reset
                self._acted_stamp = None
                self.state = Lifecycle.ACTIVE
                logger.info("active")
            elif self.state is not Lifecycle.ACTIVE:
                logger.warning("activate ignored: the node is %s (send 'configure' first)", self.state.value)
            return self.state is Lifecycle.ACTIVE

    def _deactivate(self) -> bool:
        with self._lock:
            if self.state is Lifecycle.ACTIVE:
                self._stop("deactivated")  # the last thing a deactivating node sends is a stop
                self.state = Lifecycle.INACTIVE
                logger.info("inactive")
            return True

    def _cleanup(self) -> bool:
        with self._lock:
            if self.state is not Lifecycle.FINALIZED:
                self._deactivate()
                self.state = Lifecycle.UNCONFIGURED
            return True

    def _shutdown(self) -> bool:
        with self._lock:
            self._deactivate()
            self.state = Lifecycle.FINALIZED
            logger.info("finalized")
            return True

    def close(self) -> None:
        self.deactivate()
        self.actions.close()

    # ---- settings (ROS 2 parameters on transport=rclpy) ------------------------------------------------------
    def check_settings(self, changes: dict[str, object]) -> str:
        """"" when `changes` ({dotted name: value}, names as in `config.settings`) may be applied now, else why not."""
        fixed = [name for name in changes if not is_live(name)]
        if fixed:
            return f"{', '.join(fixed)} cannot change while the node runs; live settings: {', '.join(LIVE_SETTINGS)}"
        try:
            with_changes(self.cfg, changes)
        except (ValueError, KeyError, TypeError) as e:
            return str(e)
        return ""

    def apply_settings(self, changes: dict[str, object]) -> None:
        """Take new live settings at once: the instruction (as if it came on the instruction topic), the
        stale-sensor window, the policy timeout and the safety limits (the filter keeps its last command, so
        acceleration limits hold across the change). Raises ValueError as `check_settings` would say."""
        why = self.check_settings(changes)
        if why:
            raise ValueError(why)
        with self._lock:
            cfg = with_changes(self.cfg, changes)
            if "node.instruction" in changes:
                self._instruction = cfg.node.instruction
            self.stale_after = cfg.node.stale_after_periods * self.period
            if cfg.safety != self.cfg.safety:
                self.safety = self.safety.reconfigured(cfg.safety)
            self.cfg = cfg
        logger.info("settings changed: %s", changes)

    # ---- inputs (transport threads) --------------------------------------------------------------------
    def _on_instruction(self, m: msgs.String) -> None:
        with self._lock:
            if m.data != self._instruction:
                logger.info("instruction: %r", m.data)
            self._instruction = m.data

    def _on_estop(self, m: msgs.Bool) -> None:
        with self._lock:
            if bool(m.data):
                if not self._estop:
                    logger.warning("E-STOP engaged")
                self._estop = True
                if self.state is Lifecycle.ACTIVE:
                    self._stop("e-stop engaged (latched until released with false on %s)" % self.cfg.topics.estop)
            elif self._estop:
                logger.warning("e-stop released")
                self._estop = False
                self.safety.stopped()

    def _on_lifecycle(self, m: msgs.String) -> None:
        if m.data not in TRANSITION_FROM:
            return self.sensors.bad("lifecycle", f"unknown transition {m.data!r}; allowed {sorted(TRANSITION_FROM)}")
        self._transition(m.data)

    def estop(self, engaged: bool) -> None:
        """Engage or release the e-stop from code (same path as the e-stop topic)."""
        self._on_estop(msgs.Bool(data=engaged))

    # ---- the loop --------------------------------------------------------------------------------------
    def _observation(self) -> Observation:
        return self.sensors.observation(self._instruction)

    def _stop(self, reason: str, *, keep_inflight: bool = False) -> None:
        """Stop this period. Any stop drops the plan; an asynchronous inference still running is dropped too
        (its observation belongs to before the stop) unless `keep_inflight`: the plan ran dry waiting for it,
        or one action was rejected."""
        if self.cfg.node.wait_for_new_observation and self.state is Lifecycle.ACTIVE:
            frame = self.sensors.frame_stamp()  # a lockstep simulator steps on a stop too: this frame is used up
            if frame is not None and (self._acted_stamp is None or frame > self._acted_stamp):
                self._acted_stamp = frame
        self._moving = False
        self.safety.stopped()
        self.actions.stopped(keep_inflight)
        if self.commands is not None:
            self.commands.stop(self.sensors.joint_positions())
        self.last_reason = reason

    def _status(self, level: Level, message: str, values: dict[str, str]) -> None:
        if self.state is Lifecycle.UNCONFIGURED:  # no publishers yet
            return
        st = msgs.DiagnosticStatus(level=int(level), name="vla_bridge", message=message, hardware_id="",
                                   values=[msgs.KeyValue(k, str(v)) for k, v in values.items()])
        self._status_pub(msgs.DiagnosticArray(header=msgs.header(self.wall_clock()), status=[st]))
        if self._heartbeat_pub is not None:
            self._heartbeat_pub(msgs.header(self.wall_clock(), self.state.value))

    def _wait_for_new_observation(self) -> list[str]:
        """Lockstep with a simulator: wait (at most the stale-sensor window) until every stream of the
        observation (cameras, joint states, pose) has a sample captured after the observation last acted
        on, so no observation is acted on twice and none mixes a new image with the previous state (the
        simulator publishes a frame's topics one after another). Returns the streams still old ([] = ok)."""
        deadline = time.monotonic() + self.stale_after
        while True:
            with self._lock:
                self.sensors.new_sample.clear()
                old = self.sensors.waiting_for(self._acted_stamp)
                if not old or self.state is not Lifecycle.ACTIVE or self._estop:
                    return old
            if time.monotonic() >= deadline:
                return old
            self.sensors.new_sample.wait(min(0.005, max(0.0, deadline - time.monotonic())))

    def tick(self) -> TickReport:
        """One control period. Never raises for bad data or a failing policy: it stops and says why."""
        lockstep = self.cfg.node.wait_for_new_observation
        waited = time.monotonic()
        old_streams = self._wait_for_new_observation() if lockstep and self.state is Lifecycle.ACTIVE else []
        waited = time.monotonic() - waited
        now = self.clock()
        with self._lock:
            self.ticks += 1
            gated = self._gate(now, lockstep, old_streams, waited)
            if isinstance(gated, TickReport):
                return gated
            obs = gated
        # outside the lock: callbacks and e-stop stay live
        action, why, policy_s = self.actions.next(obs, self.ticks, self.cfg.node.policy_timeout_periods)
        with self._lock:
            return self._act(obs, action, why, policy_s)

    def _gate(self, now: float, lockstep: bool, old_streams: list[str], waited: float) -> TickReport | Observation:
        """Everything a period checks before it asks for an action (under the lock): the observation to act
        on, or the report of the stop (or gated output) instead."""
        notes: list[str] = []
        if self._last_tick is not None and now < self._last_tick:
            self.sensors.clock_jumped()
            notes.append(f"clock jumped backwards by {self._last_tick - now:.3f} s")
        self._last_tick = now
        if self.state is not Lifecycle.ACTIVE:
            return self._report(TickReport(self.state, False, f"lifecycle {self.state.value}: output gated", Level.OK))
        if self._estop:
            self._stop("e-stop engaged (latched until released)")
            return self._report(TickReport(self.state, False, self.last_reason, Level.ERROR))
        stale = self.sensors.why_stale(now, self.stale_after)
        if stale:
            self._stop(stale + ("; " + notes[0] if notes else ""))
            return self._report(TickReport(self.state, False, self.last_reason, Level.STALE))
        if not self._instruction:
            self._stop(f"waiting for an instruction on {self.cfg.topics.instruction}")
            return self._report(TickReport(self.state, False, self.last_reason, Level.WARN))
        if lockstep and self.sensors.waiting_for(self._acted_stamp):
            # never act on a frame already acted on (or on a half-delivered one): stop instead
            old = old_streams or self.sensors.waiting_for(self._acted_stamp)
            self._stop(f"lockstep: no new frame from {', '.join(old)} within {waited:.3f} s")
            return self._report(TickReport(self.state, False, self.last_reason, Level.WARN))
        try:
            obs = self._observation()
            obs.validate(cameras=tuple(getattr(self.policy, "cameras", ("primary",))))
        except ContractError as e:
            self._stop(f"observation: {e}")
            return self._report(TickReport(self.state, False, self.last_reason, Level.ERROR))
        if lockstep:
            self._acted_stamp = self.sensors.frame_stamp()  # this frame is used up, whatever comes of it
        return obs

    def _act(self, obs: Observation, action: np.ndarray | None, why: str, policy_s: float) -> TickReport:
        """The action (or why there is none) through the safety filter to the arm (under the lock)."""
        if self.state is not Lifecycle.ACTIVE:
            return self._report(TickReport(self.state, False, f"lifecycle {self.state.value}: output gated", Level.OK))
        if self._estop:
            self._stop("e-stop engaged (latched until released)")
            return self._report(TickReport(self.state, False, self.last_reason, Level.ERROR, policy_s=policy_s))
        seam = self.actions.take_seam()
        if action is None:
            self._stop(why, keep_inflight=True)
            return self._report(TickReport(self.state, False, why, Level.ERROR, policy_s=policy_s, seam=seam))
        ee = self.sensors.ee_position(self.clock(), self.stale_after)
        result = self.safety.filter(action, ee)
        if not result.ok:
            self._stop(result.reason, keep_inflight=True)
            return self._report(TickReport(self.state, False, result.reason, Level.ERROR, policy_s=policy_s,
                                           seam=seam))
        try:
            self.commands.command(result.command, self.sensors.joint_positions(), obs.timestamp,
                                  preview=self._preview(result.command, ee))
        except RuntimeError as e:
            self._stop(f"command: {e}")
            return self._report(TickReport(self.state, False, self.last_reason, Level.ERROR, policy_s=policy_s))
        self.last_reason = result.reason or "running"
        self._moving = True
        level = Level.WARN if result.notes else Level.OK
        return self._report(TickReport(self.state, True, self.last_reason, level, result.command, obs.timestamp,
                                       policy_s, result.notes, seam))

    def _preview(self, cmd: np.ndarray, ee: np.ndarray | None) -> list[np.ndarray]:
        """The plan's next actions after `cmd` as the safety filter would pass them (a copy of it, with the
        end-effector moved by each), for a multi-point JointTrajectory; cut at the first it would reject."""
        n = self.cfg.output.trajectory_points - 1 if self.cfg.output.command == "joint_trajectory" else 0
        if n <= 0:
            return []
        safety, p, out = self.safety.reconfigured(self.safety.cfg), None if ee is None else ee + cmd[:3], []
        for a in self.actions.upcoming(self.ticks + 1, n):
            r = safety.filter(a, p)
            if not r.ok:
                break
            out.append(r.command)
            p = None if p is None else p + r.command[:3]
        return out

    def _report(self, r: TickReport) -> TickReport:
        values = {"state": r.state.value, "estop": self._estop, "tick": self.ticks,
                  "policy_ms": f"{r.policy_s * 1e3:.1f}", "obs_stamp": f"{r.obs_stamp:.6f}",
                  "malformed": sum(self.malformed.values())}
        frame = self.sensors.complete_frame_stamp()
        if frame is not None:  # the newest complete frame held
            values["frame_stamp"] = repr(frame)
        if r.command is not None:
            values["command"] = " ".join(f"{x:.4f}" for x in r.command)
        if r.seam is not None:  # jumps: change of the planned step (m, rad) across the seam, before the filter
            values["seam"] = (f"stale={r.seam.stale} used={r.seam.used} blended={r.seam.blended} "
                              f"jump={r.seam.jump[0]:.6f},{r.seam.jump[1]:.6f} "
                              f"naive={r.seam.naive_jump[0]:.6f},{r.seam.naive_jump[1]:.6f}")
        self._status(r.level, r.reason, values)
        return r

    def watchdog(self) -> bool:
        """Between ticks: stop at once when a required sensor goes stale while moving (True if it stopped).

        Without it a sensor that dies just after a tick is noticed one tick late (up to stale + 1 periods);
        checked every quarter period, the stop comes within stale + 1/4 periods.
        """
        with self._lock:
            if not self._moving or self.state is not Lifecycle.ACTIVE:
                return False
            stale = self.sensors.why_stale(self.clock(), self.stale_after)
            if not stale:
                return False
            self._stop(stale)
            self._report(TickReport(self.state, False, stale, Level.STALE))
            return True

    def run(self, stop: threading.Event, max_ticks: int | None = None) -> None:
        """Tick at `rate_hz` until `stop` is set (absolute schedule, no drift; late ticks are not doubled);
        the stale-sensor watchdog also runs every quarter period in between."""
        next_t = time.monotonic()
        n = 0
        while not stop.is_set() and (max_ticks is None or n < max_ticks):
            self.tick()
            n += 1
            next_t += self.period
            if next_t < time.monotonic():
                next_t = time.monotonic()  # overran: start the next period now
            while not stop.is_set():
                delay = next_t - time.monotonic()
                if delay <= 0:
                    break
                stop.wait(min(delay, self.period / 4))
                if time.monotonic() < next_t - 1e-3:
                    self.watchdog()
        self.deactivate()
