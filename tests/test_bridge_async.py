"""Asynchronous inference: the plan keeps running while the next chunk is computed, the new chunk is spliced in
by the periods actually consumed, and the seam is cross-faded (robot_bridge/chunks.py, BridgeNode with
`inference=async`). The node ticks in real time here (the policy runs in a real worker thread)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from robot_bridge.chunks import ChunkTimeline
from robot_bridge.config import BridgeConfig, NodeConfig
from robot_bridge.node import BridgeNode
from test_bridge_node import MemoryTransport, feed
from vla.core.types import ContractError, Policy

PERIOD = 0.1


def chunk(dx: float, k: int = 8, g: float = 1.0) -> np.ndarray:
    return np.array([[dx, 0, 0, 0, 0, 0, g]] * k, np.float32)


def test_splice_by_ticks_consumed_and_cross_fade():
    plan = ChunkTimeline(seam_steps=3)
    plan.splice(chunk(0.01), obs_tick=0, now_tick=0)
    for t in range(3):
        assert plan.pop(t)[0] == pytest.approx(0.01)
    new = chunk(0.03, g=0.0)
    new[:, 1] = np.arange(8) * 1e-3  # tells the actions apart
    seam = plan.splice(new, obs_tick=1, now_tick=3)  # asked at tick 1, ready at tick 3: 2 actions stale
    assert (seam.stale, seam.used, seam.blended) == (2, 6, 3)
    got = [plan.pop(t) for t in range(3, 9)]
    assert plan.pop(9) is None and plan.remaining(9) == 0
    np.testing.assert_allclose([a[1] for a in got], np.arange(2, 8) * 1e-3 * np.array([.25, .5, .75, 1, 1, 1]))
    np.testing.assert_allclose([a[0] for a in got], [0.015, 0.02, 0.025, 0.03, 0.03, 0.03], atol=1e-7)
    assert all(a[6] == 0.0 for a in got)  # the gripper switches at the seam, never half-open
    assert seam.naive_jump[0] == pytest.approx(0.0200, abs=1e-3) and seam.jump[0] == pytest.approx(0.005, abs=1e-3)
    assert plan.splice(chunk(0.01, k=4), obs_tick=0, now_tick=20).used == 0  # all of it came too late
    with pytest.raises(ContractError):
        plan.splice(np.full((4, 7), np.nan), 0, 0)


class SlowChunks(Policy):
    """Chunks of 8 after `delay` seconds; call i moves at dx[i % len(dx)], its gripper says i / 100."""

    def __init__(self, delay: float, dx=(0.01,)):
        self.delay, self.dx, self.calls, self.fail = delay, dx, 0, False

    def act(self, obs):
        i = self.calls
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("policy server gone")
        return chunk(self.dx[i % len(self.dx)], g=min(1.0, i / 100))


def run(node, t, cfg, ticks: int, on_tick=None) -> list:
    """Tick in real time at the node's rate, feeding fresh sensors before each tick."""
    reports, next_t = [], time.monotonic()
    clock = type("C", (), {"t": 0.0})()
    for i in range(ticks):
        clock.t = time.monotonic()
        feed(t, cfg, clock)
        reports.append(node.tick())
        if on_tick:
            on_tick(i, reports[-1])
        next_t += PERIOD
        time.sleep(max(0.0, next_t - time.monotonic()))
    return reports


def make(policy, **node_kw):
    cfg = BridgeConfig(node=NodeConfig(instruction="go", rate_hz=1 / PERIOD, **node_kw))
    t = MemoryTransport()
    return BridgeNode(cfg, policy, t), t, cfg


def test_a_policy_slower_than_a_period_misses_none_with_async_and_most_with_sync():
    """A policy that takes 2.5 periods per chunk of 8: sync stops while it computes; async never does after
    the first chunk, and each new chunk starts where the periods consumed put it (2-3 actions stale)."""
    node, t, cfg = make(SlowChunks(0.25), inference="async")
    reports = run(node, t, cfg, 40)
    first = next(i for i, r in enumerate(reports) if r.moved)
    assert first <= 4 and all(r.moved for r in reports[first:]), [r.reason for r in reports if not r.moved]
    seams = [r.seam for r in reports[first + 1:] if r.seam is not None]
    assert len(seams) >= 5 and all(2 <= s.stale <= 4 and s.used >= 4 for s in seams)
    node.close()
    node, t, cfg = make(SlowChunks(0.25))  # sync: the period waits at most 0.8 periods, then stops
    reports = run(node, t, cfg, 20)
    assert sum(not r.moved and "policy slow" in r.reason for r in reports) >= 5
    node.close()


def test_seams_are_cross_faded_within_the_acceleration_limit():
    """Chunks alternate between +0.02 and -0.02 m per step: a switch would change the step by 0.04 m, beyond
    the filter's 0.025 m per-step change; cross-faded over 3 periods the change is 0.01 and nothing is clipped."""
    node, t, cfg = make(SlowChunks(0.05, dx=(0.02, -0.02)), inference="async", seam_steps=3)
    limit = node.safety.accel_translation
    reports = run(node, t, cfg, 40)
    moving = [r for r in reports if r.moved]
    seams = [r.seam for r in reports if r.seam is not None and r.seam.used]
    assert len(moving) >= 35 and len(seams) >= 4
    assert max(s.naive_jump[0] for s in seams[1:]) > limit  # what a plain switch would have done
    assert max(s.jump[0] for s in seams) <= limit
    assert not any("acceleration" in n for r in moving for n in r.notes)
    cmds = np.array([r.command[0] for r in moving])
    assert np.max(np.abs(np.diff(cmds))) <= limit + 1e-6
    node.close()
    node, t, cfg = make(SlowChunks(0.05, dx=(0.02, -0.02)), inference="async", seam_steps=0)
    reports = run(node, t, cfg, 30)
    assert any("acceleration" in n for r in reports if r.moved for n in r.notes)  # the filter had to step in
    node.close()


def test_a_stop_drops_the_chunk_being_computed():
    pol = SlowChunks(0.25)
    node, t, cfg = make(pol, inference="async")
    calls_at_release = []

    def estop(i, r):
        if i == 12:
            node.estop(True)
        if i == 14:
            node.estop(False)
            calls_at_release.append(pol.calls)

    reports = run(node, t, cfg, 30, estop)
    after = [r for r in reports[15:] if r.moved]
    assert after and all(round(float(r.command[6]) * 100) >= calls_at_release[0] for r in after)  # asked after release
    assert all("e-stop" in r.reason for r in reports[13:15])
    node.close()


def test_a_failing_policy_stops_with_the_reason_once_the_plan_runs_dry():
    pol = SlowChunks(0.01)
    node, t, cfg = make(pol, inference="async")
    run(node, t, cfg, 5)
    pol.fail = True
    reports = run(node, t, cfg, 15)
    assert "policy failed: ConnectionError: policy server gone" in reports[-1].reason
    node.close()


def test_async_config_is_checked():
    with pytest.raises(ValueError, match="inference='later'"):
        NodeConfig(inference="later")
    with pytest.raises(ValueError, match="lockstep"):
        NodeConfig(inference="async", wait_for_new_observation=True)
