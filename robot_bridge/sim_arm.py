"""A simulated arm that speaks the real arm's topics, for sim-in-the-loop runs of the bridge over DDS.

It creates any gymnasium env by id after importing the module that registers it (`import_module`, e.g.
`sim_envs`), so robot_bridge never imports the simulator package. Per episode (seed):
  deactivate the bridge (lifecycle topic) -> env.reset(seed) -> publish instruction (latched), images,
  joint states, end-effector pose -> once the bridge's status says it holds that
  frame on every stream, activate the bridge -> on every arm command
  (TwistStamped, like MoveIt Servo) step the env with [v * dt, w * dt, latest gripper command] and publish
  the new observation at once. The current frame is also re-published at `camera_hz` with its capture stamp
  (a live stream for the watchdog; the stamp says which state it shows, for the bridge's lockstep option).
An episode ends like in `vla-eval`: terminated (success) or truncated (the env's step limit); success is
`info["success"]` at the end. Zero-velocity (stop) commands are steps too: time passes on a real arm.
The env's observations are in `vla.core.gym`'s layout; they go out as topics, and the bridge node assembles
its `Observation` from those topics as it does on a real arm.

Which robot: `env_kwargs.robot` (sim_envs: panda | ur5e). What /joint_states carries (`joint_states`):
`proprio` (default) the env's proprio vector as `proprio_<i>`, so a policy trained in simulation gets the
observation it was trained on; `robot` the robot's own joints, by name (arm then fingers, e.g.
`ur5e_shoulder_pan_joint`, ..., `ur5e_gripper_r_finger_joint`) with positions and velocities, as a real
arm's driver publishes them (the env must offer `joint_state()`, as sim_envs' does).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_bridge import msgs
from robot_bridge.config import BridgeConfig
from robot_bridge.transport.base import LATCHED, RELIABLE, SENSOR, Transport
from vla.core.gym import INSTRUCTION_KEY, PROPRIO_KEY

logger = logging.getLogger(__name__)
JOINT_STATE_SOURCES = ("proprio", "robot")


@dataclass
class SimArmConfig:
    """Attributes:
        env_id: gymnasium id, e.g. `vla_sim/LiftCube-v0`.
        import_module: imported before `gymnasium.make` so the id is registered ("" = none needed).
        env_kwargs: passed to `gymnasium.make` (dr_level, image_size, cameras, max_episode_steps, ...).
        seeds: one episode per seed (vla-eval's default seeds start at 1_000_000).
        camera_hz: re-publish rate of the current images / joint states (fresh stamps).
        ee_position_indices: where the end-effector xyz sits in the env's proprio ([] = no pose topic).
        joint_states: what /joint_states carries: `proprio` (the env's proprio as proprio_<i>) or `robot` (the
            robot's joint names, positions and velocities, like a real arm's driver).
        command_timeout_s: an episode with no arm command for this long is ended as failed.
        settle_s: pause between publishing a reset observation and activating the bridge (which also waits
            until the bridge's status reports that it holds the reset frame, when a status topic is set).
    """

    env_id: str = "vla_sim/LiftCube-v0"
    import_module: str = "sim_envs"
    env_kwargs: dict[str, Any] = field(default_factory=lambda: {"dr_level": "none", "image_size": 224,
                                                                   "cameras": ["primary", "wrist"]})
    seeds: list[int] = field(default_factory=lambda: [1_000_000, 1_000_001])
    camera_hz: float = 30.0
    ee_position_indices: list[int] = field(default_factory=lambda: [0, 1, 2])
    joint_states: str = "proprio"
    command_timeout_s: float = 5.0
    settle_s: float = 0.1

    def __post_init__(self) -> None:
        if self.joint_states not in JOINT_STATE_SOURCES:
            raise ValueError(f"sim.joint_states must be one of {list(JOINT_STATE_SOURCES)}, got {self.joint_states!r}")


def make_env(cfg: SimArmConfig):
    import importlib

    import gymnasium

    if cfg.import_module:
        importlib.import_module(cfg.import_module)
    kwargs = dict(cfg.env_kwargs)
    if "cameras" in kwargs:
        kwargs["cameras"] = tuple(kwargs["cameras"])
    try:
        return gymnasium.make(cfg.env_id, **kwargs)
    except gymnasium.error.Error as e:
        raise ValueError(f"cannot make env {cfg.env_id!r} (after importing {cfg.import_module!r}): {e}") from e


def _quat_from_rpy(r: float, p: float, y: float) -> tuple[float, float, float, float]:
    cr, sr, cp, sp, cy, sy = math.cos(r / 2), math.sin(r / 2), math.cos(p / 2), math.sin(p / 2), math.cos(y / 2), math.sin(y / 2)
    return (sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy)


class SimArm:
    def __init__(self, cfg: SimArmConfig, bridge: BridgeConfig, transport: Transport, env=None):
        self.cfg, self.bridge = cfg, bridge
        self.dt = 1.0 / bridge.node.rate_hz
        self.env = env if env is not None else make_env(cfg)
        if cfg.joint_states == "robot" and not hasattr(self.env.unwrapped, "joint_state"):
            raise ValueError(f"sim.joint_states=robot needs an env with joint_state() (sim_envs' TabletopEnv); "
                             f"{cfg.env_id} has none: use sim.joint_states=proprio")
        t, topics = transport, bridge.topics
        self._image_pubs = {cam: t.publisher(topic, msgs.Image, SENSOR) for cam, topic in topics.cameras.items()}
        self._joint_pub = t.publisher(topics.joint_states, msgs.JointState, SENSOR) if topics.joint_states else None
        self._ee_pub = t.publisher(topics.ee_pose, msgs.PoseStamped, SENSOR) if topics.ee_pose and cfg.ee_position_indices else None
        self._instr_pub = t.publisher(topics.instruction, msgs.String, LATCHED)
        self._life_pub = t.publisher(topics.lifecycle, msgs.String, RELIABLE)
        self._commands: queue.Queue[np.ndarray] = queue.Queue()
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()  # one frame's topics go out together, frames in order
        self._obs: dict[str, np.ndarray] | None = None
        self._joints: dict[str, list] | None = None  # the robot's joint state read with `_obs`
        self._obs_stamp = 0.0
        self._accepting = False
        self._gripper = 1.0
        if bridge.output.command != "twist":
            raise ValueError("the simulated arm takes TwistStamped commands (bridge.output.command=twist)")
        t.subscribe(topics.twist, msgs.TwistStamped, RELIABLE, self._on_twist)
        self._bridge_frame = -math.inf  # the oldest stamp of the newest complete frame the bridge holds
        self._bridge_state = ""  # the bridge's lifecycle state, as its status reports it
        self._bridge_frame_changed = threading.Condition()
        if topics.status:
            t.subscribe(topics.status, msgs.DiagnosticArray, RELIABLE, self._on_status)
        if topics.gripper:
            t.subscribe(topics.gripper, msgs.Float64MultiArray, RELIABLE, self._on_gripper)
        self.stop_event = threading.Event()

    # -- commands in -----------------------------------------------------------------------------------
    def _on_gripper(self, m: msgs.Float64MultiArray) -> None:
        if len(m.data) == 1 and math.isfinite(m.data[0]):
            self._gripper = float(np.clip(m.data[0], 0.0, 1.0))

    def _on_twist(self, m: msgs.TwistStamped) -> None:
        lin, ang = m.twist.linear, m.twist.angular
        a = np.array([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z], np.float64) * self.dt
        with self._lock:  # a command racing the end of an episode is dropped, never queued for the next one
            if self._accepting:
                self._commands.put(np.append(a, self._gripper).astype(np.float32))

    def _on_status(self, m: msgs.DiagnosticArray) -> None:
        for st in m.status:
            for kv in st.values:
                if kv.key in ("frame_stamp", "state"):
                    with self._bridge_frame_changed:
                        if kv.key == "frame_stamp":
                            self._bridge_frame = float(kv.value)
                        else:
                            self._bridge_state = kv.value
                        self._bridge_frame_changed.notify_all()

    def _lifecycle(self, transition: str) -> None:
        """Send `transition` until the bridge's status shows it took effect. The lifecycle topic is VOLATILE,
        and right after a process starts the bridge's reader may not have matched this writer yet (with
        rclpy, discovering a new process took up to 3 s here), so a single message can be lost."""
        self._life_pub(msgs.String(transition))
        if not self.bridge.topics.status:
            return
        done = (lambda s: s == "active") if transition == "activate" else (lambda s: s not in ("", "active"))
        deadline = time.monotonic() + self.cfg.command_timeout_s
        while True:
            with self._bridge_frame_changed:
                if self._bridge_frame_changed.wait_for(lambda: done(self._bridge_state), 0.5):
                    return
            if time.monotonic() > deadline:
                logger.warning("the bridge's status has not confirmed %r within %.1f s", transition,
                               self.cfg.command_timeout_s)
                return
            self._life_pub(msgs.String(transition))

    def _wait_until_bridge_holds(self, stamp: float, timeout: float) -> bool:
        """Wait until the bridge's status says every stream it reads carries the frame stamped `stamp`."""
        stamp = msgs.from_time(msgs.to_time(stamp)) - 1e-6  # as the stamp travels in the header
        with self._bridge_frame_changed:
            return self._bridge_frame_changed.wait_for(lambda: self._bridge_frame >= stamp, timeout)

    def _set_accepting(self, on: bool) -> None:
        with self._lock:
            self._accepting = on
            while not self._commands.empty():
                self._commands.get_nowait()

    # -- observations out ------------------------------------------------------------------------------
    def _publish(self, obs: dict[str, np.ndarray], now: float) -> None:
        """Publish one observation; `now` is its capture time (re-published frames keep their stamp)."""
        for cam, pub in self._image_pubs.items():
            if cam in obs:
                pub(msgs.image_from_array(obs[cam], now, f"{cam}_camera"))
        proprio = np.asarray(obs[PROPRIO_KEY], np.float64)
        if self._joint_pub is not None:
            joints = self._joints if self.cfg.joint_states == "robot" else None
            if joints is not None:
                self._joint_pub(msgs.JointState(header=msgs.header(now), name=list(joints["name"]),
                                                position=list(joints["position"]), velocity=list(joints["velocity"])))
            else:
                self._joint_pub(msgs.JointState(header=msgs.header(now), name=[f"proprio_{i}" for i in range(proprio.size)],
                                                position=proprio.tolist()))
        if self._ee_pub is not None:
            xyz = proprio[self.cfg.ee_position_indices]
            q = _quat_from_rpy(*proprio[3:6]) if proprio.size >= 6 else (0.0, 0.0, 0.0, 1.0)
            self._ee_pub(msgs.PoseStamped(header=msgs.header(now, self.bridge.output.frame_id),
                                          pose=msgs.Pose(position=msgs.Point(*map(float, xyz)), orientation=msgs.Quaternion(*q))))

    def _set_obs(self, obs: dict[str, np.ndarray]) -> None:
        joints = self.env.unwrapped.joint_state() if self.cfg.joint_states == "robot" else None
        with self._publish_lock:
            stamp = time.time()
            with self._lock:
                self._obs, self._obs_stamp, self._joints = obs, stamp, joints
            self._publish(obs, stamp)

    def _camera_loop(self) -> None:
        """Re-publish the current frame. Holding the publish lock from reading the frame to sending it means
        an older frame is never sent after a newer one (the bridge would see the arm jump back a step)."""
        period = 1.0 / self.cfg.camera_hz
        while not self.stop_event.wait(period):
            with self._publish_lock:
                with self._lock:
                    obs, stamp = self._obs, self._obs_stamp
                if obs is not None:
                    self._publish(obs, stamp)

    # -- episodes --------------------------------------------------------------------------------------
    def run_episode(self, seed: int) -> dict[str, Any]:
        self._set_accepting(False)
        self._lifecycle("deactivate")
        obs, info = self.env.reset(seed=seed)
        instruction = str(info.get(INSTRUCTION_KEY, ""))
        self._instr_pub(msgs.String(instruction))
        self._set_obs(obs)
        time.sleep(self.cfg.settle_s)
        # Activate only once the bridge holds the whole reset frame: its first action must answer this
        # frame, not the previous episode's last one (a lost or late reset image would pair them).
        if self.bridge.topics.status and not self._wait_until_bridge_holds(self._obs_stamp, self.cfg.command_timeout_s):
            logger.warning("the bridge has not reported the reset frame within %.1f s; activating anyway",
                           self.cfg.command_timeout_s)
        self._set_accepting(True)
        self._lifecycle("activate")
        steps, success, reason, t0 = 0, bool(info.get("success", False)), "", time.perf_counter()
        while True:
            try:
                action = self._commands.get(timeout=self.cfg.command_timeout_s)
            except queue.Empty:
                reason = f"no arm command for {self.cfg.command_timeout_s} s"
                break
            obs, _, terminated, truncated, info = self.env.step(action)
            self._set_obs(obs)
            steps += 1
            success = bool(info.get("success", False))
            if terminated or truncated:
                reason = "terminated" if terminated else "truncated"
                break
        self._set_accepting(False)
        self._lifecycle("deactivate")
        return {"env_id": self.cfg.env_id, "seed": int(seed), "success": success, "steps": steps,
                "instruction": instruction, "end": reason, "seconds": time.perf_counter() - t0,
                "final_proprio": np.asarray(obs[PROPRIO_KEY], float).tolist()}

    def run(self, out_path: str | Path | None = None) -> list[dict[str, Any]]:
        cam = threading.Thread(target=self._camera_loop, daemon=True)
        cam.start()
        results = []
        try:
            for seed in self.cfg.seeds:
                r = self.run_episode(seed)
                logger.info("episode seed %d: success=%s steps=%d (%s)", seed, r["success"], r["steps"], r["end"])
                results.append(r)
        finally:
            self.stop_event.set()
            self.env.close()
        if out_path is not None:
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            Path(out_path).write_text(json.dumps(summarize(results), indent=2))
        return results


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Episodes plus the success rate and its 95% Wilson interval (the project's one, as `vla-eval` reports)."""
    from vla.core.intervals import wilson_interval  # scipy.stats: only when a run is summarized

    k, n = sum(r["success"] for r in results), len(results)
    lo, hi = wilson_interval(k, n)
    return {"episodes": results, "success_rate": k / n if n else 0.0, "success_ci95": [lo, hi], "num_episodes": n}
