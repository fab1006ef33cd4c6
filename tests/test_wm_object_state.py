"""Issue 22's judge path (the env's own `object_state` is tested with the rendering tests, test_sim_envs.py):
`vla-collect` records the objects' state (and lets a policy drive), the world model reads it as state features, judges success from the predicted state alone
(`success_head=lowdim`), and imagines a batch of initial states at once exactly as it imagines each alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from vla.core.statistics import ArrayStatistics, DatasetStatistics  # noqa: E402
from vla.core.types import ContractError, Observation, Policy  # noqa: E402
from world_model.config import WorldModelConfig  # noqa: E402
from world_model.model import WorldModel  # noqa: E402

TASK = "vla_sim/LiftCube-v0"
MICRO = dict(image_size=32, enc_channels=[8, 16], latent_channels=4, dec_channels=16, patch=2, history=2, dim=32,
             depth=1, heads=4)


def _fresh(fn, *args):
    """TensorFlow (the RLDS writer) and MuJoCo rendering must not share a process (see tests/test_collect.py)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _collect_policy_driven(root: str) -> dict:
    from sim_envs.collect import CollectSettings, collect
    from sim_envs.config import SimConfig
    from vla.data.rlds_reader import RLDSReader

    sim = SimConfig(image_size=32, cameras=["primary"], max_episode_steps=12)
    settings = CollectSettings(tasks=[TASK], sim=sim, dr="low", episodes=2, keep_failed=True, object_state=True,
                               policy="random")
    summary = collect(settings, root, "driven", progress=False)
    eps = list(RLDSReader(summary.dataset_dir).episodes(split="train", decode_images=False))
    return {"object_state": [np.asarray(e["steps"]["observation"]["object_state"]) for e in eps],
            "action": [np.asarray(e["steps"]["action"]) for e in eps],
            "executed": [np.asarray(e["steps"]["executed_action"]) for e in eps], "dir": summary.dataset_dir}


def test_collect_records_object_state_and_lets_a_policy_drive(tmp_path):
    out = _fresh(_collect_policy_driven, str(tmp_path))
    for obj, act, exe in zip(out["object_state"], out["action"], out["executed"]):
        assert obj.shape == (len(act), 3) and np.all(np.isfinite(obj))
        # The random policy drove (it rotates about roll/pitch; the expert never does), the expert labelled.
        assert np.all(np.abs(exe[:, 3:5]) > 0) and np.all(act[:, 3:5] == 0)
    # The world model reads the feature into its state; a model asking for a feature the data lacks says how to
    # collect it.
    from world_model.data import DataMismatchError, read_rlds

    eps = read_rlds(out["dir"], ["primary"], 32, state_features=["object_state"])
    assert eps[0].feature_dims == {"object_state": 3} and eps[0].proprio.shape[1] == 8 + 3
    np.testing.assert_allclose(eps[0].proprio[:, 8:], out["object_state"][0])
    with pytest.raises(DataMismatchError, match="vla-collect .*object_state"):
        read_rlds(out["dir"], ["primary"], 32, state_features=["joint_state"])


def _model(success_head: str = "lowdim") -> WorldModel:
    rng = np.random.default_rng(0)
    mask = np.ones(7, bool)
    mask[6] = False
    stats = DatasetStatistics(action=ArrayStatistics.compute(rng.uniform(-0.05, 0.05, (50, 7)), mask=mask),
                              proprio=ArrayStatistics.compute(rng.uniform(-1, 1, (50, 5))), num_transitions=50,
                              num_trajectories=5)
    torch.manual_seed(0)
    cfg = WorldModelConfig(**MICRO, dynamics="conv", success_head=success_head, state_features=["object_state"])
    return WorldModel(cfg, proprio_dim=5, statistics=stats, source_image_size=(48, 48),
                      feature_dims={"object_state": 3}).eval()


def test_lowdim_success_head_reads_the_predicted_state_alone():
    m = _model()
    head = m.dynamics.state_success
    z = torch.randn(2, m.dynamics.num_tokens if hasattr(m.dynamics, "num_tokens") else 8, m.config.token_dim)
    p = torch.randn(2, 5)
    a = head(z, p)
    b = head(torch.randn_like(z) * 10, p)  # other latents, same state: same verdict
    torch.testing.assert_close(a, b)
    assert m.robot_proprio_dim == 2 and m.feature_slice("object_state") == slice(2, 5)
    with pytest.raises(ValueError, match="state_features=\\[object_state\\]"):
        WorldModelConfig(**MICRO, success_head="lowdim")


def test_objects_success_head_reads_the_objects_state_and_not_the_robot():
    m = _model("objects")
    head = m.dynamics.state_success
    z, p = torch.randn(2, 8, m.config.token_dim), torch.randn(2, 5)
    other_robot = p.clone()
    other_robot[:, :2] = torch.randn(2, 2) * 10  # the robot's proprio moves, the objects stay: same verdict
    torch.testing.assert_close(head(z, p), head(z, other_robot))
    other_objects = p.clone()
    other_objects[:, 2:] += 1.0
    assert not torch.allclose(head(z, p), head(z, other_objects))
    with pytest.raises(ValueError, match="success_head=objects judges success"):
        WorldModelConfig(**MICRO, success_head="objects")


class _Servo(Policy):
    """Acts on what it sees (mean image brightness) and its proprio: a batch must give each row its own action."""

    def act(self, observation: Observation) -> np.ndarray:
        level = float(np.mean(observation.images["primary"])) / 255.0
        a = np.zeros(7, np.float32)
        a[0], a[1], a[2], a[6] = 0.04 * level - 0.02, 0.01 * float(observation.proprio[0]), -0.01, 1.0
        return a


def _observations(n: int) -> list[Observation]:
    rng = np.random.default_rng(1)
    return [Observation({c: rng.integers(0, 255, (48, 48, 3), np.uint8) for c in ("primary", "wrist")},
                        rng.uniform(-1, 1, 2).astype(np.float32), "lift the cube") for _ in range(n)]


def test_batched_imagination_equals_one_state_at_a_time():
    from world_model.imagine import imagine, imagine_batch

    m = _model()
    obs = _observations(3)
    feats = [{"object_state": np.array([0.5, 0.0, 0.02 * (i + 1)], np.float32)} for i in range(3)]
    batch = imagine_batch(m, _Servo(), obs, 5, features=feats, fast=False)
    for o, f, b in zip(obs, feats, batch):
        one = imagine(m, _Servo(), o, o.instruction, 5, stop_on_success=False, fast=False, features=f)
        np.testing.assert_allclose(b.actions, one.actions, atol=1e-5)
        np.testing.assert_allclose(b.proprio, one.proprio, atol=1e-4)
        np.testing.assert_allclose(b.success_prob, one.success_prob, atol=1e-5)
        assert b.frames["wrist"].shape == one.frames["wrist"].shape == (6, 48, 48, 3)
        # The policy saw the robot's proprio only; the trajectory carries the predicted object state too.
        assert b.proprio.shape == (6, 5)
    with pytest.raises(ContractError, match="object_state"):
        imagine_batch(m, _Servo(), obs[:1], 2)  # a model with state features needs them to start
