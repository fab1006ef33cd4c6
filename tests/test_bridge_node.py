"""Node logic with an injected clock over an in-memory transport (over real transports: test_bridge_faults.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from robot_bridge import msgs
from bridge_fuzz import fuzz_actions
from robot_bridge.config import BridgeConfig, NodeConfig, OutputConfig
from robot_bridge.node import BridgeNode, Level, Lifecycle
from robot_bridge.transport.base import Transport
from vla.core.types import Policy


class MemoryTransport(Transport):
    """In-process topics (the transport is the system edge here); records everything published."""

    def __init__(self):
        self.subs: dict[str, list] = {}
        self.sent: dict[str, list] = {}

    def publisher(self, topic, msg_type, qos):
        def pub(m):
            self.sent.setdefault(topic, []).append(m)
            for cb in self.subs.get(topic, []):
                cb(m)
        return pub

    def subscribe(self, topic, msg_type, qos, callback):
        self.subs.setdefault(topic, []).append(callback)

    def send(self, topic, m):
        for cb in self.subs.get(topic, []):
            cb(m)

    def last(self, topic):
        return self.sent.get(topic, [None])[-1]


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


class ConstPolicy(Policy):
    def __init__(self, action, delay=0.0, chunk=None):
        self.action, self.delay, self.chunk, self.calls, self.resets = np.asarray(action, np.float32), delay, chunk, 0, []

    def reset(self, instruction):
        self.resets.append(instruction)

    def act(self, obs):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if isinstance(self.action, Exception):
            raise self.action
        return np.tile(self.action, (self.chunk, 1)) if self.chunk else self.action


class Boom(Policy):
    def act(self, obs):
        raise ConnectionError("policy server at 127.0.0.1:1 refused the connection")


IMG = np.zeros((8, 8, 3), np.uint8)


def make(policy, **node_kw):
    cfg = BridgeConfig(node=NodeConfig(**{"instruction": "", **node_kw}))
    t, clock = MemoryTransport(), FakeClock()
    node = BridgeNode(cfg, policy, t, clock=clock, wall_clock=lambda: clock.t + 1e9)
    return node, t, clock, cfg


def feed(t, cfg, clock, camera=True, joints=True, pose=True):
    if camera:
        t.send(cfg.topics.cameras["primary"], msgs.image_from_array(IMG, clock.t))
    if joints:
        t.send(cfg.topics.joint_states, msgs.JointState(header=msgs.header(clock.t), name=["a", "b"], position=[0.1, 0.2]))
    if pose:
        t.send(cfg.topics.ee_pose, msgs.PoseStamped(header=msgs.header(clock.t),
                                                   pose=msgs.Pose(position=msgs.Point(0.4, 0, 0.3))))


def status(t, cfg):
    s = t.last(cfg.topics.status).status[0]
    return s.level, s.message, {kv.key: kv.value for kv in s.values}


def twist(t, cfg):
    m = t.last(cfg.topics.twist)
    return None if m is None else np.array([m.twist.linear.x, m.twist.linear.y, m.twist.linear.z,
                                            m.twist.angular.x, m.twist.angular.y, m.twist.angular.z])


def test_runs_and_publishes_stamped_twist_gripper_and_action():
    pol = ConstPolicy([0.01, 0, 0, 0, 0, 0, 0.5])
    node, t, clock, cfg = make(pol)
    t.send(cfg.topics.instruction, msgs.String("pick up the cube"))
    feed(t, cfg, clock)
    r = node.tick()
    assert r.moved and r.level == Level.OK, r.reason
    tw = t.last(cfg.topics.twist)
    assert tw.header.frame_id == cfg.output.frame_id != ""
    assert msgs.from_time(tw.header.stamp) == pytest.approx(clock.t + 1e9, abs=1e-3)  # fresh wall-clock stamp
    assert np.allclose(twist(t, cfg), [0.1, 0, 0, 0, 0, 0], atol=1e-6)  # 0.01 m per 0.1 s period -> 0.1 m/s
    assert t.last(cfg.topics.gripper).data == [pytest.approx(0.5)]
    act = t.last(cfg.topics.action)
    assert act.name[-1] == "gripper" and msgs.from_time(act.header.stamp) == pytest.approx(clock.t)
    assert pol.resets == ["pick up the cube"]
    assert status(t, cfg)[1] == "running"
    assert t.last(cfg.topics.heartbeat) is not None


def test_lifecycle_gates_output_and_deactivate_sends_stop():
    node, t, clock, cfg = make(ConstPolicy([0.01, 0, 0, 0, 0, 0, 1]), autostart=False, instruction="go")
    assert node.state is Lifecycle.UNCONFIGURED
    node.tick()
    assert t.sent == {}  # not even publishers exist yet
    node.configure()
    feed(t, cfg, clock)
    r = node.tick()
    assert not r.moved and "gated" in r.reason and t.last(cfg.topics.twist) is None
    t.send(cfg.topics.lifecycle, msgs.String("activate"))
    assert node.tick().moved
    t.send(cfg.topics.lifecycle, msgs.String("deactivate"))
    assert np.all(twist(t, cfg) == 0)  # the last command of a deactivating node is a stop
    n = len(t.sent[cfg.topics.twist])
    node.tick()
    assert len(t.sent[cfg.topics.twist]) == n and node.state is Lifecycle.INACTIVE
    t.send(cfg.topics.lifecycle, msgs.String("explode"))
    assert node.malformed["lifecycle"] == 1
    n_subs = sum(len(v) for v in t.subs.values())
    for step in ("cleanup", "activate", "configure", "activate"):  # activate before configure is ignored
        t.send(cfg.topics.lifecycle, msgs.String(step))
    assert node.state is Lifecycle.ACTIVE and sum(len(v) for v in t.subs.values()) == n_subs


def test_stale_camera_stops_within_two_periods_and_recovers():
    node, t, clock, cfg = make(ConstPolicy([0.01, 0, 0, 0, 0, 0, 1]), instruction="go")
    feed(t, cfg, clock)
    assert node.tick().moved
    last_image = clock.t
    stopped_at = None
    for _ in range(5):  # joints keep coming, the camera does not
        clock.t += node.period
        feed(t, cfg, clock, camera=False)
        r = node.tick()
        if not r.moved and stopped_at is None:
            stopped_at = clock.t
            assert r.level == Level.STALE and "stale camera 'primary'" in r.reason
            assert np.all(twist(t, cfg) == 0)
    assert stopped_at - last_image <= 2 * node.period + 1e-9
    assert "stale camera" in status(t, cfg)[1]
    feed(t, cfg, clock)
    assert node.tick().moved
    # between ticks, the watchdog stops as soon as the limit passes (not at the next tick)
    assert not node.watchdog()
    clock.t += node.period * 1.25
    assert node.watchdog() and np.all(twist(t, cfg) == 0) and "stale camera" in status(t, cfg)[1]
    assert not node.watchdog()  # one stop per transition; the ticks keep sending stops every period


def test_estop_stops_immediately_latches_and_release_ramps_up():
    node, t, clock, cfg = make(ConstPolicy([0.02, 0, 0, 0, 0, 0, 1]), instruction="go")
    feed(t, cfg, clock)
    for _ in range(3):
        node.tick()
    assert twist(t, cfg)[0] > 0
    n = len(t.sent[cfg.topics.twist])
    t.send(cfg.topics.estop, msgs.Bool(True))
    assert len(t.sent[cfg.topics.twist]) == n + 1 and np.all(twist(t, cfg) == 0)  # sent in the callback itself
    for _ in range(3):
        clock.t += node.period
        feed(t, cfg, clock)
        r = node.tick()
        assert not r.moved and "e-stop" in r.reason and np.all(twist(t, cfg) == 0)
    t.send(cfg.topics.estop, msgs.Bool(False))
    r = node.tick()
    assert r.moved and r.command[0] <= cfg.safety.max_linear_acceleration * node.period ** 2 + 1e-6


def test_clock_jumps_forward_and_backward_stop_until_fresh_data():
    node, t, clock, cfg = make(ConstPolicy([0.01, 0, 0, 0, 0, 0, 1]), instruction="go")
    feed(t, cfg, clock)
    assert node.tick().moved
    clock.t += 3600.0  # forward: every sensor looks old -> stop
    r = node.tick()
    assert not r.moved and "stale" in r.reason
    feed(t, cfg, clock)
    assert node.tick().moved
    clock.t -= 7200.0  # backward: ages would look fine forever; demand fresh data instead
    r = node.tick()
    assert not r.moved and "clock jumped backwards" in r.reason
    feed(t, cfg, clock)
    assert node.tick().moved


@pytest.mark.parametrize("action,word", [([np.nan] * 7, "non-finite"), ([0, 0, 0, 0, 0, 0, 2.0], "gripper"),
                                         ([3.0, 0, 0, 0, 0, 0, 1], "out of range"), ([0.1] * 3, "shape")])
def test_bad_policy_output_is_rejected_with_a_stop(action, word):
    node, t, clock, cfg = make(ConstPolicy(action), instruction="go")
    feed(t, cfg, clock)
    r = node.tick()
    assert not r.moved and word in r.reason and np.all(twist(t, cfg) == 0)
    assert word in status(t, cfg)[1] and status(t, cfg)[0] == Level.ERROR


def test_failing_and_slow_policy_stop_and_say_why():
    node, t, clock, cfg = make(Boom(), instruction="go")
    feed(t, cfg, clock)
    r = node.tick()
    assert not r.moved and "policy failed: ConnectionError" in r.reason
    slow = ConstPolicy([0.01, 0, 0, 0, 0, 0, 1], delay=0.3)
    node, t, clock, cfg = make(slow, instruction="go")
    feed(t, cfg, clock)
    t0 = time.perf_counter()
    r = node.tick()
    assert time.perf_counter() - t0 < 0.25  # the loop does not wait for a slow policy
    assert not r.moved and "policy slow" in r.reason and np.all(twist(t, cfg) == 0)
    r = node.tick()  # still busy
    assert not r.moved and "policy slow" in r.reason
    time.sleep(0.35)
    slow.delay = 0.0
    r = node.tick()  # the late answer is discarded, a fresh one is used
    assert r.moved and slow.calls == 2


def test_action_chunk_is_consumed_one_per_period():
    pol = ConstPolicy([0.01, 0, 0, 0, 0, 0, 1], chunk=4)
    node, t, clock, cfg = make(pol, instruction="go")
    feed(t, cfg, clock)
    for _ in range(8):
        assert node.tick().moved
    assert pol.calls == 2
    t.send(cfg.topics.estop, msgs.Bool(True))  # a stop drops the rest of the chunk
    t.send(cfg.topics.estop, msgs.Bool(False))
    node.tick()
    assert pol.calls == 3


def test_malformed_messages_are_counted_and_never_used():
    node, t, clock, cfg = make(ConstPolicy([0.01, 0, 0, 0, 0, 0, 1]), instruction="go")
    t.send(cfg.topics.cameras["primary"], msgs.Image(height=8, width=8, encoding="rgb8", step=24, data=b"short"))
    t.send(cfg.topics.cameras["primary"], msgs.Image(height=1, width=1, encoding="16UC1", step=2, data=b"00"))
    t.send(cfg.topics.joint_states, msgs.JointState(name=["a"], position=[float("nan")]))
    t.send(cfg.topics.joint_states, msgs.JointState(name=["a", "b", "c"], position=[0.0]))
    t.send(cfg.topics.ee_pose, msgs.PoseStamped(pose=msgs.Pose(orientation=msgs.Quaternion(0, 0, 0, 0))))
    r = node.tick()
    assert not r.moved and "no message received yet" in r.reason
    assert node.malformed == {"image primary": 2, "joint_states": 2, "ee_pose": 1}
    assert status(t, cfg)[2]["malformed"] == "5"


def test_joint_trajectory_output_holds_position_on_stop():
    cfg = BridgeConfig(node=NodeConfig(instruction="go"),
                       output=OutputConfig(command="joint_trajectory", joint_names=["b", "a"],
                                           ik="test_bridge_node:toy_ik"))
    t, clock = MemoryTransport(), FakeClock()
    node = BridgeNode(cfg, ConstPolicy([0.01, 0, 0, 0, 0, 0, 1]), t, clock=clock)
    feed(t, cfg, clock)
    assert node.tick().moved
    traj = t.last(cfg.topics.joint_trajectory)
    assert traj.joint_names == ["b", "a"] and np.allclose(traj.points[0].positions, [0.21, 0.11])
    node.estop(True)
    traj = t.last(cfg.topics.joint_trajectory)
    assert np.allclose(traj.points[0].positions, [0.2, 0.1]) and np.allclose(traj.points[0].velocities, 0)
    with pytest.raises(ValueError, match="ik"):
        OutputConfig(command="joint_trajectory")


class ChunkPolicy(Policy):
    """Returns the given (K, 7) chunk on every call."""

    def __init__(self, chunk):
        self.chunk, self.calls = np.asarray(chunk, np.float32), 0

    def act(self, obs):
        self.calls += 1
        return self.chunk


def _points(traj):
    return (np.array([p.positions for p in traj.points]), np.array([p.velocities for p in traj.points]),
            [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in traj.points])


def test_joint_trajectory_carries_the_chunk_through_safety_and_ik_with_time_from_start_per_point():
    """The chunk's actions as points one period apart; each passed through the safety filter as if executed
    (the end-effector moved by the ones before: x 0.88 reaches the workspace wall at 0.9), cut at the first
    the filter rejects (0.5 m), joint targets chained through the IK; velocities central, 0 at the end."""
    chunk = [[0.01, 0, 0, 0, 0, 0, 1], [0.01, 0, 0, 0, 0, 0, 1], [0.01, 0, 0, 0, 0, 0, 1], [0.01, 0, 0, 0, 0, 0, 1],
             [0.5, 0, 0, 0, 0, 0, 1]]
    cfg = BridgeConfig(node=NodeConfig(instruction="go"),
                       output=OutputConfig(command="joint_trajectory", joint_names=["b", "a"],
                                           ik="test_bridge_node:toy_ik", trajectory_points=8))
    t, clock = MemoryTransport(), FakeClock()
    node = BridgeNode(cfg, ChunkPolicy(chunk), t, clock=clock)
    feed(t, cfg, clock, pose=False)
    t.send(cfg.topics.ee_pose, msgs.PoseStamped(header=msgs.header(clock.t), pose=msgs.Pose(position=msgs.Point(0.87, 0, 0.3))))
    assert node.tick().moved
    q, v, tfs = _points(t.last(cfg.topics.joint_trajectory))
    # x: 0.87 -> 0.88 -> 0.89 -> 0.90 (wall) -> 0.90; then 0.5 m is rejected: 4 points
    np.testing.assert_allclose(q, [[0.21, 0.11], [0.22, 0.12], [0.23, 0.13], [0.23, 0.13]], atol=1e-6)
    np.testing.assert_allclose(tfs, [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(v, [[0.1, 0.1], [0.1, 0.1], [0.05, 0.05], [0, 0]], atol=1e-5)
    clock.t += 0.1
    feed(t, cfg, clock)  # the arm moved by the first point; the pose message says x=0.4 now: no wall ahead
    assert node.tick().moved
    q, _, tfs = _points(t.last(cfg.topics.joint_trajectory))
    np.testing.assert_allclose(q, [[0.21, 0.11], [0.22, 0.12], [0.23, 0.13]], atol=1e-6)
    np.testing.assert_allclose(tfs, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="trajectory_points=0"):
        OutputConfig(command="joint_trajectory", ik="m:f", trajectory_points=0)


@pytest.mark.parametrize("command", ["joint_velocity", "joint_position", "cartesian_velocity"])
def test_float64_array_outputs_and_their_stops(command):
    cfg = BridgeConfig(node=NodeConfig(instruction="go"),
                       output=OutputConfig(command=command, joint_names=["a", "b"], ik="test_bridge_node:toy_ik"))
    t, clock = MemoryTransport(), FakeClock()
    node = BridgeNode(cfg, ConstPolicy([0.01, 0, 0, 0, 0, 0, 1]), t, clock=clock)
    topic = getattr(cfg.topics, command)
    feed(t, cfg, clock)
    assert node.tick().moved
    sent = np.array(t.last(topic).data)
    expected = {"joint_velocity": [0.1, 0.1], "joint_position": [0.11, 0.21], "cartesian_velocity": [0.1, 0, 0, 0, 0, 0]}
    np.testing.assert_allclose(sent, expected[command], atol=1e-6)
    node.estop(True)
    stop = {"joint_velocity": [0, 0], "joint_position": [0.1, 0.2], "cartesian_velocity": [0] * 6}
    np.testing.assert_allclose(t.last(topic).data, stop[command], atol=1e-9)


def test_ik_jump_is_rejected_with_a_stop():
    cfg = BridgeConfig(node=NodeConfig(instruction="go"),
                       output=OutputConfig(command="joint_velocity", ik="test_bridge_node:jumpy_ik", max_joint_step=0.1))
    t, clock = MemoryTransport(), FakeClock()
    node = BridgeNode(cfg, ConstPolicy([0.01, 0, 0, 0, 0, 0, 1]), t, clock=clock)
    feed(t, cfg, clock)
    r = node.tick()
    assert not r.moved and "joint step of 3.000 rad" in r.reason
    assert np.all(np.array(t.last(cfg.topics.joint_velocity).data) == 0)


def jumpy_ik(q, delta):
    return q + 3.0


def toy_ik(q, delta):
    return q + delta[0]


def test_fuzzed_policy_outputs_through_the_node_never_exceed_limits():
    class Fuzz(Policy):
        def __init__(self):
            self.it = iter(fuzz_actions(10_000, seed=1))

        def act(self, obs):
            return next(self.it)

    cfg = BridgeConfig(node=NodeConfig(instruction="go", policy_timeout_periods=50))
    t, clock = MemoryTransport(), FakeClock()
    node = BridgeNode(cfg, Fuzz(), t, clock=clock)
    f = node.safety
    p, prev, moved = np.array([0.4, 0.0, 0.3]), np.zeros(6), 0
    for _ in range(10_000):
        clock.t += node.period
        t.send(cfg.topics.cameras["primary"], msgs.image_from_array(IMG, clock.t))
        t.send(cfg.topics.joint_states, msgs.JointState(position=[0.0]))
        t.send(cfg.topics.ee_pose, msgs.PoseStamped(pose=msgs.Pose(position=msgs.Point(*p))))
        r = node.tick()
        v = twist(t, cfg) * node.period
        if not r.moved:
            assert np.all(v == 0)
            prev = np.zeros(6)
            continue
        moved += 1
        assert f.violation(np.append(v, r.command[6]), None if "workspace" in r.notes else prev, ee_position=p) == ""
        prev, p = v, p + v[:3]
    assert moved > 3000


def test_wait_for_new_observation_never_acts_twice_on_one_frame():
    pol = ConstPolicy([0.01, 0, 0, 0, 0, 0, 1])
    node, t, clock, cfg = make(pol, instruction="go", wait_for_new_observation=True)
    feed(t, cfg, clock)
    assert node.tick().moved and pol.calls == 1
    # the same frame again (a simulator re-publishing its current state): the tick waits for the next one
    t0 = time.perf_counter()
    t.send(cfg.topics.cameras["primary"], msgs.image_from_array(IMG, clock.t))
    timer = threading.Timer(0.03, lambda: feed(t, cfg, FakeClock(clock.t + 0.05)))
    timer.start()
    assert node.tick().moved and pol.calls == 2
    assert 0.02 < time.perf_counter() - t0 < node.stale_after + 0.05
    timer.join()


class ProprioPolicy(ConstPolicy):
    """Remembers the proprio of every observation it acted on."""

    def __init__(self):
        super().__init__([0.01, 0, 0, 0, 0, 0, 1])
        self.seen = []

    def act(self, obs):
        self.seen.append(obs.proprio.tolist())
        return super().act(obs)


def test_lockstep_waits_for_every_stream_of_a_new_frame():
    """A simulator publishes a frame's topics one after another: the images of the new frame can arrive before
    its joint states. Acting then would pair new images with the previous state (the policy repeats its
    last action); lockstep waits until every stream carries the new frame."""
    pol = ProprioPolicy()
    node, t, clock, cfg = make(pol, instruction="go", wait_for_new_observation=True)
    feed(t, cfg, clock)
    assert node.tick().moved
    np.testing.assert_allclose(pol.seen, [[0.1, 0.2]])
    stamp = clock.t + node.period
    t.send(cfg.topics.cameras["primary"], msgs.image_from_array(IMG, stamp))  # frame 2: image first
    t.send(cfg.topics.ee_pose, msgs.PoseStamped(header=msgs.header(stamp), pose=msgs.Pose(position=msgs.Point(0.41, 0, 0.3))))
    late = threading.Timer(0.03, lambda: t.send(cfg.topics.joint_states, msgs.JointState(
        header=msgs.header(stamp), name=["a", "b"], position=[0.3, 0.4])))
    late.start()
    r = node.tick()
    late.join()
    assert r.moved
    np.testing.assert_allclose(pol.seen, [[0.1, 0.2], [0.3, 0.4]])  # the new frame's state, not the old


def test_lockstep_stops_instead_of_acting_twice_on_one_frame():
    """No new frame within the stale window (the frame is only re-published): a stop with the reason,
    never a second action on the same frame; the next new frame is acted on."""
    pol = ConstPolicy([0.01, 0, 0, 0, 0, 0, 1])
    node, t, clock, cfg = make(pol, instruction="go", wait_for_new_observation=True)
    feed(t, cfg, clock)
    assert node.tick().moved and pol.calls == 1
    feed(t, cfg, clock)  # the same frame again, fresh on arrival
    t0 = time.perf_counter()
    r = node.tick()
    assert time.perf_counter() - t0 >= node.stale_after * 0.9
    assert not r.moved and pol.calls == 1 and r.reason.startswith("lockstep: no new frame from camera 'primary'")
    assert np.all(twist(t, cfg) == 0)
    clock.t += node.period
    feed(t, cfg, clock)
    assert node.tick().moved and pol.calls == 2


def test_joint_states_from_several_publishers_are_merged_by_name():
    cfg = BridgeConfig(node=NodeConfig(instruction="go"),
                       output=OutputConfig(joint_names=["j2", "j1"]))
    t, clock = MemoryTransport(), FakeClock()
    node = BridgeNode(cfg, ConstPolicy([0.01, 0, 0, 0, 0, 0, 1]), t, clock=clock)
    feed(t, cfg, clock, joints=False)
    t.send(cfg.topics.joint_states, msgs.JointState(name=["j1", "finger"], position=[0.1, 0.04]))
    r = node.tick()
    assert not r.moved and "joint_states: no message received yet" in r.reason  # j2 not seen yet
    t.send(cfg.topics.joint_states, msgs.JointState(name=["j2"], position=[0.2]))
    r = node.tick()
    assert r.moved
    np.testing.assert_allclose(node._observation().proprio, [0.2, 0.1])
    clock.t += 5 * node.period  # only the gripper keeps publishing: the arm's joint states are stale
    feed(t, cfg, clock, joints=False)
    t.send(cfg.topics.joint_states, msgs.JointState(name=["finger"], position=[0.03]))
    r = node.tick()
    assert not r.moved and "stale joint_states" in r.reason


def test_live_settings_are_checked_then_taken_and_structural_ones_refused():
    """What ROS 2 parameters reach on transport=rclpy (tests/test_bridge_ros_node.py), here from code."""
    node, t, clock, cfg = make(ConstPolicy([0.02, 0, 0, 0, 0, 0, 1]), instruction="go")
    feed(t, cfg, clock)
    for _ in range(3):
        node.tick()
    assert node.check_settings({"safety.max_linear_velocity": -1.0}) == "safety.max_linear_velocity must be > 0, got -1.0"
    assert "cannot change while the node runs" in node.check_settings({"node.rate_hz": 20.0})
    assert "no setting" in node.check_settings({"safety.max_speed": 1.0})
    with pytest.raises(ValueError, match="must be > 0"):
        node.apply_settings({"safety.max_linear_velocity": 0.0})
    node.apply_settings({"safety.max_linear_velocity": 0.05, "node.instruction": "place it"})
    r = node.tick()  # 0.02 m/period was allowed; 0.005 now, reached under the acceleration limit
    assert not r.moved or r.command[0] <= 0.02 + 1e-6
    for _ in range(10):
        r = node.tick()
    assert r.moved and r.command[0] == pytest.approx(0.005, abs=1e-6)
    assert node.policy.resets[-1] == "place it" and node.cfg.safety.max_linear_velocity == 0.05


def test_shutdown_finalizes_for_good():
    node, t, clock, cfg = make(ConstPolicy([0.01, 0, 0, 0, 0, 0, 1]), instruction="go")
    feed(t, cfg, clock)
    assert node.tick().moved
    t.send(cfg.topics.lifecycle, msgs.String("shutdown"))
    assert node.state is Lifecycle.FINALIZED and np.all(twist(t, cfg) == 0)
    for step in ("configure", "activate"):
        t.send(cfg.topics.lifecycle, msgs.String(step))
    assert node.state is Lifecycle.FINALIZED and not node.tick().moved
