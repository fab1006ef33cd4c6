"""vla-merge: LoRA adapter + base -> standalone checkpoint, shard by shard; merged logits == adapter logits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vla.core.statistics import ArrayStatistics, DatasetStatistics

# A tiny VLA small enough that building, saving and merging take well under a second.
SMALL = {
    "image_size": 28,
    "dino": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "mlp_dim": 64},
    "siglip": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "mlp_dim": 64},
    "llm": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 128},
}


def _stats(scale: float) -> dict:
    rng = np.random.default_rng(int(scale * 100))
    mask = np.array([True] * 6 + [False])
    return DatasetStatistics(ArrayStatistics.compute(rng.normal(0, scale, (50, 7)), mask=mask),
                             num_transitions=50, num_trajectories=5).to_dict()


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    from vla.model.presets import build_model
    from vla.train.config import FinetuneMode, LoraSettings
    from vla.train.lora import prepare_for_mode
    from vla.train.setup import save_model_dir

    root = tmp_path_factory.mktemp("merge")
    model, processor = build_model("tiny", seed=0, **SMALL)
    model.config.norm_stats = {"robot_a": _stats(1.0)}
    model.save_pretrained(root / "base", max_shard_size="300KB")
    processor.save_pretrained(root / "base")
    peft_model = prepare_for_mode(model, FinetuneMode.lora, LoraSettings(rank=4, alpha=8))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # B starts at zero; give the adapter a real effect
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    save_model_dir(peft_model, processor, peft_model.state_dict(), root / "adapter",
                   statistics={"robot_b": _stats(2.0)}, lora=True, base_dir=root / "base")
    return root, peft_model.eval(), processor


def _batch(processor):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(2)]
    return processor(images, ["pick up the red cube", "open the drawer"])


def test_merged_logits_equal_adapter_logits(lora_run, monkeypatch):
    import safetensors.torch

    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.policy import VLAPolicy
    from vla.train.merge import merge_adapter

    root, peft_model, processor = lora_run
    base_shards = sorted(p.name for p in (root / "base").glob("model-*.safetensors"))
    assert len(base_shards) > 1, "the base must be sharded for this test to mean anything"
    loaded = []
    real_load = safetensors.torch.load_file
    monkeypatch.setattr(safetensors.torch, "load_file", lambda path, *a, **k: loaded.append(Path(path).name) or real_load(path, *a, **k))

    import vla.train.merge as merge_module

    streamed = []
    real_merge_shard = merge_module._merge_shard
    monkeypatch.setattr(merge_module, "_merge_shard",
                        lambda src, *a, **k: streamed.append(Path(src).name) or real_merge_shard(src, *a, **k))

    out = merge_adapter(root / "adapter", root / "merged")  # base found through adapter_config.json

    # no base shard is ever loaded whole: each is streamed tensor by tensor, exactly once; only the adapter is loaded
    assert sorted(streamed) == base_shards
    assert not [n for n in loaded if n.startswith("model-")] and "adapter_model.safetensors" in loaded
    assert sorted(p.name for p in out.glob("model-*.safetensors")) == base_shards
    batch = _batch(processor)
    merged = VLAForActionPrediction.from_pretrained(str(out)).eval()
    with torch.no_grad():
        want = peft_model(**batch).logits
        got = merged(**batch).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    with torch.no_grad():
        base = VLAForActionPrediction.from_pretrained(str(root / "base")).eval()(**batch).logits
    assert not torch.allclose(base, want, atol=1e-3), "the adapter changed nothing; the test would be vacuous"
    # standalone: config statistics are the fine-tuning data's, processor files travel, the policy loads it
    assert sorted(json.loads((out / "config.json").read_text())["norm_stats"]) == ["robot_b"]
    policy = VLAPolicy.from_pretrained(out)
    assert policy.unnorm_key == "robot_b"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    r = subprocess.run([sys.executable, "-m", "vla.cli.merge", *args], cwd=cwd, capture_output=True, text=True,
                       env=env, timeout=120)
    r.output = r.stdout + r.stderr  # hydra logs to stdout, errors go to stderr
    return r


def test_cli_merges_and_reports_bad_input(lora_run, tmp_path):
    root, _, _ = lora_run
    r = _cli(f"adapter={root / 'adapter'}", f"output={tmp_path / 'm'}", f"base={root / 'base'}", cwd=tmp_path)
    assert r.returncode == 0, r.output
    assert (tmp_path / "m" / "config.json").is_file() and (tmp_path / "m" / "dataset_statistics.json").is_file()

    r = _cli(f"adaptr={root / 'adapter'}", f"output={tmp_path / 'x'}", cwd=tmp_path)  # typo in a key
    assert r.returncode != 0 and "adaptr" in r.output and "Hint: vla-merge takes adapter=" in r.output

    r = _cli(f"adapter={root / 'adapter'}", f"output={tmp_path / 'y'}", f"base={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert r.returncode != 0 and "base checkpoint" in r.output and "nowhere" in r.output

    r = _cli(f"adapter={root / 'adapter'}", f"output={tmp_path / 'm'}", f"base={root / 'base'}", cwd=tmp_path)
    assert r.returncode != 0 and "already holds a checkpoint" in r.output


def test_truncated_base_shard_is_named_and_leaves_no_partial_output(lora_run, tmp_path):
    import shutil

    from vla.train.merge import MergeError, merge_adapter

    root, _, _ = lora_run
    base = tmp_path / "base"
    shutil.copytree(root / "base", base)
    shard = sorted(base.glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-1000])  # a copy that was cut short
    with pytest.raises(MergeError, match=f"{shard.name} is truncated"):
        merge_adapter(root / "adapter", tmp_path / "merged", base_dir=base)
    assert not (tmp_path / "merged" / shard.name).exists(), "a truncated shard must not appear as a finished file"


def test_conv_lora_merges_to_the_adapters_outputs(tmp_path):
    """`all-linear-conv` adapts the conv vision backbone too (peft's all-linear would freeze it); the streamed merge
    turns each conv adapter (A: r x in x k x k, B: out x r x 1 x 1) into the kernel delta peft applies. Layers torch
    uses without calling them (the instruction pooler's attention and its eval fast path) get no adapter, so the
    adapter model in eval mode acts exactly like its merge."""
    from torch import nn

    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.presets import build_model
    from vla.train.config import FinetuneMode, LoraSettings
    from vla.train.lora import prepare_for_mode
    from vla.train.merge import merge_adapter
    from vla.train.setup import save_model_dir

    model, processor = build_model("tiny", seed=0, **{**SMALL, "vision_backbone": "conv_keypoints", "vision_film": True,
                                                   "film_text_layers": 1})
    assert any(isinstance(m, nn.TransformerEncoderLayer) for m in model.modules()), "needs the instruction pooler"
    model.config.norm_stats = {"robot_a": _stats(1.0)}
    model.save_pretrained(tmp_path / "base")
    processor.save_pretrained(tmp_path / "base")
    peft_model = prepare_for_mode(model, FinetuneMode.lora, LoraSettings(rank=2, alpha=4, target_modules="all-linear-conv"))
    convs = [n for n, m in peft_model.named_modules() if isinstance(m, nn.Conv2d) and n.endswith("lora_A.default")]
    assert convs, "no conv layer was adapted"
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    save_model_dir(peft_model, processor, peft_model.state_dict(), tmp_path / "adapter",
                   statistics={"robot_b": _stats(2.0)}, lora=True, base_dir=tmp_path / "base")
    out = merge_adapter(tmp_path / "adapter", tmp_path / "merged")
    batch = _batch(processor)
    with torch.no_grad():
        want = peft_model.eval()(**batch).logits
        got = VLAForActionPrediction.from_pretrained(str(out)).eval()(**batch).logits
        base = VLAForActionPrediction.from_pretrained(str(tmp_path / "base")).eval()(**batch).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    assert not torch.allclose(base, want, atol=1e-3), "the adapter changed nothing; the test would be vacuous"


def test_freeze_vision_keeps_the_instruction_conditioned_vision_fixed():
    """`freeze_vision` on a FiLM-conditioned conv backbone freezes the backbone, the FiLM generator and the
    instruction pooler (they serve the vision only) and trains the rest: after a training step the keypoints the
    vision finds for the same instruction embedding are unchanged, while the projector has moved. (The word
    embeddings feed the language model too and stay trainable.)"""
    from vla.model.presets import build_model
    from vla.train.config import FinetuneMode, LoraSettings
    from vla.train.lora import prepare_for_mode

    model, processor = build_model("tiny", seed=0, **{**SMALL, "vision_backbone": "conv_keypoints", "vision_film": True})
    model = prepare_for_mode(model, FinetuneMode.freeze_vision, LoraSettings())
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("film.") for n in frozen) and any(n.startswith("instruction_pooler.") for n in frozen)
    assert all(n.startswith(("vision_backbone.", "film.", "instruction_pooler.")) for n in frozen), frozen
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith(("projector.", "language_model.")))

    batch = _batch(processor)
    with torch.no_grad():
        text = model.get_input_embeddings()(batch["input_ids"])
        instruction = model.instruction_pooler(text, batch["attention_mask"].bool())
        tokens_before = model.project_images(batch["pixel_values"], instruction)
        keypoints_before = model.vision_backbone.last_keypoints_xy.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    out = model(**batch)
    out.logits.float().square().mean().backward()
    optimizer.step()
    with torch.no_grad():
        tokens_after = model.project_images(batch["pixel_values"], instruction)
    assert torch.equal(model.vision_backbone.last_keypoints_xy, keypoints_before)
    assert not torch.equal(tokens_after, tokens_before), "the projector did not train"
