"""The safety filter: limits, rejections and the 10,000-output fuzz (no command may exceed a limit)."""

from __future__ import annotations

import numpy as np
import pytest

from bridge_fuzz import fuzz_actions
from robot_bridge.safety import SafetyConfig, SafetyFilter

P0 = np.array([0.4, 0.0, 0.3])


def test_clips_translation_rotation_and_ramps_with_acceleration_limit():
    f = SafetyFilter(SafetyConfig(max_linear_acceleration=1.0), dt=0.1)
    r = f.filter([0.1, 0, 0, 0, 0, 0.5, 1.0], P0)
    assert r.ok and "linear acceleration" in r.reason
    # from rest the first step is bounded by a*dt^2, later steps ramp up to the velocity limit
    assert np.isclose(r.command[0], 0.01, atol=1e-6)
    assert np.isclose(f.filter([0.1, 0, 0, 0, 0, 0.5, 1.0], P0).command[0], 0.02, atol=1e-6)
    for _ in range(5):
        r = f.filter([0.1, 0, 0, 0, 0, 0.5, 1.0], P0)
    assert np.isclose(r.command[0], min(0.03, 0.25 * 0.1), atol=1e-6)
    assert np.isclose(np.linalg.norm(r.command[3:6]), 0.15, atol=1e-6)


def test_rejects_nan_out_of_range_and_bad_gripper():
    f = SafetyFilter(SafetyConfig(), dt=0.1)
    for bad, word in [([np.nan] * 7, "non-finite"), ([0, 0, 0, 0, 0, 0, 1.5], "gripper"),
                      ([1.0, 0, 0, 0, 0, 0, 1], "out of range"), ([0] * 6, "shape"), ([0, 0, 0, 5, 0, 0, 0], "out of range")]:
        r = f.filter(bad, P0)
        assert not r.ok and r.command is None and word in r.reason, r.reason


def test_workspace_box_and_missing_pose():
    cfg = SafetyConfig(workspace_min=[0.0, -0.5, 0.1], workspace_max=[0.6, 0.5, 0.8], max_linear_acceleration=100)
    f = SafetyFilter(cfg, dt=0.1)
    r = f.filter([0, 0, -0.02, 0, 0, 0, 1], np.array([0.3, 0.0, 0.105]))
    assert r.ok and np.isclose(r.command[2], -0.005, atol=1e-6) and "workspace" in r.reason
    # outside the box: may move back in, never further out
    r = f.filter([0, 0, -0.01, 0, 0, 0, 1], np.array([0.3, 0.0, 0.05]))
    assert r.ok and r.command[2] >= 0
    r = f.filter([0, 0, 0.02, 0, 0, 0, 1], np.array([0.3, 0.0, 0.05]))
    assert r.ok and r.command[2] > 0
    assert "no end-effector pose" in f.filter([0] * 6 + [1], None).reason
    assert SafetyFilter(SafetyConfig(require_ee_pose=False), 0.1).filter([0] * 6 + [1], None).ok


def test_gripper_rate_limit():
    f = SafetyFilter(SafetyConfig(max_gripper_step=0.2), dt=0.1)
    assert f.filter([0] * 6 + [1.0], P0).command[6] == 1.0
    assert np.isclose(f.filter([0] * 6 + [0.0], P0).command[6], 0.8)


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="workspace_min"):
        SafetyConfig(workspace_min=[1, 1, 1], workspace_max=[0, 0, 0])
    with pytest.raises(ValueError, match="max_step_translation"):
        SafetyConfig(max_step_translation=0)


def test_fuzzed_outputs_never_exceed_limits():
    cfg = SafetyConfig(workspace_min=[0.2, -0.3, 0.05], workspace_max=[0.7, 0.3, 0.6])
    f = SafetyFilter(cfg, dt=0.1)
    p = np.array([0.45, 0.0, 0.3])
    prev = np.zeros(6)
    accepted = 0
    for a in fuzz_actions(10_000):
        r = f.filter(a, p)
        if not r.ok:
            f.stopped()
            prev = np.zeros(6)
            continue
        accepted += 1
        assert f.violation(r.command, previous=None if "workspace" in r.notes else prev, ee_position=p) == ""
        prev = r.command[:6].astype(np.float64)
        p = p + prev[:3]
        assert np.all(p >= np.array(cfg.workspace_min) - 1e-6) and np.all(p <= np.array(cfg.workspace_max) + 1e-6)
    assert 3000 < accepted < 10_000  # both paths were exercised
