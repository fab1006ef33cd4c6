"""The shared contracts: validation errors name the field, statistics round-trip OpenVLA's layout."""

import json
import subprocess
import sys

import numpy as np
import pytest

from vla import ContractError, DatasetStatistics, Observation, validate_action
from vla.core.episode import Episode, EpisodeMetadata
from vla.core.statistics import ArrayStatistics, select_statistics


def _obs(**kw):
    base = dict(images={"primary": np.zeros((8, 8, 3), np.uint8)}, proprio=np.zeros(3), instruction="pick")
    base.update(kw)
    return Observation(**base)


def test_observation_accepts_valid_and_names_bad_fields():
    o = _obs()
    assert o.proprio.dtype == np.float32
    with pytest.raises(ContractError, match="missing camera 'primary'"):
        _obs(images={"wrist": np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(ContractError, match=r"images\['primary'\] must be uint8"):
        _obs(images={"primary": np.zeros((8, 8, 3), np.float32)})
    with pytest.raises(ContractError, match="proprio has non-finite"):
        _obs(proprio=np.array([0.0, np.nan]))
    with pytest.raises(ContractError, match="missing camera 'wrist'"):
        o.validate(cameras=("primary", "wrist"))
    with pytest.raises(ContractError, match="expected \\(16, 16\\)"):
        o.validate(image_size=(16, 16))


def test_validate_action_shapes_nan_and_gripper():
    assert validate_action(np.zeros(7)).shape == (7,)
    assert validate_action(np.zeros((4, 7))).shape == (4, 7)
    with pytest.raises(ContractError, match="shape \\(6,\\)"):
        validate_action(np.zeros(6))
    with pytest.raises(ContractError, match="non-finite"):
        validate_action([0, 0, np.nan, 0, 0, 0, 1])
    with pytest.raises(ContractError, match="gripper must be absolute"):
        validate_action([0, 0, 0, 0, 0, 0, -1])
    with pytest.raises(ContractError, match="expected \\(7,\\)"):
        validate_action(np.zeros((2, 7)), allow_chunk=False)


def test_statistics_normalize_roundtrip_and_openvla_layout(shared_dir):
    cfg = json.loads((shared_dir / "fixtures/openvla_reference/tiny_openvla_a/config.json").read_text())
    stats = {k: DatasetStatistics.from_dict(v) for k, v in cfg["norm_stats"].items()}
    s = select_statistics(stats, "bridge_orig")
    assert s.num_trajectories == 60064
    # Serialization is the OpenVLA layout, key for key.
    assert s.to_dict()["action"].keys() == cfg["norm_stats"]["bridge_orig"]["action"].keys()
    x = np.array([0.01, -0.01, 0.02, 0.0, 0.0, 0.01, 1.0], np.float32)
    y = s.action.normalize(x)
    assert y[6] == 1.0 and np.all(np.abs(y) <= 1)
    np.testing.assert_allclose(s.action.unnormalize(y), x, atol=1e-6)
    with pytest.raises(KeyError, match="choose one of \\['bridge_orig', 'my_robot'\\]"):
        select_statistics(stats, "bridge")
    with pytest.raises(KeyError, match="pass unnorm_key"):
        select_statistics(stats, None)


def test_constant_dims_normalize_to_zero():
    v = np.stack([np.linspace(-1, 1, 100), np.full(100, 3.0)], 1)
    st = ArrayStatistics.compute(v)
    y = st.normalize(v)
    assert np.all(y[:, 1] == 0) and y[:, 0].min() == -1 and y[:, 0].max() == 1


def test_episode_steps_flags_and_metadata():
    t = 5
    ep = Episode(
        images={"primary": np.zeros((t, 4, 4, 3), np.uint8)},
        state=np.zeros((t, 2)),
        action=np.tile([0, 0, 0, 0, 0, 0, 1.0], (t, 1)),
        instruction="lift",
        metadata=EpisodeMetadata("e0", success=True, seed=3, randomization={"friction": 0.9}),
    )
    steps = ep.steps()
    assert steps[0]["is_first"] and steps[-1]["is_last"] and steps[-1]["is_terminal"]
    assert ep.reward.tolist() == [0, 0, 0, 0, 1]
    md = EpisodeMetadata.from_features(ep.metadata.to_features())
    assert md == ep.metadata
    with pytest.raises(ContractError, match="Episode.action"):
        Episode(images=ep.images, state=ep.state, action=np.full((t, 7), np.nan), instruction="", metadata=ep.metadata)


def test_import_vla_is_light_and_one_directional():
    """`import vla` pulls in no heavy or optional stack, and vla never imports the other packages."""
    code = (
        "import sys, vla, vla.core.episode;"
        "bad=[m for m in ('torch','tensorflow','mujoco','rclpy','cyclonedds','sim_envs','world_model','robot_bridge') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_package_imports_a_sibling():
    """sim_envs, world_model and robot_bridge may import vla, never each other; vla imports none of them."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    allowed = {"vla": set(), "sim_envs": {"vla"}, "world_model": {"vla"}, "robot_bridge": {"vla"}}
    pkgs = set(allowed)
    offenders = []
    for pkg, ok in allowed.items():
        for f in (root / pkg).rglob("*.py"):
            for line in f.read_text().splitlines():
                m = re.match(r"\s*(?:from|import)\s+([a-z_]+)", line)
                if m and m.group(1) in pkgs and m.group(1) != pkg and m.group(1) not in ok:
                    offenders.append(f"{f.relative_to(root)}: {line.strip()}")
    assert not offenders, offenders
