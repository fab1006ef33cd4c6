"""Torch loader: samples, normalization, windows, mixtures, determinism, workers, exact resume."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from vla.data.config import DataConfig, DatasetEntry, WindowConfig, to_data_config
from vla.data.loader import RLDSLoader, _Stream, resolve_sources, sampling_probabilities
from vla.data.rlds_reader import RLDSReader


@pytest.fixture(scope="module")
def stats_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("stats"))


def _cfg(dataset_dir, stats_dir, **kw) -> DataConfig:
    base = dict(datasets=[DatasetEntry(path=str(dataset_dir))], image_size=32, shuffle_buffer=24, num_workers=0,
                num_streams=2, chunk_size=4, statistics_cache=stats_dir, cameras=["primary", "wrist"])
    base.update(kw)
    return DataConfig(**base)


def _take(iterable, n):
    out = []
    for x in iterable:
        out.append(x)
        if len(out) == n:
            break
    return out


def _same(a: dict, b: dict) -> bool:
    if a["episode_id"] != b["episode_id"] or a["step"] != b["step"]:
        return False
    return all(np.array_equal(a["images"][c], b["images"][c]) for c in a["images"]) and np.array_equal(a["action"], b["action"])


def test_frame_samples_are_normalized_and_typed(tiny_rlds_dataset, stats_dir):
    loader = RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir))
    samples = _take(loader, 40)
    stats = loader.statistics["tiny_sim"]
    reader = RLDSReader(tiny_rlds_dataset)
    raw = {ep["episode_metadata"]["episode_id"].decode(): ep for ep in reader.episodes("train")}
    for s in samples:
        assert set(s["images"]) == {"primary", "wrist"}
        assert all(v.dtype == np.uint8 and v.shape == (32, 32, 3) for v in s["images"].values())
        assert s["action"].dtype == np.float32 and s["action"].shape == (7,)
        assert np.all(np.abs(s["action"][:6]) <= 1.0)
        ep = raw[s["episode_id"]]
        expected = stats.action.normalize(ep["steps"]["action"][s["step"]])
        np.testing.assert_array_equal(s["action"], expected)
        assert s["action"][6] == ep["steps"]["action"][s["step"]][6]  # absolute gripper is not normalized
        np.testing.assert_array_equal(s["proprio"], stats.proprio.normalize(ep["steps"]["observation"]["state"][s["step"]]))
        assert s["instruction"] == ep["steps"]["language_instruction"][0].decode()
        assert s["dataset"] == "tiny_sim"


def test_eval_pass_is_ordered_complete_and_unaugmented(tiny_rlds_dataset, stats_dir):
    cfg = _cfg(tiny_rlds_dataset, stats_dir)
    samples = list(RLDSLoader(cfg, train=False))
    reader = RLDSReader(tiny_rlds_dataset)
    episodes = list(reader.episodes("train", decode_images=True))
    assert len(samples) == sum(len(ep["steps"]["action"]) for ep in episodes)
    k = 0
    for ep in episodes:
        for t in range(len(ep["steps"]["action"])):
            assert samples[k]["step"] == t
            np.testing.assert_array_equal(samples[k]["images"]["primary"], ep["steps"]["observation"]["image"][t])
            k += 1
    cropped = next(iter(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir, center_crop=True), train=False)))
    assert not np.array_equal(cropped["images"]["primary"], samples[0]["images"]["primary"])


def test_augmentation_changes_images_deterministically(tiny_rlds_dataset, stats_dir):
    plain = _take(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir, image_augmentation=False)), 8)
    aug1 = _take(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir)), 8)
    aug2 = _take(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir)), 8)
    assert all(_same(a, b) for a, b in zip(aug1, aug2))
    assert [(s["episode_id"], s["step"]) for s in plain] == [(s["episode_id"], s["step"]) for s in aug1]
    assert not any(np.array_equal(p["images"]["primary"], a["images"]["primary"]) for p, a in zip(plain, aug1))


def test_seed_changes_order(tiny_rlds_dataset, stats_dir):
    a = _take(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir, seed=0)), 12)
    b = _take(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir, seed=1)), 12)
    assert [(s["episode_id"], s["step"]) for s in a] != [(s["episode_id"], s["step"]) for s in b]


def test_workers_give_the_same_stream_as_in_process(tiny_rlds_dataset, stats_dir):
    inproc = _take(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir, num_workers=0)), 30)
    two = _take(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir, num_workers=2)), 30)
    one = _take(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir, num_workers=1)), 30)
    threads = _take(RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir, frame_threads=3)), 30)
    assert all(_same(a, b) for a, b in zip(inproc, two))
    assert all(_same(a, b) for a, b in zip(inproc, one))
    assert all(_same(a, b) for a, b in zip(inproc, threads))


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("cut", [6, 9])  # at a chunk boundary (chunk_size 3 x 2 batches) and inside a chunk
def test_exact_resume_per_sample(tiny_rlds_dataset, stats_dir, num_workers, cut):
    cfg = _cfg(tiny_rlds_dataset, stats_dir, num_workers=num_workers, chunk_size=3)
    reference = _take(RLDSLoader(cfg), cut + 20)
    loader = RLDSLoader(cfg)
    it = iter(loader)
    first = [next(it) for _ in range(cut)]
    state = loader.state_dict()
    del it
    buf = io.BytesIO()
    torch.save(state, buf)  # a training checkpoint holds it
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    resumed = RLDSLoader(cfg)
    resumed.load_state_dict(state)
    rest = _take(resumed, 20)
    assert all(_same(a, b) for a, b in zip(first + rest, reference))


def test_exact_resume_batches(tiny_rlds_dataset, stats_dir):
    cfg = _cfg(tiny_rlds_dataset, stats_dir, chunk_size=4)
    ref = _take(RLDSLoader(cfg).batches(6, as_torch=False), 8)
    loader = RLDSLoader(cfg)
    got = []
    for batch in loader.batches(6, as_torch=False):  # batch size 6 is not a multiple of the chunk size 4
        got.append(batch)
        if len(got) == 3:
            break
    state = loader.state_dict()
    resumed = RLDSLoader(cfg)
    resumed.load_state_dict(state)
    got += _take(resumed.batches(6, as_torch=False), 5)
    for a, b in zip(got, ref):
        assert a["episode_id"] == b["episode_id"]
        np.testing.assert_array_equal(a["images"]["primary"], b["images"]["primary"])
    # batches of the chunk size hand chunks over as torch tensors
    batch = next(iter(RLDSLoader(cfg).batches()))
    assert batch["images"]["primary"].shape == (4, 32, 32, 3) and batch["images"]["primary"].dtype == torch.uint8
    assert batch["action"].dtype == torch.float32 and len(batch["instruction"]) == 4


def test_resume_refuses_another_setup(tiny_rlds_dataset, stats_dir):
    state = RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir)).state_dict()
    other = RLDSLoader(_cfg(tiny_rlds_dataset, stats_dir, seed=5, chunk_size=8))
    with pytest.raises(ValueError, match=r"seed: 0 vs 5.*chunk_size: 4 vs 8"):
        other.load_state_dict(state)


def test_windows_history_future_and_action_chunk(tiny_rlds_dataset, stats_dir):
    cfg = _cfg(tiny_rlds_dataset, stats_dir, window=WindowConfig(history=3, future_frames=1, action_chunk=4),
               image_augmentation=False, cameras=["primary"])
    loader = RLDSLoader(cfg)
    stats = loader.statistics["tiny_sim"]
    reader = RLDSReader(tiny_rlds_dataset)
    raw = {ep["episode_metadata"]["episode_id"].decode(): ep for ep in reader.episodes("train", decode_images=True)}
    seen_pad = seen_action_pad = False
    for s in _take(loader, 60):
        ep, t = raw[s["episode_id"]], s["step"]
        n = len(ep["steps"]["action"])
        assert s["images"]["primary"].shape == (4, 32, 32, 3) and s["proprio"].shape == (4, 8)
        assert s["action"].shape == (4, 7)
        frames = np.arange(t - 2, t + 2)
        np.testing.assert_array_equal(s["frame_is_pad"], (frames < 0) | (frames >= n))
        for k, f in enumerate(np.clip(frames, 0, n - 1)):
            np.testing.assert_array_equal(s["images"]["primary"][k], ep["steps"]["observation"]["image"][f])
        acts = np.arange(t, t + 4)
        np.testing.assert_array_equal(s["action_is_pad"], acts >= n)
        np.testing.assert_array_equal(s["action"], stats.action.normalize(ep["steps"]["action"][np.minimum(acts, n - 1)]))
        seen_pad |= bool(s["frame_is_pad"].any())
        seen_action_pad |= bool(s["action_is_pad"].any())
    assert seen_pad and seen_action_pad


def test_mixture_follows_weight_times_transitions(tmp_path_factory, tiny_rlds_dataset, stats_dir):
    from vla.data.synthetic import write_synthetic_dataset

    other = write_synthetic_dataset(tmp_path_factory.mktemp("mix"), "other_sim", num_episodes=3, num_steps=20,
                                    image_size=(32, 32), seed=3)
    cfg = _cfg(tiny_rlds_dataset, stats_dir, datasets=[DatasetEntry(path=str(tiny_rlds_dataset), weight=1.0),
                                                       DatasetEntry(path=str(other), weight=3.0)])
    sources = resolve_sources(cfg)
    probs = sampling_probabilities(sources)
    t = [s.statistics.num_transitions for s in sources]
    np.testing.assert_allclose(probs, np.array([t[0], 3 * t[1]]) / (t[0] + 3 * t[1]))
    stream = _Stream(0, sources, probs, cfg, True)
    items = stream.next_items(3000)  # no decoding: only the mixing
    frac = np.mean([it[0] == 1 for it in items])
    assert abs(frac - probs[1]) < 0.04
    assert len(stream.buffer) == cfg.shuffle_buffer // cfg.num_streams - 1  # bounded: full minus the one just handed out


def test_bridge_through_the_loader(bridge_dataset_dir, stats_dir):
    cfg = DataConfig(datasets=[DatasetEntry(name="bridge_orig", path=str(bridge_dataset_dir))], image_size=48, num_workers=0,
                     shuffle_buffer=16, chunk_size=4, statistics_cache=stats_dir)
    loader = RLDSLoader(cfg)
    assert loader.sources[0].spec.name == "bridge_orig"
    s = next(iter(loader))
    assert s["images"]["primary"].shape == (48, 48, 3) and s["action"].shape == (7,)
    assert s["instruction"]


def test_bad_config_errors(tiny_rlds_dataset, stats_dir, tmp_path):
    with pytest.raises(ValueError, match="names no dataset"):
        DataConfig()
    with pytest.raises(ValueError, match="multiple of data.num_workers"):
        DataConfig(datasets=[DatasetEntry(path="x")], num_workers=3, num_streams=2)
    with pytest.raises(Exception, match="shuffle_bufer"):
        to_data_config({"datasets": [{"path": "x"}], "shuffle_bufer": 3})
    from vla.data.synthetic import write_synthetic_dataset

    single = write_synthetic_dataset(tmp_path, "one_cam", num_episodes=2, cameras=("primary",), image_size=(16, 16))
    with pytest.raises(KeyError, match=r"wrist"):
        RLDSLoader(_cfg(single, stats_dir))


def test_training_loader_does_not_import_tensorflow(tiny_rlds_dataset, stats_dir):
    code = textwrap.dedent(f"""
        import sys
        from vla.data.config import DataConfig, DatasetEntry
        from vla.data.loader import RLDSLoader
        cfg = DataConfig(datasets=[DatasetEntry(path={str(tiny_rlds_dataset)!r})], image_size=32, num_workers=2,
                         shuffle_buffer=8, chunk_size=4, statistics_cache={stats_dir!r})
        batch = next(iter(RLDSLoader(cfg).batches()))
        assert batch["images"]["primary"].shape == (4, 32, 32, 3)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_datasets", "keras"))
        assert not bad, bad
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_hydra_data_configs_compose(tiny_rlds_dataset, stats_dir):
    from pathlib import Path

    from hydra import compose, initialize_config_module

    from vla.data.config import register_configs

    register_configs()
    names = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs" / "data").glob("*.yaml"))
    assert {"sim_pick", "bridge", "sim_pick_windows"} <= set(names)
    with initialize_config_module(config_module="configs", version_base=None):
        for name in names:
            cfg = to_data_config(compose(config_name=f"data/{name}").data)
            assert cfg.mixture is not None or cfg.datasets, name
        cfg = compose(config_name="data/sim_pick_windows", overrides=[
            f"data.datasets=[{{path: {tiny_rlds_dataset}}}]", "data.image_size=32", "data.num_workers=0",
            f"data.statistics_cache={stats_dir}", "data.shuffle_buffer=8"])
    sample = next(iter(RLDSLoader(cfg.data)))
    assert sample["images"]["wrist"].shape == (6, 32, 32, 3) and sample["action"].shape == (8, 7)


def test_only_the_requested_cameras_are_read(tiny_rlds_dataset, stats_dir):
    from dataclasses import replace

    from vla.data.sources import EpisodeSource

    cfg = _cfg(tiny_rlds_dataset, stats_dir, cameras=["primary"])
    source = resolve_sources(cfg)[0]
    source = replace(source, spec=replace(source.spec, optional_cameras=()))  # a spec whose wrist camera is required
    episodes = EpisodeSource(source, cfg)
    assert "steps/observation/image" in episodes.keys and "steps/observation/wrist_image" not in episodes.keys
    ep = episodes.load(0)
    assert set(ep["images"]) == {"primary"} and len(ep["images"]["primary"]) == len(ep["action"])


def test_rotated_datasets_are_turned_upright(tiny_rlds_dataset, stats_dir):
    """A spec with `rotate_images_180` (frames stored upside down) has them rotated back when decoded."""
    from dataclasses import replace

    cfg = _cfg(tiny_rlds_dataset, stats_dir, cameras=["primary"])
    source = resolve_sources(cfg)[0]
    upright = next(iter(RLDSLoader(cfg, train=False, sources=[source])))
    rotated_source = replace(source, spec=replace(source.spec, rotate_images_180=True))
    turned = next(iter(RLDSLoader(cfg, train=False, sources=[rotated_source])))
    np.testing.assert_array_equal(turned["images"]["primary"], upright["images"]["primary"][::-1, ::-1])
