"""Record ROS 2 topics to a rosbag2 with genuine rclpy, where `ros2 bag record` is missing (no rosbag2 wheel).

    python -m robot_bridge.ros_record --out bags/session1 /camera/primary/image_raw/compressed /joint_states \
        /vla/instruction /vla_bridge/action --distro kilted          # in a ROS 2 environment (.venv-ros)

What `ros2 bag record <topics>` does, in the parts `vla-convert` relies on: each topic is subscribed when a
publisher appears in the ROS graph, with the type the graph gives and a QoS adapted to the publishers' offers
(RELIABLE only if every publisher offers it, TRANSIENT_LOCAL likewise, so latched values arrive and nothing
is incompatible); messages are stored as received (rclpy raw subscriptions: the publisher's CDR bytes,
whatever its DDS vendor) with the receive time, in mcap (default) or sqlite3, written by `rosbags`. The
message definitions stored with each topic are the installed `.msg` files with their dependencies
(`<prefix>/share/<package>/msg/`), as rosbag2 stores them; `--distro` goes into metadata.yaml's `ros_distro`.

Protocol (JSON lines on stdout): `{"event": "recording", ...}` when the node is up; `{"event": "subscribed",
"topic": ..., "type": ...}` per topic; on `stop` (stdin), end of input or SIGINT it closes the bag and
prints `{"event": "done", "counts": {topic: n}, "path": ...}`.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import threading
import time
from pathlib import Path


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _msg_path(msgtype: str) -> Path | None:
    """The installed `.msg` file of `pkg/msg/Name` (this interpreter's prefix, then AMENT_PREFIX_PATH)."""
    import os

    pkg, _, name = msgtype.partition("/msg/")
    prefixes = [sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in prefixes:
        p = Path(prefix) / "share" / pkg / "msg" / f"{name}.msg"
        if p.is_file():
            return p
    return None


def message_definition(msgtype: str, fallback_typestore) -> str:
    """rosbag2's `ros2msg` definition of `msgtype`: its installed .msg text, then each dependency's after a line
    of 80 '=' and `MSG: pkg/Name` (the mcap ros2msg layout). Types without an installed file come from
    `fallback_typestore` (rosbags' definitions of the distro)."""
    from rosbags.typesys import get_types_from_msg
    from rosbags.typesys.base import Nodetype

    def text(t: str) -> str | None:
        p = _msg_path(t)
        return p.read_text() if p else None

    def deps(t: str, body: str) -> list[str]:
        out = []
        for _, spec in get_types_from_msg(body, t)[t][1]:
            kind, sub = spec
            while kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
                (kind, sub), _ = sub
            if kind == Nodetype.NAME:
                out.append(sub)
        return out

    main = text(msgtype)
    if main is None:
        return fallback_typestore.generate_msgdef(msgtype, ros_version=2)[0]
    parts, seen, todo = [main.rstrip("\n")], {msgtype}, deps(msgtype, main)
    while todo:
        t = todo.pop(0)
        if t in seen:
            continue
        seen.add(t)
        body = text(t)
        if body is None:  # not installed: rosbags' definition of it and of what it needs
            return fallback_typestore.generate_msgdef(msgtype, ros_version=2)[0]
        pkg, _, name = t.partition("/msg/")
        parts.append("=" * 80 + f"\nMSG: {pkg}/{name}\n" + body.rstrip("\n"))
        todo.extend(deps(t, body))
    return "\n".join(parts) + "\n"


def adapted_qos(offers):
    """rosbag2's adaptation of the subscription QoS to the publishers' offered QoS."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliable = all(o.reliability == ReliabilityPolicy.RELIABLE for o in offers)
    latched = all(o.durability == DurabilityPolicy.TRANSIENT_LOCAL for o in offers)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _bag_qos(offer):
    """An offered rclpy QoS as rosbag2 metadata (what `ros2 bag play` re-offers)."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(0x7FFFFFFF, 0xFFFFFFFF)
    return Qos(QosHistory.KEEP_LAST, max(1, int(offer.depth)),
               QosReliability.RELIABLE if offer.reliability == ReliabilityPolicy.RELIABLE else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if offer.durability == DurabilityPolicy.TRANSIENT_LOCAL else QosDurability.VOLATILE,
               never, never, QosLiveliness.AUTOMATIC, never, False)


def _type_hash(offers, msgtype: str, msgdef: str) -> str:
    """The type's RIHS01 hash: the one the publisher announces (Iron and later), else computed from `msgdef`."""
    for o in offers:
        h = str(getattr(o, "topic_type_hash", "") or "")
        if h.startswith("RIHS01_") and h.strip("RIHS01_0"):
            return h
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    ts = get_typestore(Stores.EMPTY)
    ts.register(get_types_from_msg(msgdef, msgtype))
    return ts.hash_rihs01(msgtype)


class Recorder:
    """An rclpy node that records `topics` into a rosbag2 at `out` (see the module docstring)."""

    def __init__(self, out: Path, topics: list[str], *, storage: str, distro: str, domain: int):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.rclpy, self.out, self.distro, self.wanted = rclpy, out, distro, list(topics)
        store = f"ROS2_{distro.upper()}" if distro and f"ROS2_{distro.upper()}" in Stores.__members__ else "ROS2_KILTED"
        self.typestore = get_typestore(Stores[store])
        self.writer = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
        self.writer.open()
        self.lock = threading.Lock()
        self.conns: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self.subs = []
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("vla_ros_record", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.node.create_timer(0.1, self._discover)
        self._closing = False
        self._spin = threading.Thread(target=self._spin_until_closed, daemon=True)
        self._spin.start()

    def _spin_until_closed(self) -> None:
        while not self._closing and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _discover(self) -> None:
        """Subscribe to every wanted topic that has publishers now (runs on the executor thread)."""
        from robot_bridge.ros_interop import _ros_class

        for topic in [t for t in self.wanted if t not in self.conns]:
            offers = self.node.get_publishers_info_by_topic(topic)
            if not offers:
                continue
            types = {o.topic_type for o in offers}
            if len(types) > 1:
                _emit({"event": "error", "topic": topic, "error": f"several types offered: {sorted(types)}"})
                self.wanted.remove(topic)
                continue
            msgtype = types.pop()
            try:
                msgdef = message_definition(msgtype, self.typestore)
                rihs01 = _type_hash(offers, msgtype, msgdef)
            except Exception as e:  # keep recording the other topics; say why this one is not
                _emit({"event": "error", "topic": topic, "error": f"{type(e).__name__}: {e}"})
                self.wanted.remove(topic)
                continue
            with self.lock:
                self.conns[topic] = self.writer.add_connection(
                    topic, msgtype, msgdef=msgdef, rihs01=rihs01,
                    offered_qos_profiles=[_bag_qos(o.qos_profile) for o in offers])
                self.counts[topic] = 0
            self.subs.append(self.node.create_subscription(
                _ros_class(msgtype), topic, lambda raw, topic=topic: self._write(topic, raw),
                adapted_qos([o.qos_profile for o in offers]), raw=True))
            _emit({"event": "subscribed", "topic": topic, "type": msgtype})

    def _write(self, topic: str, raw: bytes) -> None:
        with self.lock:
            if self._closing:
                return
            self.writer.write(self.conns[topic], time.time_ns(), raw)
            self.counts[topic] += 1

    def close(self) -> dict[str, int]:
        with self.lock:
            self._closing = True
        self._spin.join(5)  # first: a spin thread still in rcl at exit aborts the interpreter
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
        self.writer.close()
        if self.distro:  # rosbags writes ros_distro "rosbags"; rosbag2 writes the distro it ran on
            import yaml

            meta_path = self.out / "metadata.yaml"
            meta = yaml.safe_load(meta_path.read_text())
            meta["rosbag2_bagfile_information"]["ros_distro"] = self.distro
            meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
        return dict(self.counts)


def main(argv: list[str] | None = None) -> int:
    import os

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topics", nargs="+")
    ap.add_argument("--out", required=True, help="the bag directory to create (must not exist)")
    ap.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    ap.add_argument("--distro", default=os.environ.get("ROS_DISTRO", ""), help="ros_distro in metadata.yaml")
    ap.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "0")))
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        print(f"{out} exists; choose a new directory", file=sys.stderr)
        return 2
    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [commands.put(line.strip()) for line in sys.stdin] + [commands.put("stop")],
                     daemon=True).start()
    signal.signal(signal.SIGINT, lambda *_: commands.put("stop"))
    rec = Recorder(out, args.topics, storage=args.storage, distro=args.distro, domain=args.domain)
    _emit({"event": "recording", "path": str(out), "topics": args.topics})
    while commands.get() != "stop":
        pass
    counts = rec.close()
    _emit({"event": "done", "path": str(out), "counts": counts,
           "never_published": [t for t in args.topics if t not in counts]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
