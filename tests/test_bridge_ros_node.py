"""With transport=rclpy the bridge is a proper ROS 2 node (real ROS 2 Kilted from .venv-ros; `ros` marker):
a managed (lifecycle) node driven through the lifecycle_msgs services, its settings as ROS 2 parameters set at
run time and checked by a callback, and its status on /diagnostics. An operator node in another participant
calls the services the way `ros2 lifecycle set` / `ros2 param set` do, and feeds the sensors.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from robot_bridge import msgs
from robot_bridge.config import BridgeConfig, NodeConfig
from robot_bridge.node import BridgeNode, Lifecycle
from robot_bridge.transport import RELIABLE, SENSOR, make_transport
from robot_bridge.transport.loopback import use_loopback

pytestmark = pytest.mark.ros
DOMAIN = 20 + os.getpid() % 20  # private (20-39), apart from the other bridge tests' domains


class StepPolicy:
    cameras = ("primary",)

    def __init__(self):
        self.resets: list[str] = []

    def reset(self, instruction: str) -> None:
        self.resets.append(instruction)

    def act(self, obs):
        return np.array([0.01, 0, 0, 0, 0, 0, 1.0], np.float32)

    def close(self) -> None:
        pass


class Operator:
    """The bridge node (lifecycle, ticking in a thread) and an operator node with sensors and service clients."""

    def __init__(self):
        use_loopback()
        self.cfg = BridgeConfig(node=NodeConfig(instruction="go", autostart=False))
        self.bridge_t = make_transport("rclpy", domain_id=DOMAIN, node_name="vla_bridge", lifecycle=True)
        self.op = make_transport("rclpy", domain_id=DOMAIN, node_name="operator")
        self.policy = StepPolicy()
        self.node = BridgeNode(self.cfg, self.policy, self.bridge_t)
        self.twists: list[np.ndarray] = []
        self.op.subscribe(self.cfg.topics.twist, msgs.TwistStamped, RELIABLE, lambda m: self.twists.append(
            np.array([m.twist.linear.x, m.twist.linear.y, m.twist.linear.z])))
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.node.run, args=(self.stop,), daemon=True),
                        threading.Thread(target=self._sensors, daemon=True)]
        for t in self.threads:
            t.start()

    def _sensors(self) -> None:
        topics = self.cfg.topics
        cam = self.op.publisher(topics.cameras["primary"], msgs.Image, SENSOR)
        joints = self.op.publisher(topics.joint_states, msgs.JointState, SENSOR)
        pose = self.op.publisher(topics.ee_pose, msgs.PoseStamped, SENSOR)
        img = np.zeros((8, 8, 3), np.uint8)
        while not self.stop.wait(1 / 30):
            now = time.time()
            cam(msgs.image_from_array(img, now))
            joints(msgs.JointState(header=msgs.header(now), name=["a"], position=[0.1]))
            pose(msgs.PoseStamped(header=msgs.header(now), pose=msgs.Pose(position=msgs.Point(0.4, 0.0, 0.3))))

    def call(self, srv_type, service: str, request, timeout: float = 15.0):
        client = self.op.node.create_client(srv_type, service)
        assert client.wait_for_service(timeout_sec=timeout), f"no service {service}"
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            assert time.monotonic() < deadline, f"{service} did not answer"
            time.sleep(0.005)
        return future.result()

    def wait_for(self, pred, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.node.close()
        self.op.close()
        self.bridge_t.close()


@pytest.fixture
def ros():
    o = Operator()
    yield o
    o.close()


def _change(ros, transition_id: int) -> bool:
    from lifecycle_msgs.srv import ChangeState

    req = ChangeState.Request()
    req.transition.id = transition_id
    return ros.call(ChangeState, "/vla_bridge/change_state", req).success


def _state(ros) -> str:
    from lifecycle_msgs.srv import GetState

    return ros.call(GetState, "/vla_bridge/get_state", GetState.Request()).current_state.label


def test_lifecycle_services_drive_the_node_and_share_one_state_machine_with_the_topic(ros):
    from lifecycle_msgs.msg import Transition, TransitionEvent
    from lifecycle_msgs.srv import GetAvailableTransitions

    events: list[str] = []
    ros.op.node.create_subscription(TransitionEvent, "/vla_bridge/transition_event",
                                    lambda e: events.append(e.goal_state.label), 10)
    assert _state(ros) == "unconfigured" and ros.node.state is Lifecycle.UNCONFIGURED
    assert not _change(ros, Transition.TRANSITION_ACTIVATE)  # not from unconfigured
    assert _change(ros, Transition.TRANSITION_CONFIGURE)
    assert _state(ros) == "inactive" and ros.node.state is Lifecycle.INACTIVE
    available = ros.call(GetAvailableTransitions, "/vla_bridge/get_available_transitions",
                         GetAvailableTransitions.Request()).available_transitions
    assert {"activate", "cleanup", "shutdown"} <= {t.transition.label for t in available}
    time.sleep(0.3)
    assert not any(np.any(v) for v in ros.twists)  # configured, not active: no motion
    assert _change(ros, Transition.TRANSITION_ACTIVATE)
    ros.wait_for(lambda: ros.twists and np.allclose(ros.twists[-1], [0.1, 0, 0], atol=1e-6))  # 0.01 m / 0.1 s
    assert ros.policy.resets == ["go"]
    # the lifecycle topic goes through the same state machine: the services see what it did
    lifecycle = ros.op.publisher(ros.cfg.topics.lifecycle, msgs.String, RELIABLE)
    assert ros.op.wait_matched(ros.cfg.topics.lifecycle, 1)
    lifecycle(msgs.String("deactivate"))
    ros.wait_for(lambda: ros.node.state is Lifecycle.INACTIVE)
    assert _state(ros) == "inactive"
    ros.wait_for(lambda: not np.any(ros.twists[-1]))  # its last command was a stop
    assert _change(ros, Transition.TRANSITION_INACTIVE_SHUTDOWN)
    assert _state(ros) == "finalized" and ros.node.state is Lifecycle.FINALIZED
    ros.wait_for(lambda: events[-1:] == ["finalized"])
    assert events == ["configuring", "inactive", "activating", "active", "deactivating", "inactive",
                      "shuttingdown", "finalized"]


def _set(ros, name: str, value):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return ros.call(SetParameters, "/vla_bridge/set_parameters", req).results[0]


def _get(ros, name: str):
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    res = ros.call(GetParameters, "/vla_bridge/get_parameters", GetParameters.Request(names=[name]))
    return parameter_value_to_python(res.values[0])


def test_parameters_are_set_at_run_time_and_checked(ros):
    from rcl_interfaces.srv import ListParameters

    names = ros.call(ListParameters, "/vla_bridge/list_parameters", ListParameters.Request()).result.names
    assert {"bridge.node.rate_hz", "bridge.safety.max_linear_velocity", "bridge.topics.cameras.primary",
            "bridge.output.joint_names"} <= set(names)
    assert _get(ros, "bridge.node.rate_hz") == 10.0 and _get(ros, "bridge.output.joint_names") == []
    ros.node.configure()
    ros.node.activate()
    ros.wait_for(lambda: ros.twists and ros.twists[-1][0] > 0.09)
    # a live limit: taken at once, and the arm slows under the acceleration limit to the new speed
    r = _set(ros, "bridge.safety.max_linear_velocity", 0.05)
    assert r.successful, r.reason
    assert _get(ros, "bridge.safety.max_linear_velocity") == 0.05 and ros.node.safety.step_translation == pytest.approx(0.005)
    n = len(ros.twists)
    ros.wait_for(lambda: len(ros.twists) > n + 3)
    assert all(np.linalg.norm(v) <= 0.05 + 1e-9 for v in ros.twists[n + 1:])
    # checked by the callback: refused with the reason, the old value kept
    r = _set(ros, "bridge.safety.max_linear_velocity", -1.0)
    assert not r.successful and "must be > 0" in r.reason
    assert _get(ros, "bridge.safety.max_linear_velocity") == 0.05
    r = _set(ros, "bridge.safety.workspace_min", [1.0, 1.0, 1.0])
    assert not r.successful and "workspace_min" in r.reason
    r = _set(ros, "bridge.node.rate_hz", 20.0)  # structural: read-only while the node runs
    assert not r.successful and _get(ros, "bridge.node.rate_hz") == 10.0
    # a new instruction starts a new episode for the policy
    assert _set(ros, "bridge.node.instruction", "place it on the plate").successful
    ros.wait_for(lambda: ros.policy.resets[-1:] == ["place it on the plate"])


def test_status_on_diagnostics_reads_as_diagnostic_msgs(ros):
    """A genuine diagnostic_msgs subscriber (rqt_robot_monitor's input) reads the bridge's status."""
    from diagnostic_msgs.msg import DiagnosticArray

    got: list = []
    ros.op.node.create_subscription(DiagnosticArray, "/diagnostics", got.append, 10)
    ros.node.configure()
    ros.node.activate()
    ros.wait_for(lambda: any(s.message == "running" for m in got for s in m.status))
    st = [s for m in got for s in m.status if s.message == "running"][-1]
    values = {kv.key: kv.value for kv in st.values}
    assert st.name == "vla_bridge" and st.level == b"\x00" and values["state"] == "active"
    assert values["command"].split()[0] == "0.0100"


def toy_ik(q, delta):
    return q + delta[0]


class ChunkPolicy(StepPolicy):
    def act(self, obs):
        return np.array([[dx, 0, 0, 0, 0, 0, 1.0] for dx in (0.01, 0.02, 0.03, 0.02)], np.float32)


def test_joint_trajectory_from_direct_dds_reads_as_genuine_trajectory_msgs():
    """ros2_control's joint trajectory controller's view: the bridge on direct DDS (Cyclone) publishes the
    chunk as a multi-point JointTrajectory; a genuine rclpy subscription (trajectory_msgs typesupport, Fast
    DDS) reads points one period apart, joint targets chained through the IK."""
    from trajectory_msgs.msg import JointTrajectory

    from robot_bridge.config import OutputConfig

    use_loopback()
    cfg = BridgeConfig(node=NodeConfig(instruction="go"),
                       output=OutputConfig(command="joint_trajectory", joint_names=["a"], trajectory_points=4,
                                           ik="test_bridge_ros_node:toy_ik"))
    bridge_t = make_transport("dds", domain_id=DOMAIN)
    ros = make_transport("rclpy", domain_id=DOMAIN, node_name="jtc")
    got: list = []
    ros.node.create_subscription(JointTrajectory, cfg.topics.joint_trajectory, got.append, 10)
    node = BridgeNode(cfg, ChunkPolicy(), bridge_t)
    feed = {topic: bridge_t.publisher(topic, typ, SENSOR) for topic, typ in (
        (cfg.topics.cameras["primary"], msgs.Image), (cfg.topics.joint_states, msgs.JointState),
        (cfg.topics.ee_pose, msgs.PoseStamped))}
    try:
        assert bridge_t.wait_matched(cfg.topics.joint_trajectory, 1, timeout=15.0)
        deadline = time.monotonic() + 15.0
        while not got and time.monotonic() < deadline:
            now = time.time()
            feed[cfg.topics.cameras["primary"]](msgs.image_from_array(np.zeros((8, 8, 3), np.uint8), now))
            feed[cfg.topics.joint_states](msgs.JointState(header=msgs.header(now), name=["a"], position=[0.5]))
            feed[cfg.topics.ee_pose](msgs.PoseStamped(header=msgs.header(now), pose=msgs.Pose(position=msgs.Point(0.4, 0, 0.3))))
            time.sleep(0.02)
            node.tick()
            time.sleep(0.05)
        traj = got[0]
        assert list(traj.joint_names) == ["a"] and traj.header.stamp.sec == 0  # start now
        # 0.03 m is beyond the 0.025 m step limit (0.25 m/s at 10 Hz): the previewed point is clipped like a command
        np.testing.assert_allclose([p.positions[0] for p in traj.points], [0.51, 0.53, 0.555, 0.575], atol=1e-6)
        assert [p.time_from_start.sec * 1e9 + p.time_from_start.nanosec for p in traj.points] == [1e8, 2e8, 3e8, 4e8]
        assert traj.points[-1].velocities[0] == 0.0
    finally:
        node.close()
        ros.close()
        bridge_t.close()
