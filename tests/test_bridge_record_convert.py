"""Record a bridge session to rosbag2 (mcap and sqlite3) and convert it to RLDS with `vla-convert`'s logic."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

pytest.importorskip("rosbags")

from test_bridge_node import ConstPolicy, FakeClock, MemoryTransport  # noqa: E402

from robot_bridge import msgs  # noqa: E402
from robot_bridge.config import BridgeConfig, NodeConfig  # noqa: E402
from robot_bridge.convert import BagCountError, ConvertConfig, bag_to_episodes, convert  # noqa: E402
from robot_bridge.node import BridgeNode  # noqa: E402
from robot_bridge.recorder import Recorder  # noqa: E402

N = 24


def _session(tmp_path, gap=None):
    """A 10 Hz session: a toy arm integrates the commanded motion; images encode the step index."""
    cfg = BridgeConfig(node=NodeConfig(instruction=""))
    t, clock = MemoryTransport(), FakeClock(1000.0)
    rec_mcap = Recorder(tmp_path / "bag_mcap", t, cfg.topics)
    rec_sql = Recorder(tmp_path / "bag_sqlite", t, cfg.topics, storage="sqlite3")
    node = BridgeNode(cfg, ConstPolicy([0.01, 0, 0, 0, 0, 0.05, 0.0]), t, clock=clock, wall_clock=clock)
    t.send(cfg.topics.instruction, msgs.String("push the block right"))
    p = np.array([0.4, 0.0, 0.3])
    yaw = 0.0
    for k in range(N):
        if gap is None or not (gap[0] <= k < gap[1]):
            img = np.full((32, 48, 3), k * 5, np.uint8)
            t.send(cfg.topics.cameras["primary"], msgs.image_from_array(img, clock.t))
        t.send(cfg.topics.joint_states, msgs.JointState(header=msgs.header(clock.t), name=["j0", "j1"], position=[k, -k]))
        q = (0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2))
        t.send(cfg.topics.ee_pose, msgs.PoseStamped(header=msgs.header(clock.t), pose=msgs.Pose(
            position=msgs.Point(*p), orientation=msgs.Quaternion(*q))))
        r = node.tick()
        if r.moved:
            p, yaw = p + r.command[:3], yaw + r.command[5]
        clock.t += node.period
    rec_mcap.close()
    rec_sql.close()
    return cfg, rec_mcap, rec_sql


def test_record_and_convert_mcap_and_sqlite3(tmp_path):
    cfg, rec, rec_sql = _session(tmp_path)
    assert rec.counts[cfg.topics.cameras["primary"]] == N and rec.counts[cfg.topics.action] >= N - 2
    meta = yaml.safe_load((tmp_path / "bag_mcap" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["message_count"] == sum(rec.counts.values())
    ccfg = ConvertConfig(image_size=[16, 24], rate_hz=10.0)
    for bag in ("bag_mcap", "bag_sqlite"):
        (ep,) = bag_to_episodes(tmp_path / bag, ccfg)
        assert ep.instruction == "push the block right"
        assert ep.images["primary"].shape[1:] == (16, 24, 3)
        k0 = int(ep.state[0, 0])
        # step k shows image k, state k, and the command answering observation k
        np.testing.assert_array_equal(ep.state[:, 0], np.arange(k0, k0 + len(ep)))
        np.testing.assert_array_equal(ep.images["primary"][:, 0, 0, 0], 5 * ep.state[:, 0])
        moving = ep.action[2:]
        np.testing.assert_allclose(moving[:, 0], 0.01, atol=1e-6)
        np.testing.assert_allclose(moving[:, 5], 0.05, atol=1e-6)
        assert np.all(ep.action[:, 6] == 0.0)
    # measured: end-effector differences give the same motion
    (ep,) = bag_to_episodes(tmp_path / "bag_mcap", ConvertConfig(image_size=[16, 24], action_source="measured",
                                                                 proprio=["ee_pose"]))
    np.testing.assert_allclose(ep.action[2:-1, 0], 0.01, atol=1e-5)
    np.testing.assert_allclose(ep.action[2:-1, 5], 0.05, atol=1e-5)
    assert ep.state.shape[1] == 7
    # the whole path to RLDS, read back TensorFlow-free
    from vla.data.rlds_reader import RLDSReader

    out, n = convert(ConvertConfig(bags=[str(tmp_path / "bag_mcap"), str(tmp_path / "bag_sqlite")],
                                   output_dir=str(tmp_path / "rlds"), name="robot", image_size=[16, 24]))
    assert n == 2
    eps = list(RLDSReader(out).episodes(decode_images=True))
    assert len(eps) == 2 and eps[0]["steps"]["action"].shape[1] == 7
    assert eps[0]["steps"]["observation"]["image"].shape[1:] == (16, 24, 3)
    # ready for vla-train: the generic spec for our own RLDS data standardizes it
    from vla.data.oxe import get_dataset_spec

    std = get_dataset_spec("vla_episodes").standardize(eps[0])
    assert std["action"].shape == (len(eps[0]["steps"]["action"]), 7) and std["instruction"] == "push the block right"


def test_gap_splits_episode_and_count_mismatch_is_an_error(tmp_path):
    _session(tmp_path, gap=(10, 14))
    eps = bag_to_episodes(tmp_path / "bag_mcap", ConvertConfig(image_size=[32, 48]))
    assert len(eps) == 2 and all(len(e) >= 2 for e in eps)
    meta_path = tmp_path / "bag_mcap" / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    topic = meta["rosbag2_bagfile_information"]["topics_with_message_count"][0]
    topic["message_count"] += 3
    meta_path.write_text(yaml.safe_dump(meta))
    with pytest.raises(BagCountError, match="bag metadata says"):
        bag_to_episodes(tmp_path / "bag_mcap", ConvertConfig())
    with pytest.raises(FileNotFoundError, match="metadata.yaml"):
        convert(ConvertConfig(bags=[str(tmp_path)]))


def test_joint_groups_published_separately_are_merged_by_name(tmp_path):
    cfg = BridgeConfig()
    t = MemoryTransport()
    rec = Recorder(tmp_path / "bag", t, cfg.topics)
    send = {topic: t.publisher(topic, None, None) for topic in (cfg.topics.cameras["primary"], cfg.topics.joint_states, cfg.topics.action)}
    for k in range(10):
        s = 100.0 + 0.1 * k
        send[cfg.topics.cameras["primary"]](msgs.image_from_array(np.zeros((8, 8, 3), np.uint8), s))
        send[cfg.topics.joint_states](msgs.JointState(header=msgs.header(s), name=["a1", "a2"], position=[k, -k]))
        send[cfg.topics.joint_states](msgs.JointState(header=msgs.header(s + 0.01), name=["finger"], position=[0.04]))
        send[cfg.topics.action](msgs.JointState(header=msgs.header(s), name=list("xyzrpwg"), position=[0.0] * 6 + [1.0]))
    rec.close()
    with pytest.raises(ValueError, match="different joint sets"):
        bag_to_episodes(tmp_path / "bag", ConvertConfig(image_size=[8, 8], align="commands", instruction="pick"))
    (ep,) = bag_to_episodes(tmp_path / "bag", ConvertConfig(image_size=[8, 8], align="commands", joint_names=["a2", "finger", "a1"],
                                                     instruction="pick"))
    assert len(ep) == 9  # the first step has no finger reading yet
    np.testing.assert_allclose(ep.state[:, 0], -np.arange(1, 10))
    np.testing.assert_allclose(ep.state[:, 1], 0.04)
    np.testing.assert_allclose(ep.state[:, 2], np.arange(1, 10))


@pytest.mark.slow
def test_record_with_genuine_rclpy_then_convert_and_train(tmp_path):
    """A bridge session (fake robot + vla-bridge on direct DDS) recorded by a genuine rclpy process (Fast DDS,
    raw subscriptions, rosbags writer: `python -m robot_bridge.ros_record`), the camera as a PNG
    CompressedImage the way image_transport publishes it; converted; then a few steps of the tiny VLA on it."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from ros2_env import ros_env, ros_python, unavailable_reason

    from robot_bridge.transport.loopback import LOOPBACK_ENV

    py = ros_python()
    if py is None:
        pytest.skip(unavailable_reason())
    domain = 130 + os.getpid() % 70  # private DDS domain: concurrent runs on this machine never cross-talk
    cfg = BridgeConfig()
    cam = cfg.topics.cameras["primary"] + "/compressed"
    topics = [cam, cfg.topics.joint_states, cfg.topics.ee_pose, cfg.topics.instruction, cfg.topics.action]
    bag = tmp_path / "bag"
    rec = subprocess.Popen([py, "-m", "robot_bridge.ros_record", "--domain", str(domain), "--out", str(bag),
                            "--distro", "kilted", *topics], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=ros_env(domain))
    dds_env = dict(os.environ, **LOOPBACK_ENV)
    bridge = sensors = None
    try:
        assert json.loads(rec.stdout.readline())["event"] == "recording", rec.stderr.read()[-2000:]
        log = tmp_path / "bridge.log"  # a file, not a pipe: a full, undrained pipe blocks the bridge (and its SIGINT)
        bridge = subprocess.Popen([sys.executable, "-m", "robot_bridge.cli.bridge", "loopback=true", f"domain_id={domain}",
                                   "policy.kind=random", "policy.scale=0.005", f"hydra.run.dir={tmp_path / 'run'}"],
                                  stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, env=dds_env)
        # The sensors start their timed run at their first subscriber, which can be the recorder: under a loaded
        # suite the bridge can still be importing then, and get SIGINT before it ever ran. Wait until it runs.
        deadline = time.monotonic() + 120
        while "bridge running" not in log.read_text():
            if bridge.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"vla-bridge did not start (exit code {bridge.poll()}): {log.read_text()[-2000:]}")
            time.sleep(0.2)
        sensors = subprocess.Popen([sys.executable, "-m", "robot_bridge.fake_sensors", "--domain", str(domain),
                                    "--hz", "30", "--size", "64", "--seconds", "5", "--compressed", "png",
                                    "--instruction", "pick up the cube"], stdout=subprocess.PIPE, text=True,
                                   env=dds_env)
        sent = json.loads(sensors.communicate(timeout=120)[0])["sent"]
        bridge.send_signal(signal.SIGINT)
        try:  # it must end by itself, also when the suite was started as a background job (SIGINT inherited
            bridge_rc = bridge.wait(60)  # ignored: test_bridge_cli.py); 60 s only detects a hang
        except subprocess.TimeoutExpired:
            pytest.fail(f"vla-bridge still running 60 s after SIGINT: {log.read_text()[-2000:]}")
        assert bridge_rc == 0 and "bridge stopped after" in log.read_text(), log.read_text()[-2000:]
        rec.stdin.write("stop\n")
        rec.stdin.flush()
        done = [json.loads(line) for line in rec.stdout if line.startswith("{")][-1]
        rec.wait(30)
    finally:
        for p in (sensors, bridge, rec):
            if p is not None and p.poll() is None:
                p.kill()
    assert done["event"] == "done" and not done["never_published"], done
    counts = done["counts"]
    assert counts[cam] >= sent - 5 and counts[cfg.topics.instruction] == 1  # recording starts at the first match
    assert counts[cfg.topics.action] >= 10, (counts, log.read_text()[-2000:])

    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["ros_distro"] == "kilted" and meta["storage_identifier"] == "mcap"
    ccfg = ConvertConfig(bags=[str(bag)], output_dir=str(tmp_path / "rlds"), name="rclpy_session",
                         image_size=[64, 64], align="commands")
    ccfg.topics.cameras = {"primary": cam}
    eps = bag_to_episodes(bag, ccfg)
    assert sum(len(e) for e in eps) >= 10 and {e.instruction for e in eps} == {"pick up the cube"}
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)  # fake_sensors' frame, lossless
    np.testing.assert_array_equal(eps[0].images["primary"][0], img)
    assert np.all(np.abs(eps[0].action[:, :3]) <= 0.005 + 1e-6) and eps[0].state.shape[1] == 7
    out, n = convert(ccfg)
    assert n == len(eps)

    from test_train import SMALL

    from vla.model.policy import VLAPolicy
    from vla.train import run

    final = run({"model": SMALL, "output_dir": str(tmp_path / "train"),
                 "trainer": {"steps": 3, "batch_size": 4, "save_every": 0, "val_every": 0, "log_every": 1,
                             "progress": False, "num_threads": 1},
                 "data": {"datasets": [{"path": str(out)}], "num_workers": 0, "shuffle_buffer": 20, "chunk_size": 2,
                          "statistics_cache": str(tmp_path / "stats"), "image_augmentation": False}})
    history = json.loads((tmp_path / "train" / "history.json").read_text())
    assert [h["step"] for h in history if "loss" in h][-1] == 3 and all(np.isfinite(h["loss"]) for h in history if "loss" in h)
    policy = VLAPolicy.from_pretrained(final)
    from vla.core.types import Observation

    a = policy.act(Observation(images={"primary": img}, proprio=eps[0].state[0], instruction="pick up the cube"))
    assert np.all(np.isfinite(a))
