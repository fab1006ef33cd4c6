"""Dataclass schema of the bridge (hydra group `bridge/`, also the ROS 2 parameters YAML).

Defaults match a Franka-class arm behind MoveIt Servo; configs/bridge/*.yaml only override.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_bridge.safety import SafetyConfig

COMMAND_KINDS = ("twist", "cartesian_velocity", "joint_position", "joint_velocity", "joint_trajectory", "none")
#: outputs that need the arm's inverse kinematics (an end-effector delta has no joint form without it)
JOINT_COMMANDS = ("joint_position", "joint_velocity", "joint_trajectory")
PROPRIO_SOURCES = ("joint_positions", "ee_pose")


@dataclass
class TopicsConfig:
    """ROS 2 topic names (absolute). An empty string switches that input/output off.

    Attributes:
        cameras: camera name (as the policy knows it) -> image topic.
        compressed_cameras: the cameras whose topic carries sensor_msgs/CompressedImage (JPEG or PNG, what
            image_transport publishes on `<camera topic>/compressed` and what most robots record) instead of
            sensor_msgs/Image; decoded as the converter decodes them (robot_bridge/images.py).
    """

    cameras: dict[str, str] = field(default_factory=lambda: {"primary": "/camera/primary/image_raw"})
    compressed_cameras: list[str] = field(default_factory=list)
    joint_states: str = "/joint_states"
    ee_pose: str = "/ee_pose"
    instruction: str = "/vla/instruction"
    estop: str = "/vla/estop"
    lifecycle: str = "/vla_bridge/lifecycle"
    twist: str = "/servo_node/delta_twist_cmds"
    cartesian_velocity: str = "/cartesian_velocity_controller/commands"
    joint_position: str = "/forward_position_controller/commands"
    joint_velocity: str = "/forward_velocity_controller/commands"
    joint_trajectory: str = "/joint_trajectory_controller/joint_trajectory"
    gripper: str = "/gripper_controller/commands"
    action: str = "/vla_bridge/action"
    status: str = "/diagnostics"
    heartbeat: str = "/vla_bridge/heartbeat"

    def __post_init__(self) -> None:
        unknown = [c for c in self.compressed_cameras if c not in self.cameras]
        if unknown:
            raise ValueError(f"bridge.topics.compressed_cameras has {unknown}, which are not cameras; cameras: "
                             f"{sorted(self.cameras)}")
        raw = [c for c, topic in self.cameras.items() if topic.endswith("/compressed") and c not in self.compressed_cameras]
        if raw:  # subscribed as Image, the DDS types never match and the camera stays silent ("no message yet")
            raise ValueError(f"camera topic(s) {[self.cameras[c] for c in raw]} end in /compressed (image_transport's "
                             f"CompressedImage); add bridge.topics.compressed_cameras=[{','.join(raw)}]")


@dataclass
class OutputConfig:
    """Which command the arm gets.

    Attributes:
        command: `twist` (geometry_msgs/TwistStamped in m/s, rad/s, for MoveIt Servo);
            `cartesian_velocity` (std_msgs/Float64MultiArray [vx, vy, vz, wx, wy, wz] for a Cartesian
            velocity controller); for ros2_control joint controllers, via `ik`: `joint_position` /
            `joint_velocity` (Float64MultiArray for forward position / velocity controllers) or
            `joint_trajectory` (trajectory_msgs/JointTrajectory for ros2_control's joint trajectory controller:
            `trajectory_points` points, point k at time_from_start (k+1) periods); or `none` (only the action
            topic, e.g. for dry runs).
        frame_id: the base frame the action is expressed in (MoveIt Servo ignores an empty frame).
        gripper: also publish the absolute gripper command as Float64MultiArray [g] in [0, 1].
        joint_names: joint order for `joint_trajectory` (and for reading /joint_states by name).
        ik: "module:function" with signature f(joint_positions (N,), ee_delta (6,)) -> joint targets (N,);
            required for the joint outputs.
        max_joint_step: a joint target further than this (rad) from the current position is rejected (an IK
            jump near a singularity must not reach the arm).
        trajectory_points: points per JointTrajectory: this period's command, then the next planned actions
            of the current chunk, each passed through a copy of the safety filter as if executed (end-effector
            moved by the ones before) and chained through `ik`; the trajectory is cut at the first one the
            filter or the IK check refuses. Velocities are central differences, zero at the last point.
            Sent every period, each trajectory replaces the last (stamp 0: start now), so the controller
            interpolates through the chunk; if the bridge falls silent, the arm finishes at most this many
            periods of safe motion and comes to rest at the last point. 1 = one point one period ahead.
    """

    command: str = "twist"
    frame_id: str = "base_link"
    gripper: bool = True
    joint_names: list[str] = field(default_factory=list)
    ik: str = ""
    max_joint_step: float = 0.1
    trajectory_points: int = 1

    def __post_init__(self) -> None:
        if self.trajectory_points < 1:
            raise ValueError(f"bridge.output.trajectory_points={self.trajectory_points}; at least 1 point per trajectory")
        if self.command not in COMMAND_KINDS:
            raise ValueError(f"bridge.output.command={self.command!r}; choose one of {COMMAND_KINDS}")
        if self.command == "twist" and not self.frame_id:
            raise ValueError("bridge.output.frame_id must be non-empty: MoveIt Servo ignores twists without a frame")
        if self.command in JOINT_COMMANDS and (not self.ik or ":" not in self.ik):
            raise ValueError(f"bridge.output.command={self.command} needs bridge.output.ik='module:function' "
                             "(joint_positions, ee_delta) -> joint targets, and bridge.output.joint_names")


@dataclass
class NodeConfig:
    """The rate loop.

    Attributes:
        rate_hz: control rate; one action per period.
        stale_after_periods: a required sensor older than this many periods is stale; the watchdog checks
            every quarter period, so a sensor that stops is stopped on within (stale_after_periods + 1/4)
            periods.
        required: inputs whose silence stops the arm: `cameras`, `joint_states`, `ee_pose`.
        proprio: what goes into Observation.proprio, in order (`joint_positions`, `ee_pose` = xyz + quat xyzw).
        instruction: used until one arrives on the instruction topic ("" = wait for one).
        autostart: configure and activate at start (otherwise wait for the lifecycle topic).
        policy_timeout_periods: a policy that has not answered within this many periods is "slow": the arm
            is stopped for that period and the late answer is discarded.
        execute_chunk: how many actions of a chunk run before the policy is asked again (0 = all).
        inference: `sync`: the policy is asked when the plan is spent, and the period waits for it (at most
            policy_timeout_periods); `async`: the next chunk is computed in a worker thread while the current
            one runs, asked early enough that it arrives before the plan runs out (the slowest of the last 10
            inference times plus the seam), and spliced in by the periods actually consumed since its
            observation (robot_bridge/chunks.py). For chunked policies; the period never waits for the policy.
        seam_steps: with `async`, periods over which a new chunk is cross-faded with the rest of the old one.
        wait_for_new_observation: before each policy call, wait (at most the stale window) until every stream
            of the observation (cameras, joint states, pose) has a sample captured after the last
            observation acted on; if none comes, stop for that period instead of acting on an old frame.
            For simulators in lockstep (a slow policy must not act twice on one frame, and the images of
            a new frame must not be paired with the previous joint states); real cameras always deliver
            new frames, so it never waits there.
    """

    rate_hz: float = 10.0
    stale_after_periods: float = 1.0
    required: list[str] = field(default_factory=lambda: ["cameras", "joint_states"])
    proprio: list[str] = field(default_factory=lambda: ["joint_positions"])
    instruction: str = ""
    autostart: bool = True
    policy_timeout_periods: float = 0.8
    execute_chunk: int = 0
    inference: str = "sync"
    seam_steps: int = 3
    wait_for_new_observation: bool = False

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ValueError(f"bridge.node.rate_hz must be > 0, got {self.rate_hz}")
        if not self.stale_after_periods > 0:
            raise ValueError(f"bridge.node.stale_after_periods must be > 0, got {self.stale_after_periods}")
        bad = [r for r in self.required if r not in ("cameras", "joint_states", "ee_pose")]
        if bad:
            raise ValueError(f"bridge.node.required has {bad}; allowed: cameras, joint_states, ee_pose")
        if self.inference not in ("sync", "async"):
            raise ValueError(f"bridge.node.inference={self.inference!r}; choose sync or async")
        if self.seam_steps < 0:
            raise ValueError(f"bridge.node.seam_steps must be >= 0, got {self.seam_steps}")
        if self.inference == "async" and self.wait_for_new_observation:
            raise ValueError("bridge.node.inference=async runs the plan between frames; lockstep with a simulator "
                             "(wait_for_new_observation=true) needs inference=sync")
        bad = [p for p in self.proprio if p not in PROPRIO_SOURCES]
        if bad:
            raise ValueError(f"bridge.node.proprio has {bad}; allowed: {PROPRIO_SOURCES}")


@dataclass
class BridgeConfig:
    node: NodeConfig = field(default_factory=NodeConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)


# ---- settings by dotted name (the ROS 2 parameters of the node on transport=rclpy) -----------------------
#: settings a running node takes (everything else is fixed once the node is configured): the instruction,
#: the stale-sensor window, the policy timeout and every safety limit.
LIVE_SETTINGS = ("node.instruction", "node.stale_after_periods", "node.policy_timeout_periods", "safety.")


def is_live(name: str) -> bool:
    """`name` (e.g. `safety.max_linear_velocity`) can change while the node runs."""
    return any(name == s or (s.endswith(".") and name.startswith(s)) for s in LIVE_SETTINGS)


def settings(cfg: BridgeConfig) -> dict[str, tuple[object, str]]:
    """Every leaf setting as `{dotted name: (value, kind)}`, kind one of bool, int, float, str, list[float],
    list[str] (from the dataclass fields, so an empty list still has an element type). A map such as
    `topics.cameras` becomes one setting per key."""
    import dataclasses
    import typing

    out: dict[str, tuple[object, str]] = {}

    def walk(prefix: str, obj) -> None:
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            value, kind, name = getattr(obj, f.name), hints[f.name], f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(name + ".", value)
            elif isinstance(value, dict):
                out.update({f"{name}.{k}": (v, type(v).__name__) for k, v in value.items()})
            elif typing.get_origin(kind) is list:
                out[name] = (list(value), f"list[{typing.get_args(kind)[0].__name__}]")
            else:
                out[name] = (value, kind.__name__)

    walk("", cfg)
    return out


def with_changes(cfg: BridgeConfig, changes: dict[str, object]) -> BridgeConfig:
    """A copy of `cfg` with `changes` ({dotted name: value}) applied and every section validated again by
    its `__post_init__` (a ValueError names the setting). Unknown names raise KeyError."""
    import dataclasses

    def apply(obj, items: dict[str, object]):
        fields = {f.name for f in dataclasses.fields(obj)}
        direct: dict[str, object] = {}
        nested: dict[str, dict[str, object]] = {}
        for name, value in items.items():
            head, _, rest = name.partition(".")
            if head not in fields:
                raise KeyError(f"no setting {name!r}")
            if rest:
                nested.setdefault(head, {})[rest] = value
            else:
                direct[head] = list(value) if isinstance(value, (list, tuple)) else value
        for head, sub in nested.items():
            current = getattr(obj, head)
            direct[head] = {**current, **sub} if isinstance(current, dict) else apply(current, sub)
        return dataclasses.replace(obj, **direct)

    return apply(cfg, changes)
