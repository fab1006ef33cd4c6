"""Issue 18, bad input: the words a checkpoint was trained on, and what `VLAPolicy` does with other words.

The checkpoint is built the way `vla-train` builds it (statistics from `get_dataset_statistics` over a real
tiny RLDS dataset, in the model config's `norm_stats` and `dataset_statistics.json`), around the tiny preset
with random weights: no training run is needed to test what the statistics carry and how the policy reads them.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from vla import Observation
from vla.core.statistics import ArrayStatistics, DatasetStatistics, select_statistics
from vla.data.statistics import VOCABULARY_KEY, instruction_vocabulary

#: The instructions `vla.data.synthetic.make_episode` cycles through (episode i: INSTRUCTIONS[i % 4]).
TRAINED = ("pick up the red cube", "push the block to the left", "open the drawer", "stack the blue cube")
IMAGE = np.full((32, 32, 3), 90, np.uint8)


@pytest.fixture(scope="module")
def stats(tmp_path_factory) -> DatasetStatistics:
    from vla.data.oxe import spec_for_directory
    from vla.data.statistics import get_dataset_statistics
    from vla.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("rlds")
    path = write_synthetic_dataset(root, "robot_v", splits={"train": 4}, num_steps=3, episodes_per_shard=4)
    return get_dataset_statistics(path, spec_for_directory(path), cache_dir=root / "cache")


def _save(model, processor, out, norm_stats: dict) -> None:
    """A checkpoint directory as training leaves one (statistics in config.json and beside it)."""
    model.config.norm_stats = norm_stats
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "dataset_statistics.json").write_text(json.dumps(norm_stats))


@pytest.fixture(scope="module")
def checkpoint(stats, tmp_path_factory):
    from vla.model.presets import build_model

    torch.set_num_threads(1)
    model, processor = build_model("tiny", seed=0)
    out = tmp_path_factory.mktemp("ckpt")
    _save(model, processor, out, {"robot_v": stats.to_dict()})
    legacy = tmp_path_factory.mktemp("legacy")  # statistics as written before the vocabulary existed
    old = stats.to_dict()
    old.pop(VOCABULARY_KEY)
    _save(model, processor, legacy, {"robot_v": old})
    return {"new": out, "legacy": legacy}


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "vla.model.policy"]


def test_statistics_record_the_training_vocabulary_in_the_openvla_layout(stats, checkpoint):
    vocab = stats.extra[VOCABULARY_KEY]
    assert vocab["instructions"] == sorted(TRAINED) and vocab["num_instructions"] == 4
    assert vocab["words"] == sorted({w for t in TRAINED for w in t.split()})
    saved = json.loads((checkpoint["new"] / "config.json").read_text())["norm_stats"]["robot_v"]
    assert saved[VOCABULARY_KEY] == vocab and {"action", "num_transitions", "num_trajectories"} <= set(saved)
    # OpenVLA's readers take norm_stats[key]["action"]; the extra key round-trips and selects as before
    assert select_statistics({"robot_v": saved}, None).extra[VOCABULARY_KEY] == vocab
    assert json.loads((checkpoint["new"] / "dataset_statistics.json").read_text())["robot_v"][VOCABULARY_KEY] == vocab


def test_vocabulary_lowercases_words_and_keeps_only_a_bounded_list_of_instructions():
    from vla.data import statistics

    v = instruction_vocabulary(["Pick up the RED cube.", "pick up the red cube", "  ", "put it in the bowl, please"])
    assert v["words"] == ["bowl", "cube", "in", "it", "pick", "please", "put", "red", "the", "up"]
    assert v["num_instructions"] == 3
    many = instruction_vocabulary(f"lift cube {i}" for i in range(statistics.MAX_STORED_INSTRUCTIONS + 1))
    assert many["instructions"] == [] and many["num_instructions"] == statistics.MAX_STORED_INSTRUCTIONS + 1
    assert "lift" in many["words"] and "1000" in many["words"]


def test_unknown_words_warn_once_per_instruction_naming_the_closest_known_words(checkpoint, caplog):
    from vla.model.policy import VLAPolicy

    policy = VLAPolicy.from_pretrained(checkpoint["new"])
    with caplog.at_level(logging.INFO, logger="vla.model.policy"):
        policy.reset("pick up the red cube")
        policy.reset("Pick up the RED cube!")  # case and punctuation are not new words
        assert _warnings(caplog) == []
        policy.reset("pick up the crimson cueb")
        policy.reset("pick up the crimson cueb")
        action = policy.act(Observation(images={"primary": IMAGE}))
    assert action.shape == (7,)  # warn is a fallback: the policy still acts
    (message,) = _warnings(caplog)
    assert "'crimson' (no close known word)" in message and "'cueb' (closest known: 'cube'" in message
    assert "sub-word pieces" in message and "unknown_words: warn" in message


def test_unknown_words_error_and_ignore(checkpoint, caplog):
    from vla.model.policy import VLAPolicy

    strict = VLAPolicy.from_pretrained(checkpoint["new"], unknown_words="error")
    strict.reset("open the drawer")
    for _ in range(2):  # refused every time, not only the first
        with pytest.raises(ValueError, match=r"'cueb' \(closest known: 'cube'"):
            strict.reset("stack the blue cueb")
    with pytest.raises(ValueError, match="never saw"):  # an instruction read from the observation is checked too
        strict.prepare([Observation(images={"primary": IMAGE}, instruction="close the drawer")])
    quiet = VLAPolicy.from_pretrained(checkpoint["new"], unknown_words="ignore")
    with caplog.at_level(logging.INFO, logger="vla.model.policy"):
        quiet.reset("stack the blue cueb")
    assert _warnings(caplog) == []
    with pytest.raises(ValueError, match=r"unknown_words='loud'; choose one of \['warn', 'error', 'ignore', 'drop'\]"):
        VLAPolicy.from_pretrained(checkpoint["new"], unknown_words="loud")


@pytest.mark.parametrize("instruction", ["", "   \n"])
def test_empty_instruction_raises_naming_the_fix(checkpoint, instruction):
    from vla.model.policy import VLAPolicy

    policy = VLAPolicy.from_pretrained(checkpoint["new"])
    policy.reset(instruction)
    fix = r"no instruction .*pass it to reset\(instruction\) or set Observation.instruction"
    with pytest.raises(ValueError, match=fix):
        policy.prepare([Observation(images={"primary": IMAGE}, instruction=instruction)])
    policy.reset("open the drawer")  # an all-whitespace observation instruction falls back to reset's
    assert policy.prepare([Observation(images={"primary": IMAGE}, instruction=" ")])["input_ids"].shape[0] == 1


def test_checkpoint_without_vocabulary_loads_and_is_not_checked(checkpoint, caplog):
    from vla.model.policy import VLAPolicy

    with caplog.at_level(logging.INFO, logger="vla.model.policy"):
        policy = VLAPolicy.from_pretrained(checkpoint["legacy"], unknown_words="error")
        policy.reset("pick up the crimson cueb")
        policy.reset("something else entirely")
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "no instruction vocabulary" in r.getMessage()]
    assert len(infos) == 1 and _warnings(caplog) == []


def test_a_mixture_knows_the_words_of_all_its_datasets():
    from vla.model.policy import InstructionChecker

    action = ArrayStatistics.compute(np.random.default_rng(0).normal(size=(10, 7)))
    a = DatasetStatistics(action=action, extra={VOCABULARY_KEY: instruction_vocabulary(["lift the cube"])})
    b = DatasetStatistics(action=action, extra={VOCABULARY_KEY: instruction_vocabulary(["open the drawer"])})
    checker = InstructionChecker({"a": a.to_dict(), "b": b}, "error")
    checker.check("open the cube")
    with pytest.raises(ValueError, match="'close'"):
        checker.check("close the drawer")
    # one dataset without a vocabulary: the union is unknown, so nothing is checked
    InstructionChecker({"a": a, "old": DatasetStatistics(action=action)}, "error").check("close the drawer")


def test_unknown_words_drop_feeds_the_model_only_known_words(checkpoint, caplog):
    from vla.model.policy import VLAPolicy
    from vla.policy import make_policy

    policy = VLAPolicy.from_pretrained(checkpoint["new"], unknown_words="drop")
    with caplog.at_level(logging.INFO, logger="vla.model.policy"):
        policy.reset("Set the RED cube down, now!")
    (message,) = _warnings(caplog)
    assert "'set'" in message and "dropped (unknown_words=drop): the model reads 'the RED cube,!'" in message
    dropped = policy.prepare([Observation(images={"primary": IMAGE})])
    clean = policy.prepare([Observation(images={"primary": IMAGE}, instruction="the RED cube,!")])
    assert torch.equal(dropped["input_ids"], clean["input_ids"])
    warned = VLAPolicy.from_pretrained(checkpoint["new"])  # warn: the unseen words still reach the model
    warned.reset("Set the RED cube down, now!")
    assert not torch.equal(warned.prepare([Observation(images={"primary": IMAGE})])["input_ids"], clean["input_ids"])
    with pytest.raises(ValueError, match="nothing of it is left to read"):
        policy.reset("crimson cueb")
    _, spec_policy = make_policy(f"vla:path={checkpoint['new']},unknown_words=drop")
    assert spec_policy.unknown_words == "drop"


def test_vla_policy_kind_takes_unknown_words(checkpoint):
    from vla.policy import make_policy
    from vla.policy.registry import PolicySpecError

    _, policy = make_policy(f"vla:path={checkpoint['new']},unknown_words=error")
    with pytest.raises(ValueError, match="'crimson'"):
        policy.reset("pick up the crimson cube")
    with pytest.raises(PolicySpecError, match=r"unknown_words='loud'; choose one of \['warn', 'error', 'ignore', 'drop'\]"):
        make_policy(f"vla:path={checkpoint['new']},unknown_words=loud")
