"""The loader hands out model-ready batches: the processor's per-sample transform runs where samples are made
(the workers), the collator only pads, and each data-parallel rank reads only its own share of the stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla.data.config import DataConfig, DatasetEntry
from vla.data.loader import RLDSLoader, Shard


@pytest.fixture(scope="module")
def stats_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("stats"))


@pytest.fixture(scope="module")
def processor():
    from vla.model.presets import build_preset

    torch.set_num_threads(1)
    return build_preset("tiny", image_size=28)[1]


def _cfg(dataset_dir, stats_dir, **kw) -> DataConfig:
    base = dict(datasets=[DatasetEntry(path=str(dataset_dir))], image_size=32, shuffle_buffer=24, num_workers=0,
                num_streams=2, chunk_size=4, statistics_cache=stats_dir, cameras=["primary"])
    base.update(kw)
    return DataConfig(**base)


def _take(iterable, n):
    out = []
    for x in iterable:
        out.append(x)
        if len(out) == n:
            break
    return out


def _model_ready(cfg, processor, **kw) -> RLDSLoader:
    return RLDSLoader(cfg, transform=processor.transform, collate=processor.collator(), **kw)


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# a batch size that does not divide the chunk size: samples are padded in the training process; one that does:
# the workers hand over whole padded batches
@pytest.mark.parametrize("chunk_size,batch_size", [(4, 6), (8, 4)])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_equal_the_processor_on_raw_samples(tiny_rlds_dataset, stats_dir, processor, num_workers, chunk_size,
                                                    batch_size):
    """Same tokens, labels, pixels and actions as collating raw samples on the training thread."""
    cfg = _cfg(tiny_rlds_dataset, stats_dir, num_workers=num_workers, chunk_size=chunk_size)
    raw = _take(RLDSLoader(cfg), 3 * batch_size)
    batches = _take(_model_ready(cfg, processor).batches(batch_size), 3)
    for i, batch in enumerate(batches):
        assert set(batch) == {"input_ids", "attention_mask", "labels", "pixel_values", "actions"}
        assert _equal(batch, processor.collate(raw[batch_size * i:batch_size * (i + 1)]))
    samples = _take(_model_ready(cfg, processor), 5)  # iterating gives the unpadded per-sample inputs
    for sample, r in zip(samples, raw):
        assert _equal(sample, processor.transform(r))
        assert sample["pixel_values"].shape == (6, 28, 28) and sample["input_ids"].ndim == 1


def test_collator_only_pads(processor):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    actions = rng.uniform(-1, 1, (2, 7)).astype(np.float32)
    pieces = [processor.encode(img, ins, a[None]) for img, ins, a in zip(images, ["pick", "open the top drawer"], actions)]
    batch = processor.collator()(pieces)
    lengths = [len(p["input_ids"]) for p in pieces]
    assert batch["input_ids"].shape == (2, max(lengths))
    for i, n in enumerate(lengths):
        assert torch.equal(batch["input_ids"][i, :n], pieces[i]["input_ids"])
        assert torch.equal(batch["labels"][i, :n], pieces[i]["labels"])
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (max(lengths) - n)
        assert (batch["input_ids"][i, n:] == processor.pad_token_id).all() and (batch["labels"][i, n:] == -100).all()
    assert torch.equal(batch["pixel_values"], torch.stack([p["pixel_values"] for p in pieces]))
    assert _equal(batch, processor(images, ["pick", "open the top drawer"], actions=actions))


def _keys(batch: dict) -> list[tuple[str, int]]:
    return list(zip(batch["episode_id"], batch["step"].tolist()))


@pytest.mark.parametrize("chunk_size,per_rank,num_workers", [(4, 2, 0), (2, 2, 0), (2, 3, 0), (2, 2, 2)])
def test_ranks_get_their_slice_of_the_global_batches(tiny_rlds_dataset, stats_dir, chunk_size, per_rank, num_workers):
    world = 2
    cfg = _cfg(tiny_rlds_dataset, stats_dir, chunk_size=chunk_size, num_workers=num_workers)
    steps = 5
    global_batches = _take(RLDSLoader(cfg).batches(per_rank * world, as_torch=False), steps)
    for rank in range(world):
        mine = _take(RLDSLoader(cfg, shard=Shard(rank, world, per_rank)).batches(per_rank, as_torch=False), steps)
        for g, m in zip(global_batches, mine):
            sl = slice(rank * per_rank, (rank + 1) * per_rank)
            assert _keys(m) == _keys(g)[sl]
            np.testing.assert_array_equal(m["images"]["primary"], g["images"]["primary"][sl])
            np.testing.assert_array_equal(m["action"], g["action"][sl])


def test_a_rank_runs_only_the_streams_it_owns(tiny_rlds_dataset, stats_dir, processor):
    """chunk_size = per-rank batch and num_streams a multiple of the world size: each stream has one owner."""
    cfg = _cfg(tiny_rlds_dataset, stats_dir, chunk_size=2, num_streams=4)
    for rank in range(2):
        shard = Shard(rank, 2, per_rank=2)
        assert [s for s in range(4) if shard.runs(s, 4, 2)] == [rank, rank + 2]
        loader = _model_ready(cfg, processor, shard=shard)
        _take(loader.batches(2), 6)
        emitted = [st["emitted"] for st in loader.state_dict()["streams"]]
        assert [e > 0 for e in emitted] == [s % 2 == rank for s in range(4)]
    # a chunk split between ranks is drawn by both, each decoding and transforming its own half
    assert Shard(0, 2, 2).positions(0, 4) == [0, 1] and Shard(1, 2, 2).positions(0, 4) == [2, 3]


@pytest.mark.parametrize("chunk_size,per_rank", [(4, 3), (8, 2)])  # samples padded here / ready batches
def test_sharded_resume_is_exact(tiny_rlds_dataset, stats_dir, processor, chunk_size, per_rank):
    cfg = _cfg(tiny_rlds_dataset, stats_dir, chunk_size=chunk_size)
    shard = Shard(1, 2, per_rank=per_rank)
    reference = _take(_model_ready(cfg, processor, shard=shard).batches(per_rank), 7)
    loader = _model_ready(cfg, processor, shard=shard)
    got = _take(loader.batches(per_rank), 3)  # (8, 2): a rank's 4 samples of a chunk are 2 batches: stop inside one
    state = loader.state_dict()
    resumed = _model_ready(cfg, processor, shard=shard)
    resumed.load_state_dict(state)
    got += _take(resumed.batches(per_rank), 4)
    assert all(_equal(a, b) for a, b in zip(got, reference))


def test_resume_refuses_another_shard(tiny_rlds_dataset, stats_dir, processor):
    cfg = _cfg(tiny_rlds_dataset, stats_dir, chunk_size=4)
    state = _model_ready(cfg, processor, shard=Shard(1, 2, per_rank=3)).state_dict()
    with pytest.raises(ValueError, match=r"shard: \[1, 2, 3\] vs \[0, 2, 3\]"):
        _model_ready(cfg, processor, shard=Shard(0, 2, per_rank=3)).load_state_dict(state)
    with pytest.raises(ValueError, match=r"shard: \[1, 2, 3\] vs None"):
        RLDSLoader(cfg).load_state_dict(state)


def test_model_ready_loader_needs_a_collate_and_whole_ordered_passes(tiny_rlds_dataset, stats_dir, processor):
    cfg = _cfg(tiny_rlds_dataset, stats_dir)
    with pytest.raises(ValueError, match="needs `collate`"):
        next(iter(RLDSLoader(cfg, transform=processor.transform).batches(2)))
    with pytest.raises(ValueError, match="not sharded"):
        RLDSLoader(cfg, train=False, shard=Shard(0, 2, 1))
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        Shard(2, 2, 1)
