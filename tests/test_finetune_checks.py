"""Fine-tuning data or an adapter that does not fit its base is refused before any step, naming the field and
the fix (vla/train/compat.py): action dimension, control rate, a colliding unnorm_key, an adapter on another base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_train import config, write_dataset


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two bases trained from scratch on robot_a (different seeds) and a LoRA adapter on the first."""
    from vla.train import run

    root = tmp_path_factory.mktemp("finetune_checks")
    data = {"robot_a": write_dataset(root / "rlds", "robot_a"),
            "robot_b": write_dataset(root / "rlds", "robot_b", episodes=6, action_scale=20.0),
            "cache": root / "stats_cache"}
    # robot_b's recordings written under the base's dataset name: same unnorm_key, other statistics
    data["robot_b_as_a"] = write_dataset(root / "rlds_b", "robot_a", episodes=6, action_scale=20.0)
    # robot_b's recordings as a LeRobot dataset at 5 Hz (its info.json fps is the control rate)
    from vla.data.lerobot.convert import rlds_to_lerobot

    data["robot_b_5hz"] = rlds_to_lerobot(data["robot_b"], root / "lerobot" / "robot_b_5hz", fps=5, video=False)[0]
    # and as our own RLDS (vla-collect / vla-convert write the rate beside the TFDS files)
    data["robot_b_rlds_5hz"] = write_dataset(root / "rlds", "robot_b_rlds_5hz", episodes=6, action_scale=20.0,
                                             control_hz=5.0)
    quick = {"save_every": 0, "val_every": 0}
    base = run(config(data, root / "base", steps=2, **quick))
    other = run({**config(data, root / "other", steps=2, **quick), "seed": 1})
    run({**config(data, root / "lora", dataset="robot_b", steps=1, mode="lora", lora={"rank": 4, "alpha": 8}, **quick),
         "init_from": str(base)})
    return {**data, "base": base, "other": other, "adapter": root / "lora" / "final_adapter", "root": root}


def _finetune(runs: dict, out: Path, base: Path, dataset: str = "robot_b", trainer: dict | None = None, **data_entry):
    from vla.train import run

    cfg = {**config(runs, out, dataset=dataset, steps=1, save_every=0, val_every=0, **(trainer or {})),
           "init_from": str(base)}
    cfg["data"]["datasets"] = [{"path": str(runs[dataset]), **data_entry}]
    return run(cfg)


def test_checkpoints_record_their_data_rates_and_adapters_their_base(runs):
    assert json.loads((runs["base"] / "control_hz.json").read_text()) == {"robot_a": 10.0}
    assert json.loads((runs["adapter"] / "control_hz.json").read_text()) == {"robot_b": 10.0}
    identity = json.loads((runs["adapter"] / "base_identity.json").read_text())
    assert identity["path"] == str(runs["base"].resolve()) and len(identity["fingerprint"]) == 64
    # the LoRA run's merged export carries the fine-tuning data's rates, not the base's
    assert json.loads((runs["root"] / "lora" / "final" / "control_hz.json").read_text()) == {"robot_b": 10.0}


def test_colliding_unnorm_key_is_refused_and_renaming_the_dataset_fixes_it(runs, tmp_path):
    from vla.train.compat import BaseMismatchError

    with pytest.raises(BaseMismatchError, match=r"dataset name 'robot_a' is already an unnorm_key of the base .*"
                                                r"Rename the dataset: data.datasets=\[\{path: <dir>, name: robot_a_<robot>"):
        _finetune(runs, tmp_path / "a", runs["base"], dataset="robot_b_as_a")
    final = _finetune(runs, tmp_path / "b", runs["base"], dataset="robot_b_as_a", name="robot_a_ur5e")
    assert sorted(json.loads((final / "config.json").read_text())["norm_stats"]) == ["robot_a_ur5e"]
    # the same dataset again (same statistics) is a continued fine-tune, not a collision
    _finetune(runs, tmp_path / "c", runs["base"], dataset="robot_a")


def test_other_control_rate_is_refused_unless_asked_for(runs, tmp_path):
    from vla.train.compat import BaseMismatchError

    with pytest.raises(BaseMismatchError, match=r"'robot_b_5hz' \(data.datasets\) was recorded at 5 Hz; the base .* "
                                                r"10 Hz data.*vla-convert rate_hz=10.*trainer.check_control_rate=false"):
        _finetune(runs, tmp_path / "a", runs["base"], dataset="robot_b_5hz")
    final = _finetune(runs, tmp_path / "b", runs["base"], dataset="robot_b_5hz", trainer={"check_control_rate": False})
    assert json.loads((final / "control_hz.json").read_text()) == {"robot_b_5hz": 5.0}
    # our own RLDS data carries its rate too (RLDSWriter control_hz -> control_hz.json -> spec_for_directory)
    with pytest.raises(BaseMismatchError, match=r"'robot_b_rlds_5hz' \(data.datasets\) was recorded at 5 Hz"):
        _finetune(runs, tmp_path / "c", runs["base"], dataset="robot_b_rlds_5hz")


def drop_gripper(steps: dict) -> dict:
    """A user's action transform that gets the action space wrong: 6-D actions (no gripper)."""
    steps["action"] = np.asarray(steps["action"])[:, :6]
    return steps


def test_other_action_dimension_is_refused(runs, tmp_path):
    """Our data layer already holds every dataset to the 7-D action (a wrong action transform fails while loading,
    naming the dataset and the shape); the base check backs it up for any data that gets past it."""
    from vla.core.statistics import ArrayStatistics, DatasetStatistics
    from vla.model.policy import load_checkpoint
    from vla.train.compat import BaseMismatchError, check_data_fits_base
    from vla.train.errors import DataError

    with pytest.raises(DataError, match=r"robot_b_5hz: standardized action must be \(T, 7\).*got \(\d+, 6\).*lerobot.action_transform"):
        _finetune(runs, tmp_path, runs["base"], dataset="robot_b_5hz", trainer={"check_control_rate": False},
                  lerobot={"action_transform": "test_finetune_checks:drop_gripper"})
    base_config = load_checkpoint(runs["base"])[0].config
    rng = np.random.default_rng(0)
    six_d = DatasetStatistics(ArrayStatistics.compute(rng.normal(size=(40, 6))), num_transitions=40, num_trajectories=4)
    with pytest.raises(BaseMismatchError, match=r"dataset 'so101' \(data.datasets\) has 6-D actions; the base .* predicts "
                                                r"7-D actions \(config.action_dim\)\. Convert the actions"):
        check_data_fits_base(runs["base"], base_config, {"so101": six_d}, {"so101": 30.0})


def test_adapter_on_another_base_is_refused_naming_both(runs, tmp_path):
    from vla.train.merge import MergeError, merge_adapter

    with pytest.raises(MergeError, match=rf"adapter .* was trained on the base '{runs['base'].resolve()}', not on "
                                         rf"'{runs['other'].resolve()}'.*pass base={runs['base'].resolve()}"):
        merge_adapter(runs["adapter"], tmp_path / "m", base_dir=runs["other"])
    assert not (tmp_path / "m" / "config.json").exists()
    own_finetune = runs["root"] / "lora" / "final"  # the base merged with this very adapter: not its base either
    with pytest.raises(MergeError, match=rf"not on '{own_finetune.resolve()}'"):
        merge_adapter(runs["adapter"], tmp_path / "m2", base_dir=own_finetune)
    moved = tmp_path / "moved_base"  # its own base merges, also from another place
    shutil.copytree(runs["base"], moved)
    out = merge_adapter(runs["adapter"], tmp_path / "ok", base_dir=moved)
    assert not (out / "base_identity.json").exists()  # a merged model is standalone


def test_resume_onto_another_base_is_refused(runs, tmp_path):
    """A LoRA run resumed with init_from changed to another base: its saved adapter does not fit."""
    from vla.train import run
    from vla.train.compat import BaseMismatchError

    cfg = {**config(runs, tmp_path, dataset="robot_b", steps=2, save_every=1, val_every=0, mode="lora",
                    lora={"rank": 4, "alpha": 8}), "init_from": str(runs["base"])}
    cfg["trainer"]["steps"] = 1
    run(cfg)
    cfg["trainer"]["steps"], cfg["init_from"] = 2, str(runs["other"])
    with pytest.raises(BaseMismatchError, match="was trained on the base"):
        run(cfg)


def test_adapter_loads_for_eval_on_its_base_only(runs):
    from vla.policy import make_policy
    from vla.train.compat import BaseMismatchError

    policy = make_policy(f"vla:path={runs['adapter']}")[1]  # the base it records
    assert policy.unnorm_key == "robot_b"
    with pytest.raises(BaseMismatchError, match=rf"was trained on the base '{runs['base'].resolve()}', not on "
                                                rf"'{runs['other'].resolve()}'"):
        make_policy(f"vla:path={runs['adapter']},base={runs['other']}")
