"""Interop with genuine ROS 2: a real rclpy process exchanges every message type the bridge uses with a peer.

    python -m robot_bridge.ros_interop --domain 7 --count 20     # in a ROS 2 environment (.venv-ros)

The process is a plain rclpy node (ROS default QoS: RELIABLE, VOLATILE, KEEP_LAST 10; messages built and
read as rclpy objects, so its own typesupport does the CDR). Per type it publishes on
`<prefix>/from_ros/<name>` and subscribes to `<prefix>/to_ros/<name>` (`--prefix`, default `/interop`). It speaks JSON lines on stdout:
`{"event": "matched"}` once every publisher has a matched subscription and every subscription a matched
publisher; it publishes `--count` samples of each type at `--hz` after `go` arrives on stdin, then reports
`{"event": "received", "messages": {type: [plain values...]}}` and exits on `exit` (or end of input).
`--latency` stamps headers with the publish time and reports one-way latencies (bench/ros_interop.py).
Values come from `sample(type, i)` on both sides, as plain Python values (bytes appear as their sha256), so the
other side compares what it got with what was meant, not with what a shared encoder produced.
The DDS side of the exchange is tests/test_bridge_ros_interop.py. No import of rclpy or cyclonedds at module
level: the test (without ROS) imports `sample` and the converters from here.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import queue
import random
import subprocess
import sys
import threading
import time
from typing import Any

#: Every ROS 2 message type the bridge publishes or subscribes to (cameras, joints, pose, commands, instruction).
INTEROP_TYPES = (
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/JointState",
    "geometry_msgs/msg/TwistStamped",
    "geometry_msgs/msg/PoseStamped",
    "std_msgs/msg/String",
    "std_msgs/msg/Float64MultiArray",
    "trajectory_msgs/msg/JointTrajectory",
)


def topic(ros_type: str, direction: str, prefix: str = "/interop") -> str:
    """`<prefix>/<direction>/<name>`; direction `to_ros` (DDS -> rclpy) or `from_ros` (rclpy -> DDS). A prefix
    of its own keeps a run apart from another one that happens to share its DDS domain on this machine."""
    return f"{prefix}/{direction}/{ros_type.rsplit('/', 1)[1].lower()}"


def _header(i: int) -> dict:
    return {"stamp": {"sec": 1_700_000_000 + i, "nanosec": 999_999_999 - i}, "frame_id": f"frame_{i}"}


def sample(ros_type: str, i: int) -> dict:
    """Sample `i` of `ros_type` as plain values (nested dicts, lists, bytes) in the `.msg` field names."""
    rng = random.Random(f"{ros_type}/{i}")
    floats = [rng.uniform(-3.0, 3.0) for _ in range(7)]
    if ros_type == "sensor_msgs/msg/Image":  # 224x224 rgb8 (150 kB: fragmented on the wire); odd sizes too
        h, w = (224, 224) if i % 2 == 0 else (5, 3)
        return {"header": _header(i), "height": h, "width": w, "encoding": "rgb8", "is_bigendian": 0,
                "step": w * 3, "data": rng.randbytes(h * w * 3)}
    if ros_type == "sensor_msgs/msg/CompressedImage":
        return {"header": _header(i), "format": "jpeg", "data": rng.randbytes(20_000 + i)}
    if ros_type == "sensor_msgs/msg/JointState":
        return {"header": _header(i), "name": [f"panda_joint{k}" for k in range(1, 8)], "position": floats,
                "velocity": [x / 10 for x in floats], "effort": []}
    if ros_type == "geometry_msgs/msg/TwistStamped":
        return {"header": _header(i), "twist": {"linear": dict(zip("xyz", floats[:3])),
                                                "angular": dict(zip("xyz", floats[3:6]))}}
    if ros_type == "geometry_msgs/msg/PoseStamped":
        return {"header": _header(i), "pose": {"position": dict(zip("xyz", floats[:3])),
                                               "orientation": {"x": 0.0, "y": 1.0, "z": 0.0, "w": 0.0}}}
    if ros_type == "std_msgs/msg/String":
        return {"data": f"pick up the cube #{i} (größer, 赤い)" if i % 3 else ""}
    if ros_type == "std_msgs/msg/Float64MultiArray":
        return {"layout": {"dim": [{"label": "rows", "size": 2, "stride": 6}, {"label": "cols", "size": 3, "stride": 3}],
                           "data_offset": i}, "data": floats[:5] + [1e308, 5e-324]}
    if ros_type == "trajectory_msgs/msg/JointTrajectory":
        return {"header": _header(i), "joint_names": ["a", "b"], "points": [
            {"positions": floats[k:k + 2], "velocities": [0.0, -0.5], "accelerations": [], "effort": [],
             "time_from_start": {"sec": k, "nanosec": 100_000_000 * (k + 1)}} for k in range(3)]}
    raise ValueError(f"no sample for {ros_type!r}; interop types: {INTEROP_TYPES}")


def digest(value: Any) -> Any:
    """Plain values with every bytes field replaced by its sha256 (short enough for a JSON line)."""
    if isinstance(value, dict):
        return {k: digest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [digest(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    return value


# ---- the direct-DDS side (robot_bridge.msgs dataclasses) ------------------------------------------------
def dds_from_plain(ros_type: str, value: dict):
    """A `robot_bridge.msgs` message from plain values."""
    import typing

    from robot_bridge import msgs

    def build(cls, v: dict):
        hints = typing.get_type_hints(cls, include_extras=True)
        kwargs = {}
        for name, x in v.items():
            if isinstance(x, dict):
                kwargs[name] = build(hints[name], x)
            elif isinstance(x, list) and x and isinstance(x[0], dict):
                elem = typing.get_args(typing.get_args(hints[name])[0])[0]  # Annotated[Sequence[T], ...] -> T
                kwargs[name] = [build(elem, e) for e in x]
            else:
                kwargs[name] = x
        return cls(**kwargs)

    return build(msgs.ROS_TYPES[ros_type], value)


def dds_to_plain(msg) -> dict:
    return dataclasses.asdict(msg)


def child_env(domain: int | None, log_dir: str, *, bootstrapped: bool = False) -> dict[str, str]:
    """Environment of a ROS 2 child process: loopback only, logs in `log_dir`, the Fast DDS <-> Cyclone profile
    (robot_bridge/params/fastdds_interop.xml), Fast DDS (the only RMW with wheels). `bootstrapped`: this
    process runs in the ROS venv itself; else the child's ROS wheels bootstrap it (set LD_LIBRARY_PATH and
    re-execute), which a stale flag inherited without that library path would prevent
    (shared/facts/ros2_pypi.md)."""
    import os

    from robot_bridge.transport.loopback import LOOPBACK_ENV
    from robot_bridge.transport.ros import fastdds_interop_profile

    env = dict(os.environ, **LOOPBACK_ENV, ROS_LOG_DIR=log_dir, RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
               FASTDDS_DEFAULT_PROFILES_FILE=fastdds_interop_profile(), PYTHONUNBUFFERED="1")
    if domain is not None:
        env["ROS_DOMAIN_ID"] = str(domain)
    if not bootstrapped:
        env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    return env


class PeerProcess:
    """This module run as a genuine rclpy process (`python` must have rclpy), and its JSON-line events."""

    def __init__(self, python: str, domain: int, env: dict[str, str], *, count: int, hz: float,
                 types: tuple[str, ...] = INTEROP_TYPES, latency: bool = False, prefix: str = "/interop",
                 cwd: str | None = None):
        self.prefix = prefix
        cmd = [python, "-m", "robot_bridge.ros_interop", "--domain", str(domain), "--count", str(count),
               "--hz", str(hz), "--types", ",".join(types), "--prefix", prefix] + (["--latency"] if latency else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=cwd)
        self.events: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))
        self.events.put({"event": "exited"})

    def expect(self, name: str, timeout: float = 60.0) -> dict:
        try:
            ev = self.events.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"the rclpy peer sent no {name!r} within {timeout} s") from None
        if ev["event"] != name:
            err = self.proc.stderr.read() if ev["event"] == "exited" else ""
            raise RuntimeError(f"the rclpy peer sent {ev} instead of {name!r}\n{err[-3000:]}")
        return ev

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            self.send("exit")
            self.proc.wait(20)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def exchange(transport, peer: PeerProcess, *, count: int, hz: float, types: tuple[str, ...] = INTEROP_TYPES,
             latency: bool = False, timeout: float = 20.0) -> dict:
    """The direct-DDS side of an exchange with `peer` over `transport` (ROS default QoS): wait until both sides
    see every match, then publish `count` samples of each type at `hz` while the peer does the same.
    Returns {"got": {type: [what arrived here]}, "latency_ms": {type: [...]} (with `latency`),
    "peer": the peer's `received` event}; the caller closes `transport` first, then `peer` (a writer with
    unacknowledged data lingers)."""
    from robot_bridge import msgs
    from robot_bridge.transport.base import RELIABLE

    got: dict[str, list] = {t: [] for t in types}
    lat: dict[str, list[float]] | None = {t: [] for t in types} if latency else None
    pubs = {}
    for t in types:
        cls = msgs.ROS_TYPES[t]
        transport.subscribe(topic(t, "from_ros", peer.prefix), cls, RELIABLE,
                            lambda m, t=t: got[t].append(received(dds_to_plain(m), lat[t] if lat else None)))
        pubs[t] = transport.publisher(topic(t, "to_ros", peer.prefix), cls, RELIABLE)
    peer.expect("matched")  # the peer sees all its matches
    for t in types:  # and so does this side
        for direction in ("from_ros", "to_ros"):
            if not transport.wait_matched(topic(t, direction, peer.prefix), 1, timeout=timeout):
                raise RuntimeError(f"no match on {topic(t, direction, peer.prefix)} within {timeout} s")
    peer.send("go")
    next_t = time.monotonic()
    for i in range(count):
        for t in types:
            plain = sample(t, i)
            pubs[t](dds_from_plain(t, stamp_now(plain) if latency else plain))
        next_t += 1.0 / hz
        time.sleep(max(0.0, next_t - time.monotonic()))
    event = peer.expect("received", timeout=timeout + count / hz)  # the peer waits for all of ours
    _wait(lambda: all(len(v) >= count for v in got.values()), timeout)
    return {"got": got, "latency_ms": lat, "peer": event}


# ---- the rclpy side --------------------------------------------------------------------------------------
def _ros_class(type_name: str):
    """`pkg/msg/Name` (or `pkg/Name`, as field types read) -> the rclpy message class."""
    parts = type_name.split("/")
    return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[-1])


def ros_from_plain(ros_type: str, value: dict):
    """An rclpy message from plain values, field by field through the class's own field types."""
    def fill(msg, v: dict):
        types = msg.get_fields_and_field_types()
        for name, x in v.items():
            if isinstance(x, dict):
                fill(getattr(msg, name), x)
            elif isinstance(x, list) and x and isinstance(x[0], dict):
                elem = _ros_class(types[name][len("sequence<"):-1])
                setattr(msg, name, [fill(elem(), e) for e in x])
            else:
                setattr(msg, name, x)
        return msg

    return fill(_ros_class(ros_type)(), value)


def ros_to_plain(msg) -> Any:
    import array

    if hasattr(msg, "get_fields_and_field_types"):
        return {name: ros_to_plain(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, array.array):
        return msg.tobytes() if msg.typecode == "B" else msg.tolist()
    if isinstance(msg, (list, tuple)):
        return [ros_to_plain(x) for x in msg]
    if hasattr(msg, "tolist"):  # numpy arrays (fixed-size fields)
        return msg.tolist()
    return msg


def stamp_now(plain: dict) -> dict:
    """`plain` with its header stamped with the current wall time (for one-way latency on one machine)."""
    if "header" not in plain:
        return plain
    ns = time.time_ns()
    return {**plain, "header": {**plain["header"], "stamp": {"sec": ns // 10**9, "nanosec": ns % 10**9}}}


def received(plain: dict, latencies: list[float] | None) -> dict:
    """What a receiver records: with `latencies`, the one-way latency (ms) goes there and the stamp is dropped
    from the values compared."""
    if latencies is None or "header" not in plain:
        return digest(plain)
    stamp = plain["header"]["stamp"]
    latencies.append((time.time() - stamp["sec"] - stamp["nanosec"] * 1e-9) * 1e3)
    return digest({**plain, "header": {**plain["header"], "stamp": None}})


class _Peer:
    def __init__(self, domain: int, types: list[str], latency: bool = False, prefix: str = "/interop"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy, self.types = rclpy, types
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("vla_interop_peer", context=self.context)
        self.received: dict[str, list] = {t: [] for t in types}
        self.latency_ms: dict[str, list[float]] | None = {t: [] for t in types} if latency else None
        self.pubs, self.subs = {}, {}
        for t in types:
            cls = _ros_class(t)
            self.pubs[t] = self.node.create_publisher(cls, topic(t, "from_ros", prefix), 10)  # ROS default QoS
            self.subs[t] = self.node.create_subscription(cls, topic(t, "to_ros", prefix), lambda m, t=t: self.received[t].append(
                received(ros_to_plain(m), self.latency_ms[t] if self.latency_ms else None)), 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._closing = False
        self._spin = threading.Thread(target=self._spin_until_closed, daemon=True)
        self._spin.start()

    def _spin_until_closed(self) -> None:
        while not self._closing and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def matched(self) -> bool:
        return all(p.get_subscription_count() >= 1 for p in self.pubs.values()) and \
            all(s.get_publisher_count() >= 1 for s in self.subs.values())

    def close(self) -> None:
        self._closing = True
        self._spin.join(5)  # first: a spin thread still in rcl at exit aborts the interpreter
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domain", type=int, default=0)
    ap.add_argument("--count", type=int, default=20, help="samples published per type")
    ap.add_argument("--hz", type=float, default=50.0, help="publish rate (one sample of every type per period)")
    ap.add_argument("--types", default=",".join(INTEROP_TYPES))
    ap.add_argument("--timeout", type=float, default=30.0, help="for the match, the go, and the samples to arrive")
    ap.add_argument("--prefix", default="/interop", help="topic namespace (one per run)")
    ap.add_argument("--latency", action="store_true",
                    help="stamp headers with the publish time; report one-way latencies, compare without stamps")
    args = ap.parse_args(argv)
    types = [t for t in args.types.split(",") if t]
    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [commands.put(line.strip()) for line in sys.stdin] + [commands.put("exit")],
                     daemon=True).start()
    peer = _Peer(args.domain, types, latency=args.latency, prefix=args.prefix)
    try:
        if not _wait(peer.matched, args.timeout):
            _emit({"event": "error", "error": "no match within the timeout",
                   "publishers": {t: p.get_subscription_count() for t, p in peer.pubs.items()},
                   "subscriptions": {t: s.get_publisher_count() for t, s in peer.subs.items()}})
            return 1
        _emit({"event": "matched"})
        if commands.get(timeout=args.timeout) != "go":
            return 1
        next_t = time.monotonic()
        for i in range(args.count):
            for t in types:
                plain = sample(t, i)
                peer.pubs[t].publish(ros_from_plain(t, stamp_now(plain) if args.latency else plain))
            next_t += 1.0 / args.hz
            time.sleep(max(0.0, next_t - time.monotonic()))
        from rclpy.duration import Duration

        acked = all(p.wait_for_all_acked(Duration(seconds=10.0)) for p in peer.pubs.values())
        _wait(lambda: all(len(v) >= args.count for v in peer.received.values()), args.timeout)
        _emit({"event": "received", "acked": acked, "messages": peer.received, "latency_ms": peer.latency_ms})
        while commands.get(timeout=args.timeout) != "exit":
            pass
        return 0
    finally:
        peer.close()


if __name__ == "__main__":
    sys.exit(main())
