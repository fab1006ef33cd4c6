"""Import of released OpenVLA checkpoints, checked against the golden fixture made with the reference code.

The fixture (`openvla_fixture_dir`) is a tiny `OpenVLAForActionPrediction` in the released layout with recorded
inputs/outputs (see its README). Head counts are not in its config.json; the test reads them from the
fixture's reference_meta.json, as a user passes `dino_num_heads`/`siglip_num_heads` to `vla-import`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vla.model.convert_openvla import (
    CheckpointMismatchError,
    build_config,
    check_against_model,
    convert_state_dict,
    import_openvla,
)

# float32 with a different attention kernel order (timm fused sdpa vs transformers) than the reference
ATOL_FEATURES = 1e-4
ATOL_LOGITS = 1e-3
RTOL_LOGITS = 1e-4


def _heads(fixture: Path) -> tuple[int, int]:
    meta = json.loads((fixture / "reference_meta.json").read_text())
    towers = meta["vision_towers"]
    return towers["featurizer"]["num_heads"], towers["fused_featurizer"]["num_heads"]


@pytest.fixture(scope="module")
def reference(openvla_fixture_dir):
    from safetensors.torch import load_file

    return load_file(str(openvla_fixture_dir / "reference_io.safetensors"))


@pytest.fixture(scope="module")
def imported(openvla_fixture_dir, tmp_path_factory):
    from vla.model.policy import load_checkpoint

    out = tmp_path_factory.mktemp("imported")
    import_openvla(openvla_fixture_dir, out, num_heads=_heads(openvla_fixture_dir))
    model, processor = load_checkpoint(out, attn_implementation="eager")
    return out, model, processor


def _n_samples(reference) -> int:
    return len([k for k in reference if k.startswith("input_ids_")])


def _unnorm_keys(fixture: Path) -> list[str]:
    return sorted(json.loads((fixture / "config.json").read_text())["norm_stats"])


def _column_range(reference, i: int) -> tuple[str, int, int]:
    """The recorded action-range logits: `logits_all_positions_vocab_<lo>_<hi>_<i>`."""
    name = next(k for k in reference if k.startswith("logits_all_positions_vocab_") and k.endswith(f"_{i}"))
    lo, hi = name[len("logits_all_positions_vocab_"):].split("_")[:2]
    return name, int(lo), int(hi)


def test_pixel_values_match_reference_processor(imported, reference):
    _, _, processor = imported
    for i in range(_n_samples(reference)):
        image = reference[f"image_{i}"].numpy()
        ours = processor.pixel_values([image])
        np.testing.assert_allclose(ours.numpy(), reference[f"pixel_values_{i}"].numpy(), rtol=0, atol=1e-6)


def test_features_projector_logits_hidden_states(imported, reference):
    _, model, _ = imported
    for i in range(_n_samples(reference)):
        px, ids = reference[f"pixel_values_{i}"], reference[f"input_ids_{i}"][None]
        n_text = ids.shape[1]
        with torch.no_grad():
            feats = model.vision_backbone(px)
            torch.testing.assert_close(feats, reference[f"patch_features_{i}"], rtol=0, atol=ATOL_FEATURES)
            proj = model.projector(feats)
            torch.testing.assert_close(proj, reference[f"projector_features_{i}"], rtol=0, atol=ATOL_FEATURES)
            out = model(input_ids=ids, pixel_values=px, output_hidden_states=True)
        n_patch = proj.shape[1]
        logits = out.logits[0]
        text_logits = torch.cat([logits[:1], logits[n_patch + 1 : n_patch + n_text]])
        torch.testing.assert_close(text_logits, reference[f"logits_text_positions_{i}"], rtol=RTOL_LOGITS,
                                   atol=ATOL_LOGITS)
        name, lo, hi = _column_range(reference, i)
        torch.testing.assert_close(logits[:, lo:hi], reference[name], rtol=RTOL_LOGITS, atol=ATOL_LOGITS)
        assert torch.equal(logits.argmax(-1), reference[f"logits_argmax_all_positions_{i}"])
        for ours, ref in zip(out.hidden_states, reference[f"hidden_states_{i}"]):
            torch.testing.assert_close(ours[0], ref, rtol=RTOL_LOGITS, atol=ATOL_LOGITS)


def test_greedy_tokens_and_actions_for_both_unnorm_keys(imported, reference, openvla_fixture_dir):
    _, model, _ = imported
    keys = _unnorm_keys(openvla_fixture_dir)
    assert model.config.unnorm_keys == keys and len(keys) >= 2
    for i in range(_n_samples(reference)):
        px, ids = reference[f"pixel_values_{i}"], reference[f"input_ids_{i}"][None]
        prompt, _ = model.ensure_prompt_suffix(ids, None)  # the 29871 rule (sample 1 lacks it)
        assert torch.equal(prompt[0], reference[f"predict_action_prompt_ids_{i}"])
        tokens, scores = model.generate_action_tokens(prompt, px, return_scores=True)
        assert tokens[0].tolist() == reference[f"generated_token_ids_{i}"].tolist()
        torch.testing.assert_close(scores[0], reference[f"generate_step_logits_{i}"], rtol=RTOL_LOGITS,
                                   atol=ATOL_LOGITS)
        recorded = [k for k in keys if f"action_{k}_{i}" in reference]
        assert len(recorded) >= 2, f"sample {i}: expected recorded actions for several unnorm keys, got {recorded}"
        for key in recorded:
            action = model.predict_action(ids, px, unnorm_key=key)  # (1, 1, 7) float64
            np.testing.assert_array_equal(action[0, 0], reference[f"action_{key}_{i}"].numpy())


def test_training_loss(imported, reference):
    _, model, _ = imported
    for i in range(_n_samples(reference)):
        px = reference[f"pixel_values_{i}"]
        ids, labels = reference[f"train_input_ids_{i}"][None], reference[f"train_labels_{i}"][None]
        with torch.no_grad():
            out = model(input_ids=ids, pixel_values=px, labels=labels, attention_mask=torch.ones_like(ids))
        torch.testing.assert_close(out.loss, reference[f"train_loss_{i}"], rtol=1e-5, atol=1e-5)
        labelled = (out.labels[0, 1:] != -100).nonzero()[:, 0]  # positions predicting a labelled token
        torch.testing.assert_close(out.logits[0, labelled], reference[f"train_logits_label_positions_{i}"],
                                   rtol=RTOL_LOGITS, atol=ATOL_LOGITS)


def test_our_processor_builds_the_reference_training_sequence(imported, reference):
    """Action ids + EOS after the suffixed prompt, labels only on them: the reference's training layout."""
    _, model, processor = imported
    tok = model.action_tokenizer
    for i in range(_n_samples(reference)):
        action_ids = reference[f"train_action_token_ids_{i}"].numpy()
        normalized = tok.decode(action_ids)
        assert np.array_equal(tok.encode(normalized), action_ids)
        expected = torch.cat([reference[f"predict_action_prompt_ids_{i}"], torch.from_numpy(action_ids),
                              torch.tensor([processor.eos_token_id])])
        assert torch.equal(expected, reference[f"train_input_ids_{i}"])


def test_action_bins_match_reference(imported, reference):
    _, model, _ = imported
    np.testing.assert_array_equal(model.action_tokenizer.bins, reference["action_bins"].numpy())
    np.testing.assert_array_equal(model.action_tokenizer.bin_centers, reference["action_bin_centers"].numpy())


def test_imported_directory_is_self_contained(imported, openvla_fixture_dir):
    out, model, processor = imported
    cfg = json.loads((out / "config.json").read_text())
    src = json.loads((openvla_fixture_dir / "config.json").read_text())
    assert cfg["model_type"] == "vla" and cfg["norm_stats"] == src["norm_stats"]
    assert processor.image_processor.means[0] == [0.484375, 0.455078125, 0.40625]  # bf16-rounded, as released
    assert model.config.prompt_suffix_token_id == 29871 and model.config.action_token_end_id == 32000


@pytest.mark.slow  # two fresh interpreters (torch + transformers + hydra imports)
def test_vla_import_cli(openvla_fixture_dir, tmp_path):
    dino, siglip = _heads(openvla_fixture_dir)
    cmd = [sys.executable, "-m", "vla.cli.import_openvla", str(openvla_fixture_dir), str(tmp_path / "out"),
           f"dino_num_heads={dino}", f"siglip_num_heads={siglip}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    log = res.stdout + res.stderr
    assert (tmp_path / "out" / "model.safetensors").is_file() and "checked: every source tensor placed" in log
    # the tiny towers' head counts were given: reported as such, never as verified
    assert f"not verified: head counts dino_num_heads={dino}, siglip_num_heads={siglip}" in log
    assert "verified:" not in log.replace("not verified:", "")
    with pytest.raises(FileExistsError, match="overwrite=true"):  # an earlier import is never clobbered silently
        import_openvla(openvla_fixture_dir, tmp_path / "out", num_heads=(dino, siglip))
    bad = subprocess.run(cmd[:5] + ["dino_num_headz=2"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "dino_num_headz" in bad.stdout + bad.stderr and "Hint: vla-import" in bad.stderr


def test_nonstandard_width_without_heads_is_a_clear_error(openvla_fixture_dir, tmp_path):
    with pytest.raises(CheckpointMismatchError, match="pass dino_num_heads=N .* cannot be read from the weights"):
        import_openvla(openvla_fixture_dir, tmp_path / "x")
    assert not (tmp_path / "x" / "model.safetensors").exists()
    with pytest.raises(CheckpointMismatchError, match=r"dino_num_heads=3 does not divide .* width 32.*\[1, 2, 4, 8, 16, 32\]"):
        import_openvla(openvla_fixture_dir, tmp_path / "x", num_heads=(3, 2))


def test_wrong_head_counts_that_divide_the_width_are_never_called_verified(openvla_fixture_dir, reference, tmp_path,
                                                                          caplog):
    """A wrong count that divides the width imports and runs (the weights cannot tell), with other features:
    the import says the given counts are unverified instead of claiming success."""
    from vla.cli.import_openvla import check_import
    from vla.model.policy import load_checkpoint

    dino, siglip = _heads(openvla_fixture_dir)
    wrong = (dino * 2, siglip)  # 4 heads of 8 instead of 2 of 16 on the 32-wide DINOv2 tower
    with caplog.at_level(logging.INFO):
        import_openvla(openvla_fixture_dir, tmp_path / "w", num_heads=wrong)
        unverified = check_import(tmp_path / "w", wrong)
    model, _ = load_checkpoint(tmp_path / "w", attn_implementation="eager")
    with torch.no_grad():
        off = (model.vision_backbone(reference["pixel_values_0"]) - reference["patch_features_0"]).abs().max()
    assert off > 100 * ATOL_FEATURES  # what was at stake
    assert any("dino_num_heads=4, siglip_num_heads=2" in u for u in unverified)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("dino_num_heads=4" in w and "cannot verify" in w for w in warnings)
    assert any(w.startswith("not verified: head counts dino_num_heads=4") for w in warnings)
    assert not [r for r in caplog.records if r.getMessage().startswith("verified")]


def test_sharded_checkpoint_imports_like_the_single_file(openvla_fixture_dir, imported, reference, tmp_path):
    """The released 7B is an index plus shards; the fixture re-saved that way imports to the same tensors."""
    import shutil

    from huggingface_hub import save_torch_state_dict
    from safetensors.torch import load_file

    from vla.model.policy import load_checkpoint

    src = tmp_path / "sharded"
    src.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy2(openvla_fixture_dir / name, src / name)
    save_torch_state_dict(load_file(str(openvla_fixture_dir / "model.safetensors")), src, max_shard_size="4MB")
    index = json.loads((src / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 3 and not (src / "model.safetensors").exists()
    import_openvla(src, tmp_path / "out", num_heads=_heads(openvla_fixture_dir))

    def tensors(d):
        return {k: v for f in sorted(d.glob("model*.safetensors")) for k, v in load_file(str(f)).items()}

    ours, single = tensors(tmp_path / "out"), tensors(imported[0])
    assert ours.keys() == single.keys() and all(torch.equal(ours[k], single[k]) for k in single)
    model, _ = load_checkpoint(tmp_path / "out", attn_implementation="eager")
    with torch.no_grad():
        feats = model.vision_backbone(reference["pixel_values_0"])
    torch.testing.assert_close(feats, reference["patch_features_0"], rtol=0, atol=ATOL_FEATURES)
    (src / shards[-1]).unlink()  # an incomplete download names the missing shard
    with pytest.raises(FileNotFoundError, match=shards[-1]):
        import_openvla(src, tmp_path / "out2", num_heads=_heads(openvla_fixture_dir))


def test_missing_and_mismatched_tensors_are_named(openvla_fixture_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(openvla_fixture_dir / "model.safetensors"))
    broken = dict(tensors)
    del broken["projector.fc3.bias"]
    broken["language_model.model.norm.weight"] = torch.ones(7)
    broken["vision_backbone.featurizer.blocks.0.extra"] = torch.ones(1)
    src = tmp_path / "broken"
    src.mkdir()
    (src / "config.json").write_text((openvla_fixture_dir / "config.json").read_text())
    save_file(broken, str(src / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError, match="blocks.0.extra"):
        import_openvla(src, tmp_path / "o1", num_heads=_heads(openvla_fixture_dir))
    del broken["vision_backbone.featurizer.blocks.0.extra"]
    save_file(broken, str(src / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError) as err:
        import_openvla(src, tmp_path / "o2", num_heads=_heads(openvla_fixture_dir))
    assert "projector.fc3.bias" in str(err.value) and "language_model.model.norm.weight" in str(err.value)


def test_every_7b_tensor_maps_onto_our_7b_config(shared_dir):
    """All 982 tensors of openvla-7b land on our 7B architecture with matching shapes (meta device)."""
    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.presets import build_preset

    facts = json.loads((shared_dir / "facts" / "openvla7b_state_dict.json").read_text())
    shapes = {k: tuple(v) for k, v in facts["state_dict"].items()}
    assert len(shapes) == 982
    src = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    converted = convert_state_dict(src)
    openvla_cfg = {"vision_backbone_id": "dinosiglip-vit-so-224px", "llm_backbone_id": "llama2-7b-pure",
                   "image_sizes": [224, 224], "pad_token_id": 32000, "n_action_bins": 256,
                   "text_config": {"vocab_size": 32064, "max_position_embeddings": 2048, "pad_token_id": 32000}}
    imported_cfg = build_config(openvla_cfg, shapes)  # standard widths: head counts from the timm models
    preset_cfg, _ = build_preset("openvla_7b")
    for cfg in (imported_cfg, preset_cfg):
        with torch.device("meta"):
            model = VLAForActionPrediction(cfg)
        check_against_model(converted, model)  # raises naming any missing / extra / mismatched tensor
        # every source tensor is used: the converted parameter count equals the source one plus the two
        # transformers-only DINOv2 slots (mask token, CLS position) filled by the converter
        n_src = sum(t.numel() for t in src.values())
        assert n_src == facts["num_params"]
        assert sum(p.numel() for p in model.state_dict().values()) == n_src + 2 * 1024
    assert imported_cfg.dino_config.num_attention_heads == 16 and imported_cfg.siglip_config.num_attention_heads == 16
