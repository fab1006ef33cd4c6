"""Tiny VLA models built from config alone: save/load, processor (training collate), decoding paths, policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vla import ContractError, Observation
from vla.core.statistics import ArrayStatistics, DatasetStatistics
from vla.model.action_tokenizer import ActionTokenizer
from vla.model.presets import build_model

INSTRUCTIONS = ["pick up the red cube", "open the drawer", "Put the SPOON in the bowl next to the cup"]


def _images(rng, n, sizes=((64, 64), (48, 80), (120, 90))):
    return [rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(n)]


def _stats(rng, proprio_dim=0) -> dict:
    act = DatasetStatistics(
        action=ArrayStatistics.compute(rng.normal(size=(200, 7)), mask=[True] * 6 + [False]),
        proprio=ArrayStatistics.compute(rng.normal(size=(200, proprio_dim))) if proprio_dim else None,
        num_transitions=200, num_trajectories=4)
    return {"sim_a": act.to_dict(), "sim_b": act.to_dict()}


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return build_model("tiny", seed=0)


def test_action_tokenizer_openvla_layout():
    tok = ActionTokenizer(32000, 256)
    assert tok.encode(np.array([-1.0, 0.0, 1.0])).tolist() == [31999, 31872, 31744]
    a = np.random.default_rng(0).uniform(-1, 1, (1000, 7))
    assert np.abs(tok.decode(tok.encode(a)) - a).max() <= 1 / 255 + 1e-12
    assert tok.encode(np.array([5.0, -5.0])).tolist() == [31744, 31999]  # clipped


def test_tiny_tokenizer_layout(tiny):
    model, processor = tiny
    tok, cfg = processor.tokenizer, model.config
    assert cfg.action_token_end_id == 1024 and cfg.pad_token_id == 1024 and tok.pad_token_id == 1024
    assert cfg.text_config.vocab_size == 1088  # 1024 + pad, rounded up to a multiple of 64
    assert tok.convert_ids_to_tokens(cfg.action_token_begin_id) == "<action_0>"
    ids = processor.prompt_ids("pick up the red cube")
    assert ids[0] == 1 and ids[-1] == cfg.prompt_suffix_token_id
    assert tok.decode(ids[1:-1]) == "In: What action should the robot take to pick up the red cube?\nOut:"


def test_processor_inference_and_training_batches(tiny):
    model, processor = tiny
    rng = np.random.default_rng(1)
    images = _images(rng, 3)
    inf = processor(images, INSTRUCTIONS)
    assert inf["pixel_values"].shape == (3, 6, 112, 112) and "labels" not in inf
    assert torch.all(inf["input_ids"][:, -1] == model.config.prompt_suffix_token_id)  # left padded
    assert inf["attention_mask"][:, -1].all() and not inf["attention_mask"][:2, 0].all()
    actions = rng.uniform(-1, 1, (3, 7)).astype(np.float32)
    train = processor(images, INSTRUCTIONS, actions=actions)
    for i in range(3):
        n = int(train["attention_mask"][i].sum())
        assert train["attention_mask"][i, :n].all()  # right padded
        labelled = train["labels"][i][train["labels"][i] != -100]
        assert labelled[:7].tolist() == processor.action_tokenizer.encode(actions[i]).tolist()
        assert labelled[-1] == processor.eos_token_id and labelled.numel() == 8
        assert train["input_ids"][i, n - 8 : n].tolist() == labelled.tolist()
    with pytest.raises(ContractError, match="model.action_chunk=4"):  # the policy would decode 1 action only
        processor(images, INSTRUCTIONS, actions=rng.uniform(-1, 1, (3, 4, 7)))


def test_collate_reads_loader_samples(tiny):
    _, processor = tiny
    rng = np.random.default_rng(2)
    samples = [{"images": {"primary": img}, "instruction": ins, "action": rng.uniform(-1, 1, 7).astype(np.float32),
                "proprio": np.zeros(3, np.float32), "dataset": "x"} for img, ins in zip(_images(rng, 3), INSTRUCTIONS)]
    batch = processor.collate(samples)
    assert set(batch) == {"input_ids", "attention_mask", "pixel_values", "labels", "actions"}
    history = [dict(s, images={"primary": np.stack([s["images"]["primary"]] * 2)}) for s in samples]
    assert torch.equal(processor.collate(history)["pixel_values"], batch["pixel_values"])


def test_save_load_roundtrip_and_auto_classes(tiny, tmp_path):
    from transformers import AutoConfig, AutoModelForImageTextToText

    from vla.model.modeling_vla import VLAForActionPrediction
    from vla.model.policy import load_checkpoint

    model, processor = tiny
    model.config.norm_stats = _stats(np.random.default_rng(0))
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["norm_stats"]["sim_a"]["action"]["mask"][-1] is False
    assert type(AutoConfig.from_pretrained(tmp_path)).__name__ == "VLAConfig"
    auto = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert isinstance(auto, VLAForActionPrediction)
    loaded, proc2 = load_checkpoint(tmp_path)
    batch = processor(_images(np.random.default_rng(3), 2), INSTRUCTIONS[:2])
    assert torch.equal(proc2(_images(np.random.default_rng(3), 2), INSTRUCTIONS[:2])["input_ids"], batch["input_ids"])
    a = model.generate_action_tokens(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    b = loaded.generate_action_tokens(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    assert torch.equal(a, b)


def test_training_steps_reduce_loss(tiny):
    model, processor = tiny
    model = type(model)(model.config)  # a private copy, trained here
    model.load_state_dict(tiny[0].state_dict())
    rng = np.random.default_rng(4)
    batch = processor(_images(rng, 3), INSTRUCTIONS, actions=rng.uniform(-1, 1, (3, 7)))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(p.grad is not None for n, p in model.named_parameters()
               if n.startswith(("projector", "vision_backbone.dino.encoder.layer.0")))


def test_kv_cache_and_batching_give_the_same_tokens(tiny):
    model, processor = tiny
    rng = np.random.default_rng(5)
    images = _images(rng, 3)
    batch = processor(images, INSTRUCTIONS)
    cached = model.generate_action_tokens(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    uncached = model.generate_action_tokens(batch["input_ids"], batch["pixel_values"], batch["attention_mask"],
                                            use_cache=False)
    assert torch.equal(cached, uncached)
    for i in range(3):
        one = processor(images[i : i + 1], INSTRUCTIONS[i : i + 1])
        single = model.generate_action_tokens(one["input_ids"], one["pixel_values"], one["attention_mask"])
        assert torch.equal(single[0], cached[i])
    # left padding must not change the logits of the padded sample (beyond float noise)
    one = processor(images[:1], INSTRUCTIONS[:1])
    _, s_single = model.generate_action_tokens(one["input_ids"], one["pixel_values"], one["attention_mask"],
                                               return_scores=True)
    _, s_batch = model.generate_action_tokens(batch["input_ids"], batch["pixel_values"], batch["attention_mask"],
                                              return_scores=True)
    torch.testing.assert_close(s_batch[0], s_single[0], rtol=0, atol=1e-4)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_fast_decoding_equals_transformers_forward_bit_for_bit(tiny, attn, monkeypatch):
    """The decoding loop over the Llama layers (one mask/rotary set-up, KV buffers) gives exactly the logits of
    `LlamaForCausalLM.forward` at every step, with and without the cache, left padding included."""
    import vla.model.modeling_vla as modeling
    from vla.model.decoding import supports_fast_decoding

    model, processor = tiny
    cfg = model.language_model.config
    previous = cfg._attn_implementation
    cfg._attn_implementation = attn
    try:
        assert supports_fast_decoding(model.language_model)
        batch = processor(_images(np.random.default_rng(8), 3), INSTRUCTIONS)
        args = (batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
        for use_cache in (True, False):
            fast = model.generate_action_tokens(*args, use_cache=use_cache, return_scores=True)
            with monkeypatch.context() as m:
                m.setattr(modeling, "supports_fast_decoding", lambda lm: False)
                reference = model.generate_action_tokens(*args, use_cache=use_cache, return_scores=True)
            assert torch.equal(fast[0], reference[0]) and torch.equal(fast[1], reference[1])
    finally:
        cfg._attn_implementation = previous


def test_batched_pixel_values_equal_the_per_image_reference_pipeline(tiny):
    from PIL import Image

    from vla.model.image_processing import DINO_MEAN, DINO_STD

    _, processor = tiny
    images = _images(np.random.default_rng(9), 4, sizes=((64, 64), (48, 80), (112, 112), (300, 200)))
    batched = processor.pixel_values(images)
    assert batched.shape == (4, 6, 112, 112) and batched.is_contiguous()
    for i, img in enumerate(images):  # PIL bicubic -> to_tensor -> normalize, one image at a time
        pil = Image.fromarray(img)
        pil = pil if pil.size == (112, 112) else pil.resize((112, 112), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255
        dino = (x - torch.tensor(DINO_MEAN).view(3, 1, 1)) / torch.tensor(DINO_STD).view(3, 1, 1)
        assert torch.equal(batched[i], torch.cat([dino, (x - 0.5) / 0.5]))


def test_policy_act_and_act_batch(tiny, tmp_path):
    from vla.model.policy import VLAPolicy

    model, processor = tiny
    rng = np.random.default_rng(6)
    model.config.norm_stats = _stats(rng)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    policy = VLAPolicy.from_pretrained(tmp_path, unnorm_key="sim_b")
    obs = [Observation(images={"primary": img}, instruction=ins) for img, ins in zip(_images(rng, 3), INSTRUCTIONS)]
    singles = [policy.act(o) for o in obs]
    batched = policy.act_batch(obs)
    for s, b in zip(singles, batched):
        assert s.shape == (7,) and s.dtype == np.float32 and 0 <= s[6] <= 1
        np.testing.assert_array_equal(s, b)
    stats = policy.statistics.action
    assert np.all(singles[0][:6] >= stats.q01[:6] - 1e-6) and np.all(singles[0][:6] <= stats.q99[:6] + 1e-6)
    policy.reset("open the drawer")
    assert policy.act(Observation(images={"primary": obs[0].images["primary"]})).shape == (7,)


def test_parallel_decoding_chunks_bidirectional_one_pass():
    torch.manual_seed(0)
    model, processor = build_model("tiny", decoding="parallel", action_chunk=4)
    assert model.config.text_config.is_causal is False
    rng = np.random.default_rng(7)
    images = _images(rng, 3)
    batch = processor(images, INSTRUCTIONS)
    n_slots = 4 * 7
    assert (batch["input_ids"][:, -n_slots:] == model.config.pad_token_id).all()
    calls = []
    hook = model.language_model.model.register_forward_hook(lambda *a: calls.append(1))
    ids, normalized = model.predict_parallel(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    hook.remove()
    assert len(calls) == 1 and ids.shape == (3, n_slots) and normalized.shape == (3, 4, 7)
    lo, hi = model.config.action_token_begin_id, model.config.action_token_end_id
    assert ((ids >= lo) & (ids < hi)).all()
    for i in range(3):
        one = processor(images[i : i + 1], INSTRUCTIONS[i : i + 1])
        assert torch.equal(model.predict_parallel(one["input_ids"], one["pixel_values"], one["attention_mask"])[0][0],
                           ids[i])
    # bidirectional: the first slot's state depends on a later position
    emb, mask, _, slots = model.build_multimodal_inputs(batch["input_ids"][:1], batch["attention_mask"][:1],
                                                        batch["pixel_values"][:1])
    first = slots[0].nonzero()[0, 0]
    h1 = model.language_model.model(inputs_embeds=emb, attention_mask=mask).last_hidden_state
    emb2 = emb.clone()
    emb2[0, -1] += 1.0
    h2 = model.language_model.model(inputs_embeds=emb2, attention_mask=mask).last_hidden_state
    assert (h1[0, first] - h2[0, first]).abs().max() > 1e-4
    # slot inputs are zeroed placeholders
    assert emb[0, slots[0]].abs().max() == 0
    # training: token labels at the slots, loss decreases
    train = processor(images, INSTRUCTIONS, actions=rng.uniform(-1, 1, (3, 4, 7)))
    _train_a_few_steps(model, train)


def test_l1_head_wrist_image_and_proprio():
    torch.manual_seed(0)
    model, processor = build_model("tiny", decoding="parallel", action_chunk=2, action_head="l1",
                                   cameras=["primary", "wrist"], use_proprio=True, proprio_dim=5)
    rng = np.random.default_rng(8)
    images = [{"primary": a, "wrist": b} for a, b in zip(_images(rng, 3), _images(rng, 3))]
    proprio = rng.normal(size=(3, 5)).astype(np.float32)
    batch = processor(images, INSTRUCTIONS, proprio=proprio)
    assert batch["pixel_values"].shape == (3, 12, 112, 112) and batch["proprio"].shape == (3, 5)
    emb, mask, _, _ = model.build_multimodal_inputs(batch["input_ids"], batch["attention_mask"],
                                                    batch["pixel_values"], batch["proprio"])
    assert emb.shape[1] == batch["input_ids"].shape[1] + 2 * model.config.num_patches + 1  # 2 images + proprio
    ids, actions = model.predict_parallel(batch["input_ids"], batch["pixel_values"], batch["attention_mask"],
                                          batch["proprio"])
    assert ids is None and actions.shape == (3, 2, 7) and actions.abs().max() <= 1
    train = processor(images, INSTRUCTIONS, actions=rng.uniform(-1, 1, (3, 2, 7)), proprio=proprio)
    _train_a_few_steps(model, train)
    # policy over it: chunks (K, 7), statistics used for proprio and actions
    from vla.model.policy import VLAPolicy

    model.config.norm_stats = _stats(rng, proprio_dim=5)
    policy = VLAPolicy(model, processor, unnorm_key="sim_a")
    assert policy.chunk_size == 2 and policy.cameras == ("primary", "wrist")
    obs = Observation(images=images[0], proprio=rng.normal(size=5), instruction="lift")
    assert policy.act(obs).shape == (2, 7)


def _train_a_few_steps(model, batch, steps=6):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    assert losses[-1] < losses[0], losses


def test_policy_in_bfloat16_and_center_crop(tiny, tmp_path):
    from vla.model.policy import VLAPolicy

    model, processor = tiny
    model.config.norm_stats = {"only": _stats(np.random.default_rng(9))["sim_a"]}
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    policy = VLAPolicy.from_pretrained(tmp_path, dtype="bfloat16", center_crop=True)
    assert next(policy.model.parameters()).dtype == torch.bfloat16 and policy.unnorm_key == "only"
    img = np.random.default_rng(10).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    assert policy._crop(img).shape == (95, 95, 3)
    action = policy.act(Observation(images={"primary": img}, instruction="lift the cube"))
    assert action.shape == (7,) and action.dtype == np.float32 and np.all(np.isfinite(action))


def test_benchmark_model_level_path_runs_on_cpu():
    """The code `bench/inference.py --gpu-7b` runs on a GPU, exercised here with the tiny preset."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_inference",
                                                  Path(__file__).resolve().parents[1] / "bench" / "inference.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.bench_model_level(1, preset="tiny", device="cpu", dtype=torch.float32)
    assert set(out) == {"autoregressive_b1", "autoregressive_b8", "parallel_chunk8_b1"}
    assert out["parallel_chunk8_b1"]["actions_per_call"] == 8 and out["autoregressive_b8"]["actions_per_call"] == 8
    assert all(r["actions_per_s"] > 0 and r["actions_per_cpu_s"] > 0 for r in out.values())
    stages = bench._breakdown(bench._policy(image_size=56), bench._observations(2), repeats=1)
    assert stages["generated tokens"] == 7 and all(v > 0 for v in stages.values())


def test_presets_from_name_dataclass_dict_or_dictconfig():
    from omegaconf import OmegaConf

    from vla.model.presets import available_presets, build_preset, load_preset_config

    assert {"tiny", "openvla_7b"} <= set(available_presets())
    mc = load_preset_config("tiny", **{"llm.num_layers": 3})
    assert mc.llm.num_layers == 3
    for spec in (mc, OmegaConf.structured(mc), OmegaConf.to_container(OmegaConf.structured(mc))):
        config, processor = build_preset(spec)
        assert config.text_config.num_hidden_layers == 3 and processor.tokenizer is not None
    config, processor = build_preset("openvla_7b")
    assert config.text_config.vocab_size == 32064 and config.prompt_suffix_token_id == 29871
    assert processor.tokenizer is None  # the Llama-2 tokenizer comes with the checkpoint (vla-import copies it)


def test_autoregressive_chunks_decode_k_times_7_tokens():
    from vla.model.policy import VLAPolicy

    model, processor = build_model("tiny", action_chunk=3)
    stats = {"s": _stats(np.random.default_rng(11))["sim_a"]}
    policy = VLAPolicy(model, processor, norm_stats=stats)
    img = np.random.default_rng(12).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    batch = processor([img], ["lift"])
    assert model.generate_action_tokens(batch["input_ids"], batch["pixel_values"]).shape == (1, 21)
    train = processor([img], ["lift"], actions=np.zeros((1, 3, 7)))
    assert ((train["labels"] != -100).sum(-1) == 3 * 7 + 1).all()  # K*7 action tokens + EOS
    assert policy.act(Observation(images={"primary": img}, instruction="lift")).shape == (3, 7)


def test_action_queries_option_learned_slot_inputs(tmp_path):
    """`action_queries` (off by default): slot i gets learned query i instead of a zero input, so even the first
    layer's slot queries differ; the default model has no such parameter (checkpoints keep their layout)."""
    from vla.model.modeling_vla import VLAForActionPrediction

    plain, _ = build_model("tiny", decoding="parallel", action_chunk=2, action_head="l1")
    assert plain.action_queries is None and not any("action_queries" in k for k in plain.state_dict())
    with pytest.raises(ValueError, match="action_queries"):
        build_model("tiny", action_queries=True)  # autoregressive: no slots to embed
    model, processor = build_model("tiny", decoding="parallel", action_chunk=2, action_head="l1",
                                   action_queries=True)
    rng = np.random.default_rng(9)
    images = _images(rng, 3)
    batch = processor(images, INSTRUCTIONS)  # left padded: the slots sit at different offsets per sample
    emb, _, _, slots = model.build_multimodal_inputs(batch["input_ids"], batch["attention_mask"],
                                                     batch["pixel_values"])
    for i in range(3):
        torch.testing.assert_close(emb[i, slots[i]], model.action_queries.weight)
    # batched == alone, with the queries
    _, together = model.predict_parallel(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    one = processor(images[1:2], INSTRUCTIONS[1:2])
    _, alone = model.predict_parallel(one["input_ids"], one["pixel_values"], one["attention_mask"])
    torch.testing.assert_close(together[1], alone[0], atol=1e-5, rtol=1e-5)
    train = processor(images, INSTRUCTIONS, actions=rng.uniform(-1, 1, (3, 2, 7)))
    _train_a_few_steps(model, train)
    assert model.action_queries.weight.grad is not None
    model.save_pretrained(tmp_path)
    loaded = VLAForActionPrediction.from_pretrained(str(tmp_path))
    assert loaded.config.action_queries is True
    torch.testing.assert_close(loaded.action_queries.weight, model.action_queries.weight)


@pytest.mark.parametrize("backbone,text_layers", [("dinosiglip", 0), ("conv_keypoints", 0), ("conv_keypoints", 1)])
def test_vision_film_option_conditions_the_towers_on_the_instruction(tmp_path, backbone, text_layers):
    """`vision_film` (off by default): the prompt modulates the vision towers (ViTs or the conv keypoint
    backbone). A fresh model computes what the same weights compute without FiLM (zero-initialized modulation);
    after training, the instruction changes the vision tokens themselves; left padding still gives each sample
    what it computes alone; it round-trips."""
    from vla.model.modeling_vla import VLAForActionPrediction

    opts = dict(decoding="parallel", action_chunk=2, action_head="l1", action_queries=True, vision_backbone=backbone)
    plain, processor = build_model("tiny", seed=0, **opts)
    assert plain.film is None and not any("film" in k or "instruction_pooler" in k for k in plain.state_dict())
    model, _ = build_model("tiny", seed=0, vision_film=True, film_text_layers=text_layers, **opts)
    model.load_state_dict(plain.state_dict(), strict=False)  # same towers, Llama and head; FiLM still identity
    rng = np.random.default_rng(5)
    images = _images(rng, 3)
    batch = processor(images, INSTRUCTIONS)
    _, a = plain.predict_parallel(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    _, b = model.predict_parallel(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    torch.testing.assert_close(a, b)

    train = processor(images, INSTRUCTIONS, actions=rng.uniform(-1, 1, (3, 2, 7)))
    _train_a_few_steps(model, train)
    assert model.film.out.weight.grad is not None and model.film.out.weight.abs().sum() > 0
    model.eval()
    same_image = processor([images[0]] * 2, ["lift the red cube", "lift the blue cube"])
    emb, _, _, _ = model.build_multimodal_inputs(same_image["input_ids"], same_image["attention_mask"],
                                                 same_image["pixel_values"])
    n = model.config.num_patches
    assert not torch.allclose(emb[0, 1:1 + n], emb[1, 1:1 + n])  # the words reached the patches
    _, together = model.predict_parallel(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    one = processor(images[2:3], INSTRUCTIONS[2:3])
    _, alone = model.predict_parallel(one["input_ids"], one["pixel_values"], one["attention_mask"])
    torch.testing.assert_close(together[2], alone[0], atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = VLAForActionPrediction.from_pretrained(str(tmp_path)).eval()
    assert loaded.config.vision_film is True and loaded.config.film_text_layers == text_layers
    _, again = loaded.predict_parallel(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    torch.testing.assert_close(again, together)


@pytest.mark.parametrize("detector", [False, True])
def test_film_queries_run_one_conditioned_pass_per_instruction_vector(tmp_path, detector):
    """`film_queries=2`: the prompt pools to two vectors and the towers run once per vector, so a sentence that
    names two things can have one pass per thing. The prefix holds both passes' tokens; after training the two
    passes differ and both depend on the words; left padding gives each sample what it computes alone; it
    round-trips. `film_detector` adds one keypoint per pass, where the words match the maps. Without
    `vision_film` both options are refused."""
    from vla.model.modeling_vla import VLAForActionPrediction

    opts = dict(decoding="parallel", action_chunk=2, action_head="l1", action_queries=True,
                vision_backbone="conv_keypoints", num_keypoints=8, conv_channels=16, vision_film=True)
    with pytest.raises(ValueError, match="film_queries=2 needs vision_film"):
        build_model("tiny", seed=0, **{**opts, "vision_film": False}, film_queries=2)
    with pytest.raises(ValueError, match="film_detector=true needs vision_film=true"):
        build_model("tiny", seed=0, **{**opts, "vision_film": False}, film_detector=True)
    model, processor = build_model("tiny", seed=0, film_queries=2, film_text_layers=1, film_detector=detector, **opts)
    per_pass = 8 + int(detector)
    assert model.config.num_patches == 2 * per_pass
    rng = np.random.default_rng(5)
    images = _images(rng, 3)
    train = processor(images, INSTRUCTIONS, actions=rng.uniform(-1, 1, (3, 2, 7)))
    _train_a_few_steps(model, train)
    if detector:
        assert model.film.detect.weight.grad is not None and model.film.detect.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():  # a few steps barely move FiLM and the keypoints of random images sit near the centre:
        torch.nn.init.normal_(model.film.out.weight, std=0.5)  # trained-sized modulation, peaked keypoint maps
        model.vision_backbone.log_temperature.fill_(3.0)
    same_image = processor([images[0]] * 2, ["lift the red cube", "lift the blue cube"])
    emb, _, _, _ = model.build_multimodal_inputs(same_image["input_ids"], same_image["attention_mask"],
                                                 same_image["pixel_values"])
    first, second = emb[:, 1:1 + per_pass], emb[:, 1 + per_pass:1 + 2 * per_pass]
    assert emb.shape[1] == same_image["input_ids"].shape[1] + 2 * per_pass
    assert (first - second).abs().max() > 1e-3  # two passes, two views of one image
    assert min((first[0] - first[1]).abs().max(), (second[0] - second[1]).abs().max()) > 1e-4  # words reach both
    batch = processor(images, INSTRUCTIONS)
    _, together = model.predict_parallel(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    one = processor(images[2:3], INSTRUCTIONS[2:3])
    _, alone = model.predict_parallel(one["input_ids"], one["pixel_values"], one["attention_mask"])
    torch.testing.assert_close(together[2], alone[0], atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    loaded = VLAForActionPrediction.from_pretrained(str(tmp_path)).eval()
    assert loaded.config.film_queries == 2 and loaded.config.film_detector is detector
    _, again = loaded.predict_parallel(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
    torch.testing.assert_close(again, together)


def test_instruction_pooler_reads_word_order_only_with_text_layers():
    """The bag-of-words pool cannot tell "the red cube on the blue plate" from "the blue cube on the red plate"
    (the same tokens in another order); with `film_text_layers` the two pool to different vectors. Pads are
    never read."""
    from vla.model.film import InstructionPooler

    torch.manual_seed(0)
    tokens = torch.randn(1, 6, 32)
    swapped = tokens[:, [0, 4, 2, 3, 1, 5]]  # two "colour words" trade places
    mask = torch.ones(1, 6, dtype=torch.bool)
    bag, ordered = InstructionPooler(32).eval(), InstructionPooler(32, context_layers=1, max_positions=16).eval()
    for p in (bag.query, ordered.query):
        torch.nn.init.normal_(p)
    torch.testing.assert_close(bag(tokens, mask), bag(swapped, mask))
    assert (ordered(tokens, mask) - ordered(swapped, mask)).abs().max() > 1e-3
    padded = torch.cat([torch.randn(1, 3, 32), tokens], 1)  # left pads with junk embeddings
    pad_mask = torch.cat([torch.zeros(1, 3, dtype=torch.bool), mask], 1)
    torch.testing.assert_close(ordered(padded, pad_mask), ordered(tokens, mask), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="reads at most 16"):
        ordered(torch.randn(1, 20, 32), torch.ones(1, 20, dtype=torch.bool))


def test_conv_keypoint_backbone_gives_one_token_per_keypoint():
    """`vision_backbone=conv_keypoints`: a CNN + spatial softmax replaces the ViT towers (tiny models from scratch);
    each image contributes `num_keypoints` tokens whose coordinates follow what the image shows."""
    model, processor = build_model("tiny", image_size=56, vision_backbone="conv_keypoints", num_keypoints=8,
                                   conv_channels=16)
    assert model.config.num_patches == 8 and not hasattr(model.vision_backbone, "dino")
    assert model.vision_backbone.convs[0].weight.std() > 0.05  # PyTorch's fan-in init, not N(0, 0.02)
    img = np.zeros((56, 56, 3), np.uint8)
    left, right = img.copy(), img.copy()
    left[20:30, 2:12] = 255
    right[20:30, 44:54] = 255
    px = processor.pixel_values([left, right])
    tokens = model.vision_backbone(px)
    assert tokens.shape == (2, 8, model.config.vision_dim)
    assert not torch.allclose(tokens[0], tokens[1])  # a bright patch moved: the keypoints moved
    batch = processor([left], ["lift the cube"])
    assert model(**batch, labels=batch["input_ids"]).logits.shape[1] == batch["input_ids"].shape[1] + 8
    with pytest.raises(ValueError, match="vision_backbone"):
        build_model("tiny", vision_backbone="resnet")
