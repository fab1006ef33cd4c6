"""Synthetic camera / joint-state / pose publishers, for dry runs, fault tests and the benchmark.

    python -m robot_bridge.fake_sensors --hz 30 --size 224 --seconds 10        # a well-behaved robot
    python -m robot_bridge.fake_sensors --hz 0 --seconds 2                     # flood: as fast as possible
    python -m robot_bridge.fake_sensors --malformed                            # broken images / NaN joints
    python -m robot_bridge.fake_sensors --estop true                           # press the e-stop (latched)
    python -m robot_bridge.fake_sensors --transport rclpy                      # as a ROS 2 node (needs rclpy)
    python -m robot_bridge.fake_sensors --compressed png                       # + <camera>/compressed, as image_transport
    python -m robot_bridge.fake_sensors --moving                               # every frame and joint state differs

Keeps its DDS traffic on loopback unless --network is given. Waits (up to 10 s) for a subscriber to its first
topic (and to its compressed one) before the --seconds start, and for the e-stop to be acknowledged before it
exits. Image stamps are the publish wall time, so a receiver in another process on the same machine can
measure one-way latency. Prints one JSON line with the number of messages sent when it finishes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from robot_bridge import msgs
from robot_bridge.config import TopicsConfig
from robot_bridge.transport import TRANSPORTS, make_transport
from robot_bridge.transport.base import LATCHED, SENSOR


def _compress(img: np.ndarray, codec: str) -> bytes:
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(img).save(buf, format=codec.upper(), quality=90)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hz", type=float, default=30.0, help="publish rate; 0 = unthrottled flood")
    ap.add_argument("--size", type=int, default=64, help="square image size")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--cameras", default="primary")
    ap.add_argument("--no-joints", action="store_true")
    ap.add_argument("--malformed", action="store_true", help="send images whose data length is wrong, NaN joints")
    ap.add_argument("--instruction", default="", help="publish this instruction (latched) first")
    ap.add_argument("--moving", action="store_true",
                    help="a moving scene: the image shifts by 3 px and the joints move a little every frame")
    ap.add_argument("--compressed", choices=["jpeg", "png"],
                    help="also publish each frame as sensor_msgs/CompressedImage on <camera topic>/compressed")
    ap.add_argument("--estop", choices=["true", "false"], help="publish this e-stop value (latched) and stay up")
    ap.add_argument("--domain", type=int, default=0)
    ap.add_argument("--transport", choices=TRANSPORTS, default="dds")
    ap.add_argument("--network", action="store_true", help="do not force loopback-only DDS")
    args = ap.parse_args(argv)

    from robot_bridge.transport.loopback import use_loopback

    if not args.network:
        use_loopback()
    topics = TopicsConfig()
    t = make_transport(args.transport, domain_id=args.domain, node_name="fake_sensors")
    cams = [c for c in args.cameras.split(",") if c]
    img_pubs = {c: t.publisher(topics.cameras.get(c, f"/camera/{c}/image_raw"), msgs.Image, SENSOR) for c in cams}
    zip_pubs = {c: t.publisher(topics.cameras.get(c, f"/camera/{c}/image_raw") + "/compressed", msgs.CompressedImage,
                               SENSOR) for c in cams} if args.compressed else {}
    joint_pub = t.publisher(topics.joint_states, msgs.JointState, SENSOR)
    ee_pub = t.publisher(topics.ee_pose, msgs.PoseStamped, SENSOR)
    if args.instruction:
        t.publisher(topics.instruction, msgs.String, LATCHED)(msgs.String(args.instruction))
    if args.estop:
        estop_pub = t.publisher(topics.estop, msgs.Bool, LATCHED)
        # the bridge's reader first (discovering a new process can take seconds); published anyway without one
        t.wait_matched(topics.estop, 1, timeout=10.0)
        estop_pub(msgs.Bool(args.estop == "true"))
    first = next(iter(img_pubs), None)
    watched = topics.cameras.get(first, f"/camera/{first}/image_raw") if first else None
    watched = watched or (None if args.no_joints else topics.joint_states)
    if watched:  # --seconds counts from the first subscriber's match (discovering a process can take seconds)
        t.wait_matched(watched, 1, timeout=10.0)
    if first and args.compressed:  # and from a recorder's, for the compressed stream
        t.wait_matched(topics.cameras.get(first, f"/camera/{first}/image_raw") + "/compressed", 1, timeout=10.0)
    img = np.random.default_rng(0).integers(0, 255, (args.size, args.size, 3), dtype=np.uint8)
    packed = _compress(img, args.compressed) if args.compressed else b""
    period = 1.0 / args.hz if args.hz > 0 else 0.0
    sent, t_end, next_t = 0, time.monotonic() + args.seconds, time.monotonic()
    while time.monotonic() < t_end:
        now = time.time()
        frame = np.roll(img, 3 * sent, axis=1) if args.moving else img
        for c, pub in img_pubs.items():
            m = msgs.image_from_array(frame, now, f"{c}_camera")
            if args.malformed:
                m.data = m.data[:-7]
            pub(m)
            if c in zip_pubs:  # image_transport's format text: "<encoding>; <codec> compressed <encoding>"
                zip_pubs[c](msgs.CompressedImage(header=m.header, format=f"rgb8; {args.compressed} compressed bgr8",
                                                 data=packed))
        if not args.no_joints:
            q = [float("nan")] * 7 if args.malformed else [0.0, -0.3, 0.0, -2.0, 0.0, 1.7, 0.8]
            if args.moving:
                q = [x + 0.3 * np.sin(0.05 * sent + i) for i, x in enumerate(q)]
            joint_pub(msgs.JointState(header=msgs.header(now), name=[f"j{i}" for i in range(7)], position=q))
            ee_pub(msgs.PoseStamped(header=msgs.header(now, "base_link"),
                                    pose=msgs.Pose(position=msgs.Point(0.45, 0.0, 0.3), orientation=msgs.Quaternion(1, 0, 0, 0))))
        sent += 1
        if period:
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
    if args.estop:
        t.wait_acked(topics.estop, timeout=5.0)  # gone before the bridge has it, a latched value is lost
    t.close()
    print(json.dumps({"sent": sent, "seconds": args.seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
