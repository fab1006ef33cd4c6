"""rosbag2 (mcap or sqlite3) recordings -> RLDS episodes for `vla-train` (LoRA fine-tuning on a new robot).

Per bag:
1. Read the mapped topics as rosbag2 does (`robot_bridge.bags`: the storage's own topic tables, counts checked
   against the storage and metadata.yaml; message definitions the bag's own or the chosen distro's, logged).
   Before decoding anything, every mapped topic is checked: at least one is in the bag, each has a type its
   role takes (cameras: sensor_msgs/Image or CompressedImage), and every type can be decoded; each failure
   names the topic, lists the bag's topics and says what to set. A bag without instruction messages needs
   `instruction=...`: an episode is never written with an empty instruction.
2. Episodes: a bag is one session; with the bridge's lifecycle topic recorded, each activate ... deactivate
   span is one episode and inactive time is dropped (the sim arm and a user's episode script do this).
3. Time-align at the control rate: a grid t_k = t0 + k / rate_hz over the span where every required stream
   has data; each stream contributes its latest message at or before t_k (sensor header stamps; the bag's
   receive time where a stamp is 0). A stream older than `max_age_periods` at t_k is a gap: the episode is
   split there, so a recording with a pause does not teach "stand still while the world jumps".
4. Actions (7-D contract: dxyz, drpy in the base frame, gripper absolute):
   `commanded`: the bridge's safe commands (`/vla_bridge/action`, stamped with the observation they answered)
                whose observation lies in (t_k-1, t_k], summed; a period without a command (a stop) is a zero
                motion holding the gripper.
   `measured`:  end-effector pose differences pose(t_k+1) relative to pose(t_k) (rotation as extrinsic
                xyz Euler angles of R_k+1 R_k^T); the gripper from the gripper command topic (1 = open).
5. Write with `vla.data.rlds_writer.RLDSWriter` (the same layout as our sim data and the OXE datasets).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_bridge.bags import DISTROS, Bag, BagCountError, BagError
from robot_bridge.config import TopicsConfig
from robot_bridge.images import array_from_any
from vla.core.episode import Episode, EpisodeMetadata

logger = logging.getLogger(__name__)


@dataclass
class ConvertTopics:
    """Topic mapping (ROS names); empty strings switch a stream off. The defaults are the bridge's own
    (`robot_bridge.config.TopicsConfig`): a recording of `vla-bridge record.enabled=true` converts as it is."""

    cameras: dict[str, str] = field(default_factory=lambda: dict(TopicsConfig().cameras))
    joint_states: str = TopicsConfig.joint_states
    ee_pose: str = TopicsConfig.ee_pose
    instruction: str = TopicsConfig.instruction
    lifecycle: str = TopicsConfig.lifecycle
    action: str = TopicsConfig.action
    gripper: str = TopicsConfig.gripper


@dataclass
class ConvertConfig:
    """Attributes:
        bags: rosbag2 directories (mcap or sqlite3; the storage is read from metadata.yaml), or single .mcap /
            .db3 files.
        output_dir / name / version: the RLDS dataset goes to <output_dir>/<name>/<version>.
        rate_hz: control rate of the episodes (the policy's rate).
        action_source: `commanded` or `measured` (see the module docstring).
        align: `control_rate` (a grid at rate_hz) or `commands` (one step per executed bridge command, at the
            observation it answered; exact for bridge recordings, needs action_source=commanded).
        proprio: Observation.state sources in order: `joint_positions`, `ee_pose` (xyz + quat xyzw).
        joint_names: joints (and order) of `joint_positions`, merged by name across joint-state messages
            (drivers often publish arm and gripper separately); [] = each message's positions as they are.
        image_size: [H, W] the images are resized to (the dataset has one size).
        instruction: the instruction of a bag without instruction messages (no messages on topics.instruction,
            or topics.instruction=""). A bag with neither is an error: nothing is written with an empty one.
        distro: message definitions of this ROS 2 distro (humble, iron, jazzy, kilted, ...); "" = the bag's own
            (those it carries, else those of the distro its metadata names). The log says which were used.
        msg_files: .msg files (<package>/msg/<Name>.msg) for message types neither the bag nor the distro define.
        max_age_periods: a stream older than this at a grid time is a gap (split).
        min_steps: shorter segments are dropped.
        success: written to episode_metadata/success (a recording does not know it).
        strict_counts: a message-count mismatch with the metadata is an error (else a warning).
    """

    bags: list[str] = field(default_factory=list)
    output_dir: str = "outputs/data"
    name: str = "robot_recordings"
    version: str = "1.0.0"
    rate_hz: float = 10.0
    action_source: str = "commanded"
    align: str = "control_rate"
    proprio: list[str] = field(default_factory=lambda: ["joint_positions"])
    joint_names: list[str] = field(default_factory=list)
    image_size: list[int] = field(default_factory=lambda: [224, 224])
    instruction: str = ""
    distro: str = ""
    msg_files: list[str] = field(default_factory=list)
    max_age_periods: float = 2.0
    min_steps: int = 2
    success: bool = False
    strict_counts: bool = True
    overwrite: bool = False
    topics: ConvertTopics = field(default_factory=ConvertTopics)

    def __post_init__(self) -> None:
        if self.action_source not in ("commanded", "measured"):
            raise ValueError(f"convert.action_source={self.action_source!r}; choose commanded or measured")
        if self.align not in ("control_rate", "commands"):
            raise ValueError(f"convert.align={self.align!r}; choose control_rate or commands")
        if self.align == "commands" and self.action_source != "commanded":
            raise ValueError("convert.align=commands needs action_source=commanded (the bridge's executed commands)")
        bad = [p for p in self.proprio if p not in ("joint_positions", "ee_pose")]
        if bad:
            raise ValueError(f"convert.proprio has {bad}; allowed: joint_positions, ee_pose")
        if "primary" not in self.topics.cameras:
            raise ValueError("convert.topics.cameras needs a 'primary' camera topic")
        if not self.rate_hz > 0:
            raise ValueError(f"convert.rate_hz must be > 0, got {self.rate_hz}")
        if self.distro and self.distro not in DISTROS:
            raise ValueError(f"convert.distro={self.distro!r}; choose one of {DISTROS}, or '' for the bag's own")


#: the message types each kind of topic takes (cameras: raw or compressed; the rest: what the bridge records)
ROLE_TYPES = {
    "camera": ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"),
    "joint_states": ("sensor_msgs/msg/JointState",),
    "ee_pose": ("geometry_msgs/msg/PoseStamped",),
    "instruction": ("std_msgs/msg/String",),
    "lifecycle": ("std_msgs/msg/String",),
    "action": ("sensor_msgs/msg/JointState",),
    "gripper": ("std_msgs/msg/Float64MultiArray",),
}


def read_bag(path: str | Path, topics: list[str], *, strict: bool = True, distro: str = "",
             msg_files: list[str] | tuple[str, ...] = ()) -> dict[str, list[tuple[float, float, Any]]]:
    """topic -> [(stamp, bag_time, message)] sorted by stamp, for the given topics (missing topics: [])."""
    with Bag(path, distro=distro, msg_files=msg_files) as bag:
        return bag.read(topics, strict=strict)


def _string_like(typestore, msgtype: str) -> bool:
    """A type with one string field `data` (std_msgs/String's layout, e.g. example_interfaces/msg/String)."""
    fields = typestore.fielddefs.get(msgtype, ((), ()))[1]
    if len(fields) != 1 or fields[0][0] != "data":
        return False
    kind, spec = fields[0][1]
    return getattr(kind, "name", "") == "BASE" and spec[0] == "string"


def _image(msg, size: tuple[int, int]) -> np.ndarray:
    arr = array_from_any(msg)
    if arr.shape[:2] != tuple(size):
        from PIL import Image as PILImage

        arr = np.asarray(PILImage.fromarray(arr).resize((size[1], size[0]), PILImage.BILINEAR))
    return np.ascontiguousarray(arr, np.uint8)


def _pose(msg) -> np.ndarray:
    p, q = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], np.float64)


def _joints_by_name(stream, last: int, names: list[str]) -> np.ndarray | None:
    """Latest value of each named joint over messages[0..last] (scans back; joint groups interleave);
    None while some joint has not been seen yet."""
    found: dict[str, float] = {}
    for i in range(last, -1, -1):
        msg = stream[i][2]
        for n, p in zip(msg.name, msg.position):
            found.setdefault(n, float(p))
        if all(n in found for n in names):
            return np.array([found[n] for n in names])
    return None


def _latest(stream: list[tuple[float, float, Any]], t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the latest sample at or before each t (-1 if none) and its age."""
    stamps = np.array([s[0] for s in stream])
    idx = np.searchsorted(stamps, t, side="right") - 1
    age = np.where(idx >= 0, t - stamps[np.clip(idx, 0, None)], np.inf)
    return idx, age


def bag_to_episodes(path: str | Path, cfg: ConvertConfig) -> list[Episode]:
    """The episodes of one bag (see the module docstring)."""
    return BagConverter(path, cfg).episodes()


class BagConverter:
    """One bag on its way to episodes.

    Construction reads the bag and lays the time grid (steps 1-3 of the module docstring): the streams, the
    grid times, the latest sample of every required stream at each, which grid times are usable, and the
    lifecycle span of each. `episodes()` walks the grid (step 4): a step is the action, state, images and
    instruction at one grid time; a gap or a lifecycle change ends a segment, and each segment long enough
    becomes an `Episode`.
    """

    def __init__(self, path: str | Path, cfg: ConvertConfig) -> None:
        self.path, self.cfg, self.topics = path, cfg, cfg.topics
        self.period = 1.0 / cfg.rate_hz
        self.measured = cfg.action_source == "measured"  # needs the pose one step later
        self.data = self._read()
        self.required = self._required_streams()
        self.t0 = max(self.data[t][0][0] for t in self.required)
        self.t1 = min(self.data[t][-1][0] for t in self.required)
        if cfg.action_source == "commanded":
            self._read_commands()
        self.grid, self.step_t = self._lay_grid()
        self.idx = {t: _latest(self.data[t], self.grid) for t in self.required}
        fresh = np.all([age <= cfg.max_age_periods * self.period for _, age in self.idx.values()], axis=0)
        self.epoch, active = self._lifecycle_spans()
        self.ok = fresh & active
        self._gripper = 1.0  # the last commanded gripper, held through periods without a command

    # -- reading and the grid ----------------------------------------------------------------------------
    def _roles(self) -> dict[str, str]:
        """topic -> its role (a ROLE_TYPES key), for every topic the config maps."""
        tp = self.topics
        roles = {topic: "camera" for topic in tp.cameras.values() if topic}
        for role in ("joint_states", "ee_pose", "instruction", "action", "gripper", "lifecycle"):
            if getattr(tp, role):
                roles.setdefault(getattr(tp, role), role)
        return roles

    def _read(self) -> dict[str, list[tuple[float, float, Any]]]:
        roles = self._roles()
        with Bag(self.path, distro=self.cfg.distro, msg_files=self.cfg.msg_files) as bag:
            self.bag_topics = bag.describe_topics()
            present = [t for t in roles if t in bag.topics]
            if not present:
                raise BagError(f"{self.path}: none of the configured topics {sorted(roles)} is in the bag. It has:\n"
                               f"{self.bag_topics}\nmap yours, e.g. convert.topics.cameras.primary=<camera topic> "
                               "convert.topics.joint_states=<joint state topic>")
            bag.check_types(present)
            ts = bag.typestore()
            for topic in present:
                role, typ = roles[topic], bag.topics[topic].type
                if typ not in ROLE_TYPES[role] and not (role == "instruction" and _string_like(ts, typ)):
                    raise BagError(f"{self.path}: {topic} ({'a camera' if role == 'camera' else role} topic) has type "
                                   f"{typ}; it must be {' or '.join(ROLE_TYPES[role])}. Topics in the bag:\n"
                                   f"{self.bag_topics}")
            data = bag.read(present, strict=self.cfg.strict_counts)
            self.definitions = bag.definitions
        data.update({t: [] for t in roles if t not in data})
        return data

    def _required_streams(self) -> list[str]:
        """The topics every step needs; joint states are kept to the configured joints (merged by name)."""
        cfg, tp, data = self.cfg, self.topics, self.data
        required = list(tp.cameras.values())
        if "joint_positions" in cfg.proprio:
            required.append(tp.joint_states)
            if cfg.joint_names:  # keep only messages with configured joints; values merged by name in _state
                data[tp.joint_states] = [s for s in data[tp.joint_states]
                                         if any(n in cfg.joint_names for n in s[2].name)]
            else:
                sizes = {len(s[2].position) for s in data[tp.joint_states]}
                if len(sizes) > 1:
                    raise ValueError(f"{self.path}: {tp.joint_states} messages carry different joint sets (sizes "
                                     f"{sorted(sizes)}); set convert.joint_names=[...] to merge them by name")
        if "ee_pose" in cfg.proprio or self.measured:
            required.append(tp.ee_pose)
        empty = [t for t in required if not data.get(t)]
        if empty:
            raise ValueError(f"{self.path}: no messages on required topic(s) {empty}; topics in the bag:\n"
                             f"{self.bag_topics}\nmap them with convert.topics.* (or change convert.proprio)")
        if not (tp.instruction and data.get(tp.instruction)) and not cfg.instruction.strip():
            raise ValueError(f"{self.path}: no instruction: no messages on {tp.instruction or '(no topic)'} and "
                             "convert.instruction is empty. Set convert.instruction='<what the robot was told to do>' "
                             "(used for the whole bag), or map the topic that carries it with "
                             f"convert.topics.instruction=<topic>. Topics in the bag:\n{self.bag_topics}")
        return required

    def _read_commands(self) -> None:
        action = self.topics.action
        if not self.data.get(action):
            raise ValueError(f"{self.path}: action_source=commanded needs messages on {action!r} (the bridge's safe "
                             "commands); record them, or use action_source=measured with an ee_pose topic")
        stream = self.data[action]
        self.cmd_t = np.array([s[0] for s in stream])  # the stamp of the observation each command answered
        self.cmd = np.array([np.asarray(s[2].position, np.float64) for s in stream])
        self.cmd_issued = np.array([s[1] for s in stream])  # when the bridge sent it (bag time)

    def _lay_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(grid times, the time each step belongs to a lifecycle span by)."""
        if self.cfg.align == "commands":  # one step per executed command, at the observation it answered
            keep = (self.cmd_t >= self.t0) & (self.cmd_t <= self.t1)
            self.cmd_t, self.cmd = self.cmd_t[keep], self.cmd[keep]
            return self.cmd_t, self.cmd_issued[keep]  # a command belongs to the lifecycle span it was sent in
        grid = np.arange(self.t0, self.t1 + 1e-9, self.period)
        return grid, grid

    def _lifecycle_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """(lifecycle span of each grid time: a change starts a new episode, whether the bridge was active)."""
        life = [(s[1], s[2].data) for s in self.data.get(self.topics.lifecycle) or []
                if s[2].data in ("activate", "deactivate", "cleanup")]
        if not life:
            return np.zeros(len(self.grid), int), np.ones(len(self.grid), bool)
        times = np.array([t for t, _ in life])
        n_before = np.searchsorted(times, self.step_t, side="right")
        active_after = np.array([what == "activate" for _, what in life])
        # before the first transition the bridge was active if that transition deactivates it (autostart)
        active = np.where(n_before > 0, active_after[np.clip(n_before - 1, 0, None)], life[0][1] != "activate")
        return n_before, active

    # -- steps and episodes ------------------------------------------------------------------------------
    def episodes(self) -> list[Episode]:
        segments: list[list[dict[str, Any]]] = []
        steps: list[dict[str, Any]] = []
        for k in range(len(self.grid) - 1 if self.measured else len(self.grid)):
            if steps and self.epoch[k] != self.epoch[k - 1]:
                segments.append(steps)
                steps = []
            step = self._step(k) if self._usable(k) else None
            if step is None:  # a gap: the segment ends here
                if steps:
                    segments.append(steps)
                steps = []
                continue
            steps.append(step)
        if steps:
            segments.append(steps)
        return self._episodes(segments)

    def _usable(self, k: int) -> bool:
        """Every stream fresh at grid time k (and, for measured actions, at k + 1 in the same span)."""
        return bool(self.ok[k]) and not (self.measured and not (self.ok[k + 1] and self.epoch[k] == self.epoch[k + 1]))

    def _sample(self, topic: str, k: int) -> Any:
        """The message of `topic` used at grid time k (its latest at or before it)."""
        return self.data[topic][self.idx[topic][0][k]][2]

    def _step(self, k: int) -> dict[str, Any] | None:
        """The step at grid time k, or None while a named joint has not been seen yet (like a gap)."""
        action = self._action(k)
        state = self._state(k)
        if state is None:
            return None
        size = tuple(self.cfg.image_size)
        images = {cam: _image(self._sample(topic, k), size) for cam, topic in self.topics.cameras.items()}
        instr_stream = self.data.get(self.topics.instruction) or []
        instr = [s for s in instr_stream if s[1] <= self.grid[k]] or instr_stream[:1]
        return {"images": images, "state": state, "action": action.astype(np.float32),
                "instruction": str(instr[-1][2].data) if instr else self.cfg.instruction}

    def _action(self, k: int) -> np.ndarray:
        """The 7-D action of grid step k (step 4 of the module docstring)."""
        if self.cfg.align == "commands":
            self._gripper = float(self.cmd[k, 6])
            return self.cmd[k]
        if not self.measured:
            lo = self.grid[k - 1] if k > 0 else -np.inf
            sel = (self.cmd_t > lo) & (self.cmd_t <= self.grid[k])  # commands computed from the observation at step k
            if np.any(sel):
                self._gripper = float(self.cmd[sel][-1, 6])
                return np.append(self.cmd[sel, :6].sum(0), self.cmd[sel][-1, 6])
            return np.append(np.zeros(6), self._gripper)
        from scipy.spatial.transform import Rotation

        a, b = _pose(self._sample(self.topics.ee_pose, k)), _pose(self._sample(self.topics.ee_pose, k + 1))
        drot = (Rotation.from_quat(b[3:]) * Rotation.from_quat(a[3:]).inv()).as_euler("xyz")
        gi = [s for s in self.data.get(self.topics.gripper) or [] if s[1] <= self.grid[k + 1]]
        self._gripper = float(np.clip(gi[-1][2].data[0], 0, 1)) if gi else 1.0
        return np.concatenate([b[:3] - a[:3], drot, [self._gripper]])

    def _state(self, k: int) -> np.ndarray | None:
        """Observation.state at grid step k from `cfg.proprio`'s sources, in order."""
        tp, state = self.topics, []
        for src in self.cfg.proprio:
            if src == "joint_positions" and self.cfg.joint_names:
                last = self.idx[tp.joint_states][0][k]
                state.append(_joints_by_name(self.data[tp.joint_states], last, self.cfg.joint_names))
            elif src == "joint_positions":
                state.append(np.asarray(self._sample(tp.joint_states, k).position, np.float64))
            else:
                state.append(_pose(self._sample(tp.ee_pose, k)))
        if any(x is None for x in state):
            return None
        return np.concatenate(state).astype(np.float32)

    def _episodes(self, segments: list[list[dict[str, Any]]]) -> list[Episode]:
        """One `Episode` per segment of at least `min_steps` steps."""
        episodes = []
        for i, seg in enumerate(s for s in segments if len(s) >= self.cfg.min_steps):
            instructions = {s["instruction"] for s in seg}
            if not seg[0]["instruction"].strip():
                raise ValueError(f"{self.path}: an empty instruction message on {self.topics.instruction} starts "
                                 f"segment {i}; fix the recording, or set convert.topics.instruction='' and "
                                 "convert.instruction='<instruction>'")
            if len(instructions) > 1:
                logger.warning("%s segment %d has several instructions %s; using the first", self.path, i, instructions)
            episodes.append(Episode(
                images={cam: np.stack([s["images"][cam] for s in seg]) for cam in self.topics.cameras},
                state=np.stack([s["state"] for s in seg]), action=np.stack([s["action"] for s in seg]),
                instruction=seg[0]["instruction"],
                metadata=EpisodeMetadata(episode_id=f"{Path(self.path).name}_{i}", success=self.cfg.success,
                                         task="ros2_bag")))
        dropped = len(segments) - len(episodes)
        instr = self.topics.instruction if self.data.get(self.topics.instruction) else "convert.instruction"
        logger.info("%s: %d grid steps -> %d episode(s)%s; instruction from %s; message definitions: %s",
                    Path(self.path).name, len(self.grid), len(episodes),
                    f", {dropped} short segment(s) dropped" if dropped else "", instr, self.definitions)
        return episodes


def convert(cfg: ConvertConfig) -> tuple[Path, int]:
    """Convert every bag; returns (dataset dir, number of episodes)."""
    from vla.data.rlds_writer import RLDSWriter

    if not cfg.bags:
        raise ValueError("no bags given: vla-convert bags=[path/to/bag1,path/to/bag2]")
    missing = [b for b in cfg.bags if not Path(b).exists()]
    if missing:
        raise FileNotFoundError(f"no such bags: {missing} (give rosbag2 directories or .mcap / .db3 files)")
    n = 0
    state_dim = None
    writer = None
    try:
        for bag in cfg.bags:
            for ep in bag_to_episodes(bag, cfg):
                if writer is None:
                    state_dim = ep.state.shape[1]
                    writer = RLDSWriter(cfg.output_dir, cfg.name, cameras=tuple(cfg.topics.cameras),
                                        image_size=tuple(cfg.image_size), state_dim=state_dim, version=cfg.version,
                                        overwrite=cfg.overwrite, control_hz=cfg.rate_hz,
                                        description="Converted from rosbag2 by vla-convert")
                if ep.state.shape[1] != state_dim:
                    raise ValueError(f"{bag}: state has {ep.state.shape[1]} dims, earlier bags {state_dim}")
                writer.write(ep)
                n += 1
    finally:
        out = writer.close() if writer is not None else None
    if out is None:
        raise ValueError("no episode came out of the bags (too short, or gaps everywhere); see the log")
    return Path(out), n
