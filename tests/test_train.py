"""vla-train in one process: a real tiny VLA on real RLDS data (RLDSWriter in a tmp dir).

Covers: checkpoints (atomic, keep last N, what they hold), validation on held-out episodes, TensorBoard logs,
a full disk while saving (OSError injected at os.fsync), a NaN loss, a new robot's statistics in the saved
policy, LoRA (+ merge at the end), projector-only training, and the bad-input errors.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SMALL = {
    "image_size": 28,
    "dino": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "mlp_dim": 64},
    "siglip": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "mlp_dim": 64},
    "llm": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 128},
}


def write_dataset(root: Path, name: str, *, episodes: int = 10, steps: int = 8, action_scale: float = 1.0,
                  control_hz: float | None = None) -> Path:
    from vla.data.rlds_writer import RLDSWriter
    from vla.data.synthetic import make_episode

    with RLDSWriter(root, name, cameras=("primary",), image_size=(32, 32), state_dim=8, episodes_per_shard=4,
                    control_hz=control_hz) as w:
        for i in range(episodes):
            ep = make_episode(i, num_steps=steps, image_size=(32, 32), cameras=("primary",), seed=len(name))
            ep.action[:, :6] *= action_scale
            w.write(ep)
    return root / name / "1.0.0"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rlds")
    return {"robot_a": write_dataset(root, "robot_a"),
            "robot_b": write_dataset(root, "robot_b", episodes=6, action_scale=20.0),
            "cache": root / "stats_cache"}


def config(data: dict, out: Path, dataset: str = "robot_a", **trainer) -> dict:
    t = {"steps": 4, "batch_size": 4, "save_every": 2, "val_every": 2, "val_batches": 2, "log_every": 1,
         "progress": False, "num_threads": 1, **trainer}
    return {"model": SMALL, "output_dir": str(out), "trainer": t,
            "data": {"datasets": [{"path": str(data[dataset])}], "num_workers": 0, "shuffle_buffer": 40,
                     "chunk_size": 4, "statistics_cache": str(data["cache"]), "image_augmentation": False}}


@pytest.fixture(scope="module")
def base_run(data, tmp_path_factory) -> Path:
    """A 4-step run from scratch on robot_a (checkpoints at 2 and 4, keep_last 1)."""
    from vla.train import run

    out = tmp_path_factory.mktemp("base_run")
    final = run(config(data, out, keep_last=1))
    assert final == out / "final"
    return out


def _digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def test_run_writes_resumable_checkpoints_logs_and_a_standalone_policy(base_run):
    from vla.model.policy import VLAPolicy
    from vla.train.checkpoint import list_checkpoints, load_trainer_state

    ckpts = list_checkpoints(base_run / "checkpoints")
    assert [s for s, _ in ckpts] == [4]  # keep_last=1 pruned step 2
    ck = ckpts[0][1]
    assert {"model", "trainer_state.pt", "rank_00000.pt", "config.yaml", "dataset_statistics.json"} <= {p.name for p in ck.iterdir()}
    state = load_trainer_state(ck)
    assert state["step"] == 4 and state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 4
    rank = torch.load(ck / "rank_00000.pt", weights_only=False)
    assert {"python", "numpy", "torch"} <= set(rank["rng"]) and rank["loader"]["split"] == "train[:90%]"
    assert not list((base_run / "checkpoints").glob(".tmp-*"))

    history = json.loads((base_run / "history.json").read_text())
    assert any("val_loss" in h for h in history) and any("action_accuracy" in h for h in history)
    assert list((base_run / "logs").glob("events.out.tfevents.*"))

    policy = VLAPolicy.from_pretrained(base_run / "final")
    assert policy.unnorm_key == "robot_a"
    from vla.core.types import Observation

    a = policy.act(Observation(images={"primary": np.zeros((32, 32, 3), np.uint8)}, instruction="pick up the red cube"))
    assert a.shape == (7,) and np.all(np.isfinite(a))


def test_full_disk_while_saving_keeps_the_previous_checkpoint(base_run, data, monkeypatch, tmp_path):
    import shutil

    from vla.train import run
    from vla.train.checkpoint import CheckpointError, list_checkpoints

    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    before = _digest(out / "checkpoints" / "step_000004")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)  # the system edge where a full disk surfaces
    with pytest.raises(CheckpointError, match=r"step_000006.*No space left.*step_000004 is intact"):
        run(config(data, out, steps=6, keep_last=1))  # resumes at 4, fails to save 6
    monkeypatch.undo()
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [4]
    assert _digest(out / "checkpoints" / "step_000004") == before
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_nan_loss_stops_with_the_step_and_a_checkpoint(data, tmp_path):
    from vla.train import run
    from vla.train.errors import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match=r"at step (\d+).*nan_step_") as info:
        run(config(data, tmp_path, steps=20, lr=1e36, schedule="constant", max_grad_norm=None, save_every=0))
    step = int(info.value.args[0].split("at step ")[1].split(";")[0])
    assert (tmp_path / "checkpoints" / f"nan_step_{step:06d}" / "model" / "config.json").is_file()


def test_finetune_on_a_new_robot_saves_its_statistics(base_run, data, tmp_path):
    from vla.data.oxe import spec_for_directory
    from vla.data.statistics import get_dataset_statistics
    from vla.model.policy import VLAPolicy
    from vla.core.types import Observation
    from vla.train import run

    final = run({**config(data, tmp_path, dataset="robot_b", steps=2), "init_from": str(base_run / "final")})
    cfg = json.loads((final / "config.json").read_text())
    assert sorted(cfg["norm_stats"]) == ["robot_b"]
    # the saved run config names the model that was trained (the base's), not the unused default preset
    import yaml

    (ckpt,) = sorted((tmp_path / "checkpoints").iterdir())[-1:]
    recorded = yaml.safe_load((ckpt / "config.yaml").read_text())["model"]
    assert Path(recorded["from"]).resolve() == (base_run / "final").resolve()
    assert recorded["parameters"] > 0 and "dino" not in recorded
    policy = VLAPolicy.from_pretrained(final)  # no unnorm_key needed: the checkpoint knows its robot
    want = get_dataset_statistics(data["robot_b"], spec_for_directory(data["robot_b"]), cache_dir=data["cache"])
    np.testing.assert_allclose(policy.statistics.action.q99, want.action.q99)
    obs = Observation(images={"primary": np.full((32, 32, 3), 90, np.uint8)}, instruction="open the drawer")
    batch = policy.prepare([obs])
    norm = policy.model.predict_normalized(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    expected = want.action.unnormalize(np.asarray(norm)[0, 0])
    expected[6] = np.clip(expected[6], 0, 1)
    np.testing.assert_allclose(policy.act(obs), expected, rtol=1e-5, atol=1e-6)
    # robot_b's actions are 20x robot_a's: un-normalizing with the wrong key would be far off
    a_stats = get_dataset_statistics(data["robot_a"], spec_for_directory(data["robot_a"]), cache_dir=data["cache"])
    assert np.abs(want.action.q99[:6] - a_stats.action.q99[:6]).max() > 5 * np.abs(a_stats.action.q99[:6]).max()


def test_lora_finetune_trains_adapters_only_and_exports_merged(base_run, data, tmp_path):
    from peft import PeftModel

    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.processing_vla import VLAProcessor
    from vla.train import run

    base_dir = base_run / "final"
    final = run({**config(data, tmp_path, steps=2, mode="lora", lr=5e-3, lora={"rank": 4, "alpha": 8}),
                 "init_from": str(base_dir)})
    adapter = tmp_path / "final_adapter"
    acfg = json.loads((adapter / "adapter_config.json").read_text())
    assert acfg["r"] == 4 and acfg["lora_alpha"] == 8 and acfg["init_lora_weights"] == "gaussian"
    assert Path(acfg["base_model_name_or_path"]) == base_dir.resolve()
    processor = VLAProcessor.from_pretrained(final)
    rng = np.random.default_rng(0)
    batch = processor([rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)], ["open the drawer"])
    with torch.no_grad():
        peft_logits = PeftModel.from_pretrained(VLAForActionPrediction.from_pretrained(str(base_dir)), str(adapter)).eval()(**batch).logits
        merged_logits = VLAForActionPrediction.from_pretrained(str(final)).eval()(**batch).logits
        base_logits = VLAForActionPrediction.from_pretrained(str(base_dir)).eval()(**batch).logits
    assert torch.allclose(merged_logits, peft_logits, atol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4)  # the adapters learned something


def test_projector_mode_changes_only_the_projector(base_run, data, tmp_path):
    from safetensors.torch import load_file

    from vla.train import run

    final = run({**config(data, tmp_path, steps=1, mode="projector", save_every=0, val_every=0),
                 "init_from": str(base_run / "final")})
    before, after = load_file(str(base_run / "final" / "model.safetensors")), load_file(str(final / "model.safetensors"))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("projector.") for k in changed), sorted(changed)[:5]


def test_bad_input_gives_clear_errors(data, tmp_path):
    from vla.data.rlds_writer import RLDSWriter
    from vla.train import run
    from vla.train.errors import DataError

    with pytest.raises(FileNotFoundError, match="init_from='.*nowhere' is not a checkpoint directory"):
        run({**config(data, tmp_path / "a"), "init_from": str(tmp_path / "nowhere")})
    with pytest.raises(ValueError, match="trainer.mode=lora adapts a pretrained model"):
        run(config(data, tmp_path / "b", mode="lora"))
    empty = RLDSWriter(tmp_path / "rlds", "no_steps", cameras=("primary",), image_size=(32, 32), state_dim=8).close()
    cfg = config(data, tmp_path / "c")
    cfg["data"]["datasets"] = [{"path": str(empty)}]
    with pytest.raises(DataError, match="no_steps"):
        run(cfg)


def test_shape_for_model_says_what_it_replaces_and_refuses_a_conflicting_chunk(caplog):
    import logging
    from dataclasses import replace
    from types import SimpleNamespace

    from vla.data.config import DataConfig, DatasetEntry, WindowConfig
    from vla.train.errors import DataError
    from vla.train.setup import shape_for_model

    model = SimpleNamespace(image_size=28, cameras=["wrist"], action_chunk=1)
    cfg = DataConfig(datasets=[DatasetEntry(path="x")], image_size=224, cameras=["primary", "wrist"])
    with caplog.at_level(logging.INFO, logger="vla.train.setup"):
        shaped = shape_for_model(cfg, model)
    assert shaped.image_size == 28 and shaped.cameras == ["wrist"]
    said = [r.getMessage() for r in caplog.records]
    assert any("data.image_size=224 replaced by the model's 28" in m and "set data.image_size=28" in m for m in said)
    assert any("data.cameras=[primary,wrist] replaced by the model's [wrist]" in m for m in said)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vla.train.setup"):
        shape_for_model(shaped, model)
    assert not caplog.records  # nothing replaced, nothing said
    chunked = SimpleNamespace(image_size=28, cameras=["wrist"], action_chunk=8)
    assert shape_for_model(shaped, chunked).window.action_chunk == 8  # the default 1 follows the model
    with pytest.raises(DataError, match=r"action_chunk=4 but the model predicts chunks of 8.*data.window.action_chunk=8"):
        shape_for_model(replace(shaped, window=WindowConfig(action_chunk=4)), chunked)
    with pytest.raises(DataError, match="predicts chunks of 1"):
        shape_for_model(replace(shaped, window=WindowConfig(action_chunk=4)), model)


def test_saved_config_records_the_data_shape_the_model_read(base_run):
    import yaml

    (ckpt,) = sorted((base_run / "checkpoints").iterdir())[-1:]
    data = yaml.safe_load((ckpt / "config.yaml").read_text())["data"]
    assert data["image_size"] == SMALL["image_size"] and data["cameras"] == ["primary"]  # not DataConfig's 224


def test_cli_unknown_key_gives_hydra_error_and_hint(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vla.cli.train", "trainer.stepz=3"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    assert r.returncode != 0
    assert "Key 'stepz' not in 'TrainerConfig'" in r.stderr
    assert "Hint: vla-train's keys are" in r.stderr and "vla-train --cfg job" in r.stderr


def test_time_budget_stops_early_with_a_usable_checkpoint(data, tmp_path):
    from vla.train import run
    from vla.train.checkpoint import list_checkpoints

    final = run(config(data, tmp_path, steps=50, max_train_seconds=0.001, save_every=0, val_every=0))
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [1]
    assert (final / "config.json").is_file()


def test_gradient_accumulation_matches_one_big_batch(data, tmp_path):
    from safetensors.torch import load_file

    from vla.train import run

    a = run(config(data, tmp_path / "a", steps=2, save_every=0, val_every=0))
    b = run(config(data, tmp_path / "b", steps=2, save_every=0, val_every=0, micro_batch_size=2))  # 2 x 2
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-3, atol=2e-4)


def test_schedule_and_batch_arithmetic():
    from vla.train.config import TrainerConfig
    from vla.train.loop import micro_batching
    from vla.train.optim import lr_factor

    cfg = TrainerConfig(steps=100, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0) and lr_factor(100, cfg) == pytest.approx(0.1)
    assert lr_factor(55, cfg) == pytest.approx(0.55)
    assert micro_batching(16, None, 2) == (8, 1) and micro_batching(16, 4, 2) == (4, 2)
    with pytest.raises(ValueError, match="not a multiple of micro_batch_size"):
        micro_batching(16, 3, 2)
    with pytest.raises(ValueError, match="trainer.steps must be > 0"):
        TrainerConfig(steps=0)


def test_metrics_follow_the_action_head():
    from types import SimpleNamespace

    from vla.train.metrics import ActionTokenDecoder, output_metrics

    dec = ActionTokenDecoder(begin_id=744, end_id=1000, n_bins=256)
    labels = torch.tensor([[-100, 900, 901, 2]])  # two action tokens, then EOS
    hit = torch.zeros(1, 4, 1001)
    # autoregressive: the logit at t predicts t + 1; parallel slots: the logit at t is token t
    hit[0, 0, 900], hit[0, 1, 901], hit[0, 2, 5] = 1, 1, 1
    out = SimpleNamespace(logits=hit, labels=labels, actions=None)
    assert output_metrics(out, {}, dec, parallel=False)["action_accuracy"] == 1.0
    assert output_metrics(out, {}, dec, parallel=True)["action_accuracy"] == 0.0
    hit2 = torch.zeros(1, 4, 1001)
    hit2[0, 1, 900], hit2[0, 2, 901] = 1, 1
    assert output_metrics(SimpleNamespace(logits=hit2, labels=labels, actions=None), {}, dec, parallel=True)["action_accuracy"] == 1.0
    # L1 head: continuous actions, accuracy on their bins
    actions = torch.tensor([[[0.5, -0.5, 0, 0, 0, 0, 1.0]]])
    out = SimpleNamespace(logits=hit, labels=labels, actions=actions + 0.001)
    m = output_metrics(out, {"actions": actions}, dec, parallel=True)
    assert m["action_accuracy"] == 1.0 and m["action_l1"] == pytest.approx(0.001, abs=1e-6)


def test_gripper_loss_weight_changes_the_update_and_needs_the_l1_head(data, tmp_path):
    """`trainer.gripper_loss_weight`: the gripper dimension of the L1 head's loss weighs more (its changes are
    one or two steps per episode); the same run with weight 1 updates differently. The token head refuses it."""
    from safetensors.torch import load_file

    from vla.train import run

    def l1_config(out, **trainer):
        cfg = config(data, out, steps=1, save_every=0, val_every=0, **trainer)
        cfg["model"] = {**SMALL, "decoding": "parallel", "action_chunk": 4, "action_head": "l1"}
        return cfg

    plain = load_file(str(run(l1_config(tmp_path / "plain")) / "model.safetensors"))
    weighted = load_file(str(run(l1_config(tmp_path / "w", gripper_loss_weight=8.0)) / "model.safetensors"))
    assert any(not torch.allclose(plain[k], weighted[k]) for k in plain)
    with pytest.raises(ValueError, match="gripper_loss_weight=8.0 weighs the L1 head's loss.*action_head='tokens'"):
        run(config(data, tmp_path / "tokens", steps=1, gripper_loss_weight=8.0))
    with pytest.raises(ValueError, match="gripper_loss_weight must be > 0"):
        run(config(data, tmp_path / "zero", steps=1, gripper_loss_weight=0.0))
