"""Bad input to the model package fails clearly: what is wrong and how to fix it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla import ContractError, Observation
from vla.core.statistics import ArrayStatistics, DatasetStatistics
from vla.model.presets import build_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, processor = build_model("tiny", seed=0)
    rng = np.random.default_rng(0)
    stats = DatasetStatistics(action=ArrayStatistics.compute(rng.normal(size=(50, 7)))).to_dict()
    model.config.norm_stats = {"bridge_orig": stats, "my_robot": stats}
    path = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, model, processor


@pytest.mark.parametrize("image, match", [
    (np.zeros((32, 32, 4), np.uint8), "RGB"),
    (np.zeros((32, 32), np.uint8), r"uint8 \(H, W, 3\)"),
    (np.zeros((32, 32, 3), np.float32), "float32"),
    ("not an image", "numpy array"),
])
def test_wrong_image_channels_or_type(saved, image, match):
    _, _, processor = saved
    with pytest.raises(ContractError, match=match):
        processor([image], ["pick"])


def test_wrong_pixel_values_size_or_channels(saved):
    _, model, processor = saved
    batch = processor([np.zeros((64, 64, 3), np.uint8)], ["pick"])
    with pytest.raises(ValueError, match="expects 112x112"):
        model(input_ids=batch["input_ids"], pixel_values=torch.zeros(1, 6, 224, 224))
    with pytest.raises(ValueError, match="6 per image"):
        model(input_ids=batch["input_ids"], pixel_values=torch.zeros(1, 3, 112, 112))


def test_missing_or_unknown_unnorm_key_lists_the_keys(saved):
    from vla.model.policy import VLAPolicy

    path, model, _ = saved
    with pytest.raises(KeyError, match=r"pass unnorm_key=one of \['bridge_orig', 'my_robot'\]"):
        VLAPolicy.from_pretrained(path)
    with pytest.raises(KeyError, match=r"'bridgeorig' not in .*\['bridge_orig', 'my_robot'\]"):
        VLAPolicy.from_pretrained(path, unnorm_key="bridgeorig")
    with pytest.raises(KeyError, match="bridge_orig"):
        model.predict_action(torch.ones(1, 3, dtype=torch.long), torch.zeros(1, 6, 112, 112))


def test_checkpoint_with_missing_or_mismatched_tensors(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    from vla.model.convert_openvla import CheckpointMismatchError
    from vla.model.policy import load_checkpoint

    path, _, _ = saved
    for f in path.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(path / "model.safetensors"))
    missing = dict(tensors)
    del missing["projector.fc2.bias"]
    save_file(missing, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatchError, match="projector.fc2.bias"):
        load_checkpoint(tmp_path)
    mismatched = dict(tensors)
    mismatched["projector.fc3.weight"] = torch.zeros(3, 3)
    save_file(mismatched, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointMismatchError, match="projector.fc3.weight"):
        load_checkpoint(tmp_path)


def test_unknown_config_keys(saved, tmp_path):
    from vla.model.configuration_vla import VLAConfig
    from vla.model.policy import load_checkpoint

    with pytest.raises(ValueError, match=r"unknown VLAConfig key\(s\) \['n_action_binz'\].*n_action_bins"):
        VLAConfig(n_action_binz=3)
    with pytest.raises(ValueError, match="decoding='beam'.*autoregressive"):
        VLAConfig(decoding="beam")
    with pytest.raises(ValueError, match="llm_hidden"):
        build_model("tiny", llm_hidden=3)
    with pytest.raises(ValueError, match="hidden_sizee"):
        build_model("tiny", **{"llm.hidden_sizee": 3})
    with pytest.raises(KeyError, match="available"):
        build_model("huge")
    path, _, _ = saved
    for f in path.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["action_chunck"] = 8
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="action_chunck"):
        load_checkpoint(tmp_path)


def test_released_openvla_dir_points_at_vla_import(tmp_path):
    from vla.model.policy import load_checkpoint

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "openvla"}))
    with pytest.raises(ValueError, match="vla-import"):
        load_checkpoint(tmp_path)


def test_observation_missing_camera_or_instruction():
    from vla.model.policy import VLAPolicy

    model, processor = build_model("tiny", cameras=["primary", "wrist"])
    stats = DatasetStatistics(action=ArrayStatistics.compute(np.random.default_rng(0).normal(size=(50, 7))))
    policy = VLAPolicy(model, processor, norm_stats={"only": stats.to_dict()})
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ContractError, match="missing camera 'wrist'"):
        policy.act(Observation(images={"primary": img}, instruction="pick"))
    with pytest.raises(ContractError, match="no instruction"):
        policy.act(Observation(images={"primary": img, "wrist": img}))
    with pytest.raises(ContractError, match=r"actions must be \(1, 7\)"):
        processor([{"primary": img, "wrist": img}], ["pick"], actions=np.zeros((1, 6)))
