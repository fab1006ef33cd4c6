"""The policy runtime in `vla`: one spec grammar and registry, one action queue, one gym converter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla.core.gym import observation_from_gym
from vla.core.intervals import wilson_interval
from vla.core.types import ContractError, Observation, Policy
from vla.policy import ActionQueue, PolicyContext, PolicySpecError, make_policy, parse_policy_spec, policy_source
from vla.policy.baselines import RandomPolicy
from vla.policy.registry import register_policy
from vla.policy.wrappers import BlankImagesPolicy, FixedInstructionPolicy, NoisyPolicy


def _obs(value: int = 100, instruction: str = "lift the cube") -> Observation:
    return Observation({"primary": np.full((8, 8, 3), value, np.uint8)}, np.zeros(3, np.float32), instruction)


class _Recorder(Policy):
    """Returns a chunk whose first value is the mean pixel it saw (to check what reached it)."""

    chunk_size = 3

    def act(self, observation: Observation) -> np.ndarray:
        a = np.zeros((3, 7), np.float32)
        a[:, 0] = observation.images["primary"].mean()
        a[:, 6] = 1.0
        a[:, 1] = np.arange(3)
        return a


# ------------------------------------------------------------------------------------------------ grammar
def test_the_grammar_parses_strings_mappings_and_the_directory_shorthand(tmp_path):
    s = parse_policy_spec("vla:path=outputs/a,unnorm_key=k;noise=0.02")
    assert (s.kind, dict(s.options)) == ("vla", {"path": "outputs/a", "unnorm_key": "k", "noise": "0.02"})
    assert s.name == "vla:path=outputs/a,unnorm_key=k;noise=0.02"
    assert parse_policy_spec("random:scale=0.1,name=chance").name == "chance"
    m = parse_policy_spec({"kind": "random", "scale": 0.1, "unused": None})
    assert (m.kind, dict(m.options), str(m)) == ("random", {"scale": 0.1}, "random:scale=0.1")
    d = parse_policy_spec(str(tmp_path))
    assert (d.kind, d.options["path"], d.name) == ("vla", str(tmp_path), str(tmp_path))
    with pytest.raises(PolicySpecError, match="expected key=value, got 'scale'"):
        parse_policy_spec("random:scale")
    with pytest.raises(PolicySpecError, match="has no 'kind'"):
        parse_policy_spec({"path": "x"})


def test_unknown_kinds_and_options_name_the_closest_valid_one():
    with pytest.raises(PolicySpecError, match=r"unknown kind 'randm' \(did you mean 'random'\?\).*'noop'"):
        make_policy("randm")
    with pytest.raises(PolicySpecError, match=r"no option sclae \(did you mean 'scale'\?\)"):
        make_policy("random:sclae=0.1")
    with pytest.raises(PolicySpecError, match="noise='abc' must be a number"):
        make_policy("random:scale=0.1,noise=abc")
    with pytest.raises(PolicySpecError, match="random needs bounds"):
        make_policy("random")
    with pytest.raises(PolicySpecError, match="kind .vla. needs path="):
        make_policy("vla")
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        make_policy("vla:path=/nonexistent/ckpt")


def test_a_kind_has_one_owner():
    @register_policy("test_runtime_recorder", summary="test")
    def _build(opts, ctx):
        return _Recorder()

    with pytest.raises(ValueError, match="registered by .* already"):
        register_policy("random")(lambda opts, ctx: _Recorder())
    name, pol = make_policy("test_runtime_recorder:name=rec")
    assert name == "rec" and isinstance(pol, _Recorder)


def test_random_draws_within_the_bounds_it_is_given_and_repeats_per_episode():
    low, high = -np.arange(1, 7) * 0.01, np.arange(1, 7) * 0.01
    _, source = policy_source("random", PolicyContext(seed=3, action_bounds=lambda: (low, high)))
    a, b = source(), source()  # one instance per parallel env, each with its own seed
    assert isinstance(a, RandomPolicy) and a._seed == 3 and b._seed == 4
    a.reset("x")
    first = np.stack([a.act(_obs()) for _ in range(50)])
    assert np.all(first[:, :6] >= low) and np.all(first[:, :6] <= high) and set(first[:, 6]) == {0.0, 1.0}
    a.reset("x")
    np.testing.assert_array_equal(first, np.stack([a.act(_obs()) for _ in range(50)]))
    _, sym = make_policy("random:scale=0.05")
    assert np.all(sym.act(_obs())[3:6] == 0.0)


def test_common_options_wrap_any_kind():
    @register_policy("test_runtime_chunker", summary="test")
    def _build(opts, ctx):
        return _Recorder()

    _, noisy = make_policy("test_runtime_chunker:noise=0.01,seed=5")
    assert isinstance(noisy, NoisyPolicy) and noisy.chunk_size == 3
    noisy.reset("x")
    first = noisy.act(_obs())
    assert first.shape == (3, 7) and not np.allclose(first[:, :3], _Recorder().act(_obs())[:, :3])
    noisy.reset("x")
    np.testing.assert_array_equal(first, noisy.act_batch([_obs()])[0])  # reseeded: the same noise again
    _, blank = make_policy("test_runtime_chunker:blank_images=1")
    assert isinstance(blank, BlankImagesPolicy) and blank.act(_obs(200))[0, 0] == 0.0
    _, both = make_policy({"kind": "test_runtime_chunker", "blank_images": True, "noise": 0.0})
    assert isinstance(both, BlankImagesPolicy)

    seen = []

    class Reader(_Recorder):
        def reset(self, instruction):
            seen.append(instruction)

        def act(self, observation):
            seen.append(observation.instruction)
            return super().act(observation)

    @register_policy("test_runtime_reader", summary="test")
    def _reader(opts, ctx):
        return Reader()

    _, blind = make_policy("test_runtime_reader:instruction=perform the task")
    assert isinstance(blind, FixedInstructionPolicy)
    blind.reset("lift the red cube")
    blind.act(_obs(instruction="lift the blue cube"))
    assert seen == ["perform the task", "perform the task"]


# ------------------------------------------------------------------------------------------------- queue
def test_the_queue_executes_the_first_steps_of_each_chunk_and_then_asks_again():
    calls = []

    class Counting(_Recorder):
        def act(self, observation):
            calls.append(1)
            return super().act(observation)

    q = ActionQueue(execute_steps=2)
    pol = Counting()
    steps = [q.step(pol, _obs()) for _ in range(5)]
    assert len(calls) == 3 and [s[1] for s in steps] == [0, 1, 0, 1, 0]
    assert len(q) == 1
    q.reset()
    assert q.empty
    whole = ActionQueue()
    assert whole.push(pol.act(_obs())) == 3 and whole.pop().shape == (7,)
    with pytest.raises(IndexError, match="push the policy's next chunk"):
        ActionQueue().pop()
    with pytest.raises(ValueError, match="execute at least 1"):
        ActionQueue(execute_steps=0)


def test_the_queue_refuses_invalid_actions_and_keeps_what_it_had():
    q = ActionQueue()
    q.push(np.r_[np.zeros(6), 1.0])
    bad = np.r_[np.zeros(6), 1.0]
    bad[0] = np.nan
    with pytest.raises(ContractError, match="non-finite"):
        q.push(bad)
    with pytest.raises(ContractError, match=r"shape \(6,\)"):
        q.push(np.zeros(6))
    assert len(q) == 1


# ------------------------------------------------------------------------------------ gym observation
def test_one_converter_from_the_gym_layout():
    obs = {"primary": np.zeros((4, 4, 3), np.uint8), "wrist": np.ones((4, 4, 3), np.uint8),
           "proprio": np.arange(3, dtype=np.float64)}
    o = observation_from_gym(obs, {"instruction": "push the cube"}, timestamp=1.5)
    assert sorted(o.images) == ["primary", "wrist"] and o.proprio.dtype == np.float32
    assert (o.instruction, o.timestamp) == ("push the cube", 1.5)
    only = observation_from_gym(obs, {}, cameras=("primary",), instruction="reset instruction")
    assert list(only.images) == ["primary"] and only.instruction == "reset instruction"
    with pytest.raises(ContractError, match=r"no camera \['side'\]; it has \['primary', 'wrist'\]"):
        observation_from_gym(obs, {}, cameras=("side",))
    with pytest.raises(ContractError, match="must be uint8"):
        observation_from_gym({"primary": np.zeros((4, 4, 3), np.float32)}, {})
    assert observation_from_gym({"primary": obs["primary"]}, None).proprio.shape == (0,)


# ------------------------------------------------------------------------------------ shared helpers
@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (17, 40), (1, 1)])
def test_the_wilson_interval_is_the_closed_form(k, n):
    z = 1.959963984540054
    p = k / n
    d = 1 + z * z / n
    c, h = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(max(0.0, c - h), abs=1e-9) and hi == pytest.approx(min(1.0, c + h), abs=1e-9)
    assert (k > 0 or lo == 0.0) and (k < n or hi == 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        wilson_interval(5, 3)


def test_one_schedule_for_every_trainer():
    from vla.train.optim import schedule_factor

    assert schedule_factor(0, 100, warmup_steps=10) == pytest.approx(0.1)
    assert schedule_factor(10, 110, warmup_steps=10) == pytest.approx(1.0)
    assert schedule_factor(60, 110, warmup_steps=10) == pytest.approx(0.5)
    assert schedule_factor(110, 110, warmup_steps=10, min_ratio=0.1) == pytest.approx(0.1)
    assert schedule_factor(50, 100, shape="linear") == pytest.approx(0.5)
    assert schedule_factor(99, 100, shape="constant") == 1.0
    with pytest.raises(ValueError, match="choose cosine, linear or constant"):
        schedule_factor(1, 10, shape="step")


def test_every_command_names_the_closest_valid_key():
    from robot_bridge.cli.bridge import register_configs as register_bridge
    from world_model.config import register_configs as register_world_model
    from vla.cli.hints import closest_key_hint
    from vla.train.config import register_configs as register_train

    register_bridge()  # what each command's main() does before hydra composes
    register_train()
    register_world_model()

    text = closest_key_hint("vla-bridge", "bridge", ["bridge.node.rat_hz=5", "policy.kind=random", "+x=1"])
    assert "'bridge.node.rat_hz' (did you mean 'bridge.node.rate_hz'?)" in text and "policy.kind" not in text
    assert closest_key_hint("wm-viz", "wm_viz", ["checkpoint=x", "bridge.node.rate_hz=1"]) == (
        "Hint: wm-viz has no key 'bridge.node.rate_hz'. Print every key with `wm-viz --cfg job`.")
    assert "did you mean 'trainer.steps'" in closest_key_hint("vla-train", "train", ["traner.steps=3"])
