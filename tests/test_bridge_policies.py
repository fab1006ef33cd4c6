"""The bridge's `policy.*` config is a vla.policy spec: built by the registry, with the registry's errors."""

from __future__ import annotations

import numpy as np
import pytest

from robot_bridge.policies import PolicyConfig, TinyCNNPolicy, build_policy
from vla.core.types import Observation, Policy
from vla.policy import PolicySpecError, make_policy, registered_policies

OBS = Observation(images={"primary": np.full((32, 32, 3), 9, np.uint8)}, proprio=np.arange(4, dtype=np.float32),
                  instruction="push")


class Const(Policy):
    cameras = ()

    def __init__(self, x: float = 0.0):
        self.x = x

    def act(self, obs):
        return np.array([self.x, 0, 0, 0, 0, 0, 1], np.float32)


def test_the_bridge_registers_its_own_kinds_and_takes_vla_s():
    kinds = registered_policies()
    assert kinds["remote"].package == kinds["tiny_cnn"].package == "robot_bridge.policies"
    assert {kinds[k].package for k in ("vla", "random", "callable", "tiny_vla")} == {"vla.policy.builtins"}


def test_random_is_vla_s_uniform_policy_within_scale_and_seeded():
    cfg = PolicyConfig(kind="random", scale=0.02, seed=4)
    assert cfg.spec() == {"kind": "random", "scale": 0.02, "rot_scale": pytest.approx(0.1)}
    first, again = build_policy(cfg), build_policy(cfg)
    acts = np.stack([first.act(OBS) for _ in range(200)])
    np.testing.assert_array_equal(acts[:5], np.stack([again.act(OBS) for _ in range(5)]))  # seeded
    assert np.all(np.abs(acts[:, :3]) <= 0.02) and np.all(np.abs(acts[:, 3:6]) <= 0.1 + 1e-7)
    assert set(np.unique(acts[:, 6])) == {0.0, 1.0}


def test_each_kind_reads_only_its_fields_and_the_registry_names_a_typo():
    assert PolicyConfig(kind="vla", path="ckpt", unnorm_key="k", host="x").spec() == {
        "kind": "vla", "path": "ckpt", "unnorm_key": "k"}
    assert PolicyConfig(kind="remote", port=6000).spec() == {"kind": "remote", "host": "127.0.0.1", "port": 6000,
                                                             "timeout_s": 0.5}
    pol = build_policy(PolicyConfig(kind="tiny_cnn", kwargs={"proprio_dim": 4}, seed=1))
    assert isinstance(pol, TinyCNNPolicy) and pol.proprio_dim == 4 and pol.act(OBS).shape == (7,)
    with pytest.raises(PolicySpecError, match="did you mean 'proprio_dim'"):
        build_policy(PolicyConfig(kind="tiny_cnn", kwargs={"proprio_dm": 4}))
    with pytest.raises(ValueError, match="choose one of"):
        PolicyConfig(kind="expert")


def test_callable_builds_the_user_s_policy_with_its_kwargs():
    cfg = PolicyConfig(kind="callable", target="test_bridge_policies:Const", kwargs={"x": 0.01})
    np.testing.assert_allclose(build_policy(cfg).act(OBS), [0.01, 0, 0, 0, 0, 0, 1])
    _, pol = make_policy("callable:target=test_bridge_policies:Const")  # the text grammar of the other commands
    assert pol.act(OBS)[0] == 0.0
