"""LIBERO demonstrations in the `libero_*_no_noops` layout: the no-op rule and the writer's LIBERO gripper polarity
(fast, no LIBERO), and the whole loop on real LIBERO (slow): the scripted expert's episodes collected in LIBERO's
venv, loaded with the registered `libero_spatial_no_noops` spec, a tiny VLA trained on them a few steps and
evaluated through `vla-eval suite=libero_spatial`.

The slow test needs `.venv-libero` (`make libero-venv`); it skips, saying why, where it could not be installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim_envs.libero.collect import is_noop, keep_mask
from sim_envs.libero.venv import unavailable_reason

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "image_size": 28,
    "dino": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "mlp_dim": 64},
    "siglip": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "mlp_dim": 64},
    "llm": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 128},
}


# ------------------------------------------------------------------------------------------------ fast
def test_noop_rule_is_the_regenerations():
    """OpenVLA's `is_noop`: no motion, and the gripper command equal to the last *kept* step's."""
    a = np.zeros((6, 7), np.float32)
    a[:, 6] = [-1, -1, 1, 1, 1, -1]
    a[1, 0] = 0.5  # moves
    a[4, 2] = 5e-5  # below the threshold
    assert is_noop(a[0]) and not is_noop(a[1])
    # 0: first step, no motion -> dropped; 1 moves; 2 changes the gripper; 3, 4 repeat it; 5 changes it back
    assert keep_mask(a).tolist() == [False, True, True, False, False, True]


def test_writer_stores_libero_gripper_polarity_and_the_spec_inverts_it(tmp_path):
    """`action_gripper="libero"` stores 1 - 2g (-1 open / +1 close) and the registered transform gives g back."""
    pytest.importorskip("tensorflow_datasets")
    from vla.core.episode import Episode, EpisodeMetadata
    from vla.data.oxe import get_dataset_spec
    from vla.data.rlds_reader import RLDSReader
    from vla.data.rlds_writer import RLDSWriter

    t = 4
    action = np.zeros((t, 7), np.float32)
    action[:, 0] = [0.1, 0.2, 0.3, 0.4]
    action[:, 6] = [1, 1, 0, 0]  # open, open, closed, closed
    ep = Episode(images={"primary": np.zeros((t, 16, 16, 3), np.uint8), "wrist": np.zeros((t, 16, 16, 3), np.uint8)},
                 state=np.ones((t, 8), np.float32), action=action, instruction="pick it",
                 metadata=EpisodeMetadata("e0", success=True), extra_state={"joint_state": np.zeros((t, 7))})
    with RLDSWriter(tmp_path, "libero_spatial_no_noops", image_size=(16, 16), action_gripper="libero",
                    extra_state={"joint_state": 7}) as w:
        w.write(ep)
    raw = next(iter(RLDSReader(tmp_path / "libero_spatial_no_noops" / "1.0.0").episodes()))
    assert raw["steps"]["action"][:, 6].tolist() == [-1, -1, 1, 1]
    assert raw["steps"]["observation"]["joint_state"].shape == (t, 7)
    std = get_dataset_spec("libero_spatial_no_noops").standardize(raw, images=False)
    np.testing.assert_array_equal(std["action"], action)
    assert std["proprio"].shape == (t, 9)


# ------------------------------------------------------------------------------------------------ slow
@pytest.fixture
def libero_available():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


def _upright(frame: np.ndarray) -> bool:
    """LIBERO's agentview upright: the grey back wall and the robot's base at the top, the light wooden table
    filling the bottom half (robosuite renders it the other way up)."""
    f = frame.astype(np.float64).mean(-1)
    h = f.shape[0]
    return f[int(0.75 * h):].mean() > f[: h // 4].mean() + 20


@pytest.mark.slow
def test_expert_demonstrations_train_and_evaluate_a_tiny_vla(libero_available, tmp_path):
    from vla.data.config import DataConfig, DatasetEntry
    from vla.data.loader import RLDSLoader
    from vla.data.oxe import get_dataset_spec
    from vla.data.rlds_reader import RLDSReader

    # 1. Two expert episodes of libero_spatial task 0 through the CLI (workers in LIBERO's venv).
    r = subprocess.run([sys.executable, "-m", "sim_envs.cli.collect", "suite=libero_spatial", "libero.tasks=[0]",
                        "libero.episodes=2", "libero.videos_per_task=0", f"output_dir={tmp_path}/data",
                        f"hydra.run.dir={tmp_path}/collect"], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    dataset = tmp_path / "data" / "libero_spatial_no_noops" / "1.0.0"
    summary = json.loads((dataset.parent / "collect_summary.json").read_text())
    assert summary["attempted"] == 2 and summary["written"] == 2, summary  # the expert solves states 0 and 1
    assert summary["noop_steps_removed"] >= 0 and summary["failed_kept"] == 0

    # 2. The layout of OpenVLA's regenerated sets, read raw and through the registered spec.
    spec = get_dataset_spec("libero_spatial_no_noops")
    raws = list(RLDSReader(dataset).episodes())
    assert len(raws) == 2
    for raw in raws:
        steps = raw["steps"]
        assert set(steps["observation"]) == {"image", "wrist_image", "state", "joint_state"}
        assert steps["observation"]["state"].shape[1] == 8 and steps["action"].shape[1] == 7
        g = steps["action"][:, 6]
        assert set(np.unique(g)) == {-1.0, 1.0} and g[0] == -1.0 and g[-1] == -1.0  # opens, closes, releases
        assert np.all(np.abs(steps["action"][:, :6]) <= 1.0)
        assert keep_mask(steps["action"]).all()  # no no-op step survived
        std = spec.standardize(raw, images=False)
        assert std["instruction"] == "pick up the black bowl between the plate and the ramekin and place it on the plate"
        np.testing.assert_array_equal(std["action"][:, 6], (1 - g) / 2)  # our contract: 1 = open
        state = steps["observation"]["state"]
        assert 1.0 < state[0, 2] < 1.3 and abs(abs(state[0, 3]) - np.pi) < 0.3  # eef z, axis-angle near pi
    cfg = DataConfig(datasets=[DatasetEntry(path=str(dataset))], image_size=64, cameras=["primary", "wrist"],
                     num_workers=0, statistics_cache=str(tmp_path / "stats"))
    samples = list(RLDSLoader(cfg, train=False))
    assert len(samples) == summary["steps_written"] and samples[0]["dataset"] == "libero_spatial_no_noops"
    upright = [_upright(s["images"]["primary"]) for s in samples[::10]]
    assert all(upright), f"frames not upright at {[i * 10 for i, u in enumerate(upright) if not u]}"

    # 3. A tiny VLA trained a few steps on them.
    from vla.train import run

    out = tmp_path / "train"
    final = run({"model": TINY, "output_dir": str(out),
                 "trainer": {"steps": 4, "batch_size": 4, "save_every": 4, "val_every": 0, "log_every": 1,
                             "progress": False, "num_threads": 1},
                 "data": {"datasets": [{"path": str(dataset)}], "num_workers": 0, "shuffle_buffer": 40,
                          "chunk_size": 4, "statistics_cache": str(tmp_path / "stats"),
                          "image_augmentation": False}})
    assert (final / "config.json").is_file()
    assert "libero_spatial_no_noops" in json.loads((final / "config.json").read_text())["norm_stats"]

    # 4. ... and evaluated on LIBERO for one short episode through vla-eval.
    r = subprocess.run([sys.executable, "-m", "sim_envs.cli.eval", "suite=libero_spatial", f"policy={final}",
                        "libero.tasks=[0]", "libero.episodes=1", "libero.max_steps=5", "libero.videos_per_task=0",
                        f"hydra.run.dir={tmp_path}/eval"], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(next((tmp_path / "eval").glob("*/libero.json")).read_text())
    suite = rep["suites"]["libero_spatial"]
    assert suite["n_episodes"] == 1 and suite["n_errors"] == 0 and suite["avg_steps"] == 5
    conv = rep["conventions"]["libero_spatial"]
    assert conv["unnorm_key"] == "libero_spatial_no_noops" and conv["preset"] == "openvla" and conv["rotate_180"]
