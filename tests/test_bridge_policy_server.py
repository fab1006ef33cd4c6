"""Remote inference: JSON + raw bytes over TCP on localhost, timeouts, killed server, malformed frames."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from robot_bridge import wire
from robot_bridge.policies import PolicyConfig, build_policy
from robot_bridge.policy_server import PolicyServer, PolicyServerError, RemotePolicy
from vla.core.types import Observation, Policy

OBS = Observation(images={"primary": np.full((16, 16, 3), 7, np.uint8)}, proprio=np.arange(8, dtype=np.float32),
                  instruction="open the drawer", timestamp=3.5)


class Echo(Policy):
    """Returns a chunk built from what it received, so the test sees the observation crossed intact."""

    chunk_size = 2
    cameras = ("primary",)

    def __init__(self):
        self.delay, self.instruction = 0.0, None

    def reset(self, instruction):
        self.instruction = instruction

    def act(self, obs):
        time.sleep(self.delay)
        a = np.zeros((2, 7), np.float32)
        a[:, 0] = obs.images["primary"].mean() / 1000
        a[:, 1] = obs.proprio.sum() / 1000
        a[:, 2] = obs.timestamp / 1000
        a[:, 6] = 1.0
        return a


def test_roundtrip_reset_and_chunk():
    pol = Echo()
    with PolicyServer(pol) as srv:
        client = RemotePolicy(srv.host, srv.port, timeout_s=2.0)
        assert client.chunk_size == 2 and client.cameras == ("primary",)
        client.reset("open the drawer")
        assert pol.instruction == "open the drawer"
        out = client.act(OBS)
        assert out.shape == (2, 7) and out.dtype == np.float32
        np.testing.assert_allclose(out[0, :3], [0.007, 0.028, 0.0035], rtol=1e-6)
        client.close()
    local, remote = build_policy(PolicyConfig(kind="random", seed=3)), build_policy(PolicyConfig(kind="random", seed=3))
    with PolicyServer(remote) as srv:
        client = RemotePolicy(srv.host, srv.port)
        for _ in range(5):
            np.testing.assert_array_equal(client.act(OBS), local.act(OBS))


def test_timeout_raises_then_recovers():
    pol = Echo()
    with PolicyServer(pol) as srv:
        client = RemotePolicy(srv.host, srv.port, timeout_s=0.2)
        pol.delay = 0.5
        t0 = time.perf_counter()
        with pytest.raises(PolicyServerError, match="did not answer act within 200 ms"):
            client.act(OBS)
        assert time.perf_counter() - t0 < 0.45
        pol.delay = 0.0
        time.sleep(0.4)  # the server finishes the late request on the dropped connection
        assert client.act(OBS).shape == (2, 7)  # reconnects; the late reply is never mistaken for this one


def test_server_error_and_unreachable_server_raise_clearly():
    class Bad(Policy):
        def act(self, obs):
            raise RuntimeError("CUDA out of memory")

    with PolicyServer(Bad()) as srv:
        client = RemotePolicy(srv.host, srv.port)
        with pytest.raises(PolicyServerError, match="CUDA out of memory"):
            client.act(OBS)
        port = srv.port
    with pytest.raises(PolicyServerError, match="cannot reach policy server"):
        RemotePolicy("127.0.0.1", port, connect_timeout_s=0.5)


def test_killed_server_process_gives_policy_error():
    code = ("import sys; from robot_bridge.policy_server import PolicyServer; from robot_bridge.policies import PolicyConfig, build_policy;"
            "s = PolicyServer(build_policy(PolicyConfig()), port=0); print(s.port, flush=True); s.serve_forever()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        client = RemotePolicy("127.0.0.1", port, timeout_s=1.0)
        assert client.act(OBS).shape == (7,)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        with pytest.raises(PolicyServerError):
            client.act(OBS)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_malformed_frames_are_refused_and_server_keeps_serving():
    with PolicyServer(Echo()) as srv:
        for junk in (b"\xff\xff\xff\x7f", struct.pack("<I", 5) + b"nope!",
                     wire.encode({"op": "act"}, {})[:4] + b"[1,2]",
                     struct.pack("<I", 60) + b'{"op":"act","arrays":[{"name":"x","dtype":"object","shape":[1]}]}'[:60]):
            with socket.create_connection((srv.host, srv.port), timeout=2) as s:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                assert s.recv(100) == b""  # server hangs up, no reply, no crash
        assert RemotePolicy(srv.host, srv.port).act(OBS).shape == (2, 7)
    with pytest.raises(wire.WireError, match="dtype"):
        wire.encode({}, {"x": np.array([object()])})


def test_node_stops_and_says_why_when_the_policy_process_dies_or_stalls():
    from test_bridge_node import FakeClock, MemoryTransport, feed

    from robot_bridge.config import BridgeConfig, NodeConfig
    from robot_bridge.node import BridgeNode

    code = ("import sys, time; from robot_bridge.policy_server import PolicyServer; from robot_bridge.policies import PolicyConfig, build_policy;"
            "p = build_policy(PolicyConfig()); s = PolicyServer(p, port=0); print(s.port, flush=True); s.start();"
            "sys.stdin.readline(); p.act = lambda o: time.sleep(5); print('stalled', flush=True); sys.stdin.readline()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        client = build_policy(PolicyConfig(kind="remote", port=int(proc.stdout.readline()), timeout_s=0.15))
        cfg = BridgeConfig(node=NodeConfig(instruction="go", policy_timeout_periods=3))
        t, clock = MemoryTransport(), FakeClock()
        node = BridgeNode(cfg, client, t, clock=clock)
        feed(t, cfg, clock)
        assert node.tick().moved
        proc.stdin.write("stall\n")  # the server's policy now takes 5 s: the client times out
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "stalled"  # wait until it took effect (a race on a busy CPU)
        r = node.tick()
        assert not r.moved and "policy failed: PolicyServerError" in r.reason and "did not answer" in r.reason
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        r = node.tick()
        assert not r.moved and "policy failed: PolicyServerError" in r.reason
        tw = t.last(cfg.topics.twist).twist
        assert (tw.linear.x, tw.linear.y, tw.linear.z) == (0.0, 0.0, 0.0)
    finally:
        if proc.poll() is None:
            proc.kill()
