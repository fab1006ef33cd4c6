"""CompressedImage cameras on the live node (`bridge.topics.compressed_cameras`): what image_transport publishes on
`<camera>/compressed` and most robots record. Decoded as the converter decodes them (robot_bridge/images.py).

The end-to-end case: a genuine rclpy process (Fast DDS, `sensor_msgs.msg.CompressedImage` built and published by
rclpy itself) feeds our node on each transport; the node acts on the very pixels that were sent.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import textwrap
import time

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("cyclonedds")

from test_bridge_node import FakeClock, MemoryTransport  # noqa: E402

from robot_bridge import msgs  # noqa: E402
from robot_bridge.config import BridgeConfig, NodeConfig, TopicsConfig  # noqa: E402
from robot_bridge.node import BridgeNode  # noqa: E402

CAM = "/camera/primary/image_raw/compressed"
FRAME = np.random.default_rng(3).integers(0, 255, (24, 32, 3), dtype=np.uint8)
#: JPEG keeps a smooth picture (not noise): a colour ramp
RAMP = np.stack([*np.meshgrid(np.linspace(0, 255, 32), np.linspace(0, 255, 24)), np.full((24, 32), 128.0)], -1).astype(np.uint8)


def _encoded(img: np.ndarray, codec: str) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(img).save(buf, format=codec.upper(), quality=95)
    return buf.getvalue()


class SeeingPolicy:
    """Moves a little and keeps the last image it was given."""

    cameras = ("primary",)

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def reset(self, instruction: str) -> None:
        pass

    def act(self, obs):
        self.seen.append(obs.images["primary"])
        return np.array([0.005, 0, 0, 0, 0, 0, 1.0], np.float32)

    def close(self) -> None:
        pass


def _cfg(**node) -> BridgeConfig:
    return BridgeConfig(node=NodeConfig(instruction="pick", **node),
                        topics=TopicsConfig(cameras={"primary": CAM}, compressed_cameras=["primary"]))


@pytest.mark.parametrize("codec", ["png", "jpeg"])
def test_compressed_camera_is_decoded_and_acted_on(codec):
    cfg, t, clock = _cfg(), MemoryTransport(), FakeClock(50.0)
    policy = SeeingPolicy()
    node = BridgeNode(cfg, policy, t, clock=clock, wall_clock=clock)
    frame = FRAME if codec == "png" else RAMP
    t.send(CAM, msgs.CompressedImage(header=msgs.header(clock.t), format=f"rgb8; {codec} compressed bgr8",
                                     data=_encoded(frame, codec)))
    t.send(cfg.topics.joint_states, msgs.JointState(header=msgs.header(clock.t), name=["a"], position=[0.1]))
    t.send(cfg.topics.ee_pose, msgs.PoseStamped(header=msgs.header(clock.t), pose=msgs.Pose(position=msgs.Point(0.4, 0, 0.3))))
    r = node.tick()
    assert r.moved, r.reason
    if codec == "png":
        np.testing.assert_array_equal(policy.seen[-1], FRAME)
    else:  # lossy, but the same picture
        assert policy.seen[-1].shape == RAMP.shape and np.abs(policy.seen[-1].astype(int) - RAMP).max() < 12


def test_undecodable_compressed_image_is_counted_and_the_camera_goes_stale():
    cfg, t, clock = _cfg(), MemoryTransport(), FakeClock(50.0)
    node = BridgeNode(cfg, SeeingPolicy(), t, clock=clock, wall_clock=clock)
    t.send(CAM, msgs.CompressedImage(header=msgs.header(clock.t), format="jpeg", data=b"\xff\xd8 not a jpeg"))
    t.send(cfg.topics.joint_states, msgs.JointState(header=msgs.header(clock.t), name=["a"], position=[0.1]))
    r = node.tick()
    assert not r.moved and "stale camera 'primary'" in r.reason
    assert node.malformed == {"image primary": 1}


def test_compressed_camera_settings_are_checked():
    with pytest.raises(ValueError, match="compressed_cameras has \\['wrist'\\], which are not cameras"):
        TopicsConfig(compressed_cameras=["wrist"])
    with pytest.raises(ValueError, match="add bridge.topics.compressed_cameras=\\[primary\\]"):
        TopicsConfig(cameras={"primary": CAM})  # an image_transport topic subscribed as a raw Image never matches


#: A plain rclpy node: sensor_msgs/CompressedImage (PNG, image_transport's format text), JointState and PoseStamped, built as
#: rclpy objects, published at 30 Hz with the sensor-data QoS once the bridge's subscriptions match, until stdin closes.
PEER = textwrap.dedent("""
    import io, sys, threading, time
    import numpy as np, rclpy
    from PIL import Image as PILImage
    from rclpy.qos import qos_profile_sensor_data
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import CompressedImage, JointState

    rclpy.init()
    node = rclpy.create_node("camera_driver")
    cam = node.create_publisher(CompressedImage, sys.argv[1], qos_profile_sensor_data)
    joints = node.create_publisher(JointState, "/joint_states", qos_profile_sensor_data)
    pose = node.create_publisher(PoseStamped, "/ee_pose", qos_profile_sensor_data)
    frame = np.random.default_rng(3).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(frame).save(buf, format="PNG")
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    while not done.is_set() and min(p.get_subscription_count() for p in (cam, joints, pose)) < 1:
        time.sleep(0.01)
    print('{"event": "matched"}', flush=True)
    sent = 0
    while not done.wait(1 / 30):
        stamp = node.get_clock().now().to_msg()
        img = CompressedImage(format="rgb8; png compressed bgr8", data=buf.getvalue())
        img.header.stamp, img.header.frame_id = stamp, "primary_camera"
        cam.publish(img)
        js = JointState(name=["a"], position=[0.1])
        js.header.stamp = stamp
        joints.publish(js)
        ee = PoseStamped()
        ee.header.stamp, ee.pose.position.x, ee.pose.position.z, ee.pose.orientation.w = stamp, 0.4, 0.3, 1.0
        pose.publish(ee)
        sent += 1
    print('{"event": "done", "sent": %d}' % sent, flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
""")


@pytest.mark.parametrize("kind", ["dds", pytest.param("rclpy", marks=pytest.mark.ros)])
def test_genuine_rclpy_compressed_camera_drives_the_node(kind, ros_python):
    import ros2_env

    from robot_bridge.transport import make_transport
    from robot_bridge.transport.loopback import use_loopback

    use_loopback()
    domain = 100 + os.getpid() % 20 + (0 if kind == "dds" else 20)
    peer = subprocess.Popen([ros_python, "-c", PEER, CAM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ros2_env.ros_env(domain))
    t = make_transport(kind, domain_id=domain, node_name="vla_bridge")
    policy = SeeingPolicy()
    node = BridgeNode(_cfg(stale_after_periods=5.0), policy, t)
    try:
        assert json.loads(peer.stdout.readline())["event"] == "matched", peer.stderr.read()[-2000:]
        moved, deadline = 0, time.monotonic() + 30
        while moved < 10 and time.monotonic() < deadline:
            moved += node.tick().moved
            time.sleep(node.period)
        assert moved >= 10, f"the node acted {moved} times; last: {node.last_reason}"
    finally:
        node.close()
        t.close()
        out = peer.communicate(timeout=60)  # closes its stdin: it stops and reports
    np.testing.assert_array_equal(policy.seen[-1], FRAME)  # the pixels the genuine ROS 2 camera sent, losslessly
    assert node.malformed == {} and json.loads(out[0].splitlines()[-1])["sent"] >= 10, out[1][-2000:]
