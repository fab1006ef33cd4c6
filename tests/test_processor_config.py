"""The processor's copies of the model's settings are checked against the checkpoint's config.json at load."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from vla.model.presets import build_model
from vla.model.processing_vla import ProcessorConfigMismatchError, VLAProcessor


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    model, processor = build_model("tiny", seed=0, image_size=28)
    path = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _edit(path, name: str, **changes) -> None:
    d = json.loads((path / name).read_text())
    d.update(changes)
    (path / name).write_text(json.dumps(d))


def test_agreeing_checkpoint_loads(checkpoint):
    processor = VLAProcessor.from_pretrained(checkpoint)
    assert processor.action_chunk == 1 and processor.image_processor.image_size == 28


def test_disagreeing_processor_config_fails_at_load_naming_setting_values_and_fix(checkpoint, tmp_path):
    from vla.model.policy import load_checkpoint

    ckpt = shutil.copytree(checkpoint, tmp_path / "ckpt")
    _edit(ckpt, "processor_config.json", action_chunk=4, cameras=["primary", "wrist"])
    with pytest.raises(ProcessorConfigMismatchError) as e:
        VLAProcessor.from_pretrained(ckpt)
    msg = str(e.value)
    assert "action_chunk: processor_config.json has 4, config.json has 1" in msg
    assert "cameras: processor_config.json has ['primary', 'wrist'], config.json has ['primary']" in msg
    assert "save_pretrained" in msg and str(ckpt) in msg
    with pytest.raises(ProcessorConfigMismatchError, match="action_chunk"):  # the policy's load path
        load_checkpoint(ckpt)


def test_disagreeing_image_size_fails_at_load(checkpoint, tmp_path):
    ckpt = shutil.copytree(checkpoint, tmp_path / "ckpt")
    _edit(ckpt, "preprocessor_config.json", image_size=56)
    with pytest.raises(ProcessorConfigMismatchError, match="image_size: preprocessor_config.json has 56, config.json has 28"):
        VLAProcessor.from_pretrained(ckpt)


def test_processor_only_directory_has_nothing_to_check(checkpoint, tmp_path):
    proc_dir = tmp_path / "processor"
    VLAProcessor.from_pretrained(checkpoint).save_pretrained(proc_dir)
    assert not (proc_dir / "config.json").exists()
    assert VLAProcessor.from_pretrained(proc_dir).settings() == VLAProcessor.from_pretrained(checkpoint).settings()
