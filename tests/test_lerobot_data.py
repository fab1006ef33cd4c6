"""LeRobot datasets through our reader, loader, writer and conversions (LeRobot's own checks: test_lerobot_oracle.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lerobot_env import smooth_frames, write_v21
from vla.core.episode import Episode, EpisodeMetadata
from vla.data.augmentation import resize_image
from vla.data.config import DataConfig, DatasetEntry, WindowConfig
from vla.data.lerobot.meta import LeRobotFormatError
from vla.data.lerobot.reader import LeRobotReader
from vla.data.lerobot.spec import ActionSpaceError
from vla.data.lerobot.writer import LeRobotWriter
from vla.data.loader import RLDSLoader, resolve_sources

H, W, FPS = 32, 40, 10
LENGTHS = (7, 9, 6, 8)


def _episodes(seed: int = 0) -> list[Episode]:
    rng = np.random.default_rng(seed)
    out = []
    for e, t in enumerate(LENGTHS):
        action = np.c_[rng.normal(0, 0.02, (t, 6)), rng.integers(0, 2, (t, 1))].astype(np.float32)
        out.append(Episode(images={"primary": smooth_frames(e, t, H, W), "wrist": smooth_frames(e, t, H, W, 1)},
                           state=rng.normal(size=(t, 8)).astype(np.float32), action=action,
                           instruction=f"put block {e % 2} in the bowl", metadata=EpisodeMetadata(str(e))))
    return out


def _write(root, video: bool):
    with LeRobotWriter(root, fps=FPS, cameras={"primary": (H, W), "wrist": (H, W)}, state_dim=8, video=video,
                       episodes_per_file=3) as w:  # two data files and mp4s: episodes at offsets inside a file
        for ep in _episodes():
            w.write(ep)
    return root


@pytest.fixture(scope="module")
def video_ds(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("lerobot") / "pick_video", video=True)


@pytest.fixture(scope="module")
def image_ds(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("lerobot") / "pick_image", video=False)


@pytest.fixture(scope="module")
def stats_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("stats"))


def _cfg(path, stats_dir, **kw) -> DataConfig:
    base = dict(datasets=[DatasetEntry(path=str(path))], image_size=H, shuffle_buffer=16, num_workers=0,
                num_streams=2, chunk_size=4, statistics_cache=stats_dir, cameras=["primary", "wrist"],
                image_augmentation=False)
    base.update(kw)
    return DataConfig(**base)


def _take(it, n):
    out = []
    for x in it:
        out.append(x)
        if len(out) == n:
            break
    return out


# ------------------------------------------------------------------------------------------------ reading
@pytest.mark.parametrize("kind", ["image", "video", "v2.1"])
def test_reader_gives_back_what_was_written(kind, image_ds, video_ds, tmp_path):
    episodes = _episodes()
    root = {"image": image_ds, "video": video_ds}.get(kind)
    if root is None:
        root = tmp_path / "v21"
        write_v21(root, episodes, fps=FPS)
    reader = LeRobotReader(root)
    assert reader.meta.version == ("v2.1" if kind == "v2.1" else "v3.0") and len(reader) == len(episodes)
    cams = ["observation.images.primary", "observation.images.wrist"]
    for pos, ep in enumerate(episodes):
        raw = reader.read_episode(pos, cameras=cams)
        steps = raw["steps"]
        np.testing.assert_array_equal(steps["action"], ep.action)
        np.testing.assert_array_equal(steps["observation"]["observation.state"], ep.state)
        assert list(steps["language_instruction"]) == [ep.instruction] * len(ep.action)
        for key, cam in zip(cams, ("primary", "wrist")):
            frames = steps["observation"][key]
            if kind == "image":  # PNG (decoded by FFmpeg's decoder): exact
                np.testing.assert_array_equal(np.stack([b.to_array() for b in frames]), ep.images[cam])
                continue
            got = np.stack(frames).astype(np.float64)
            err = np.abs(got - ep.images[cam]).mean(axis=(1, 2, 3))
            assert err.max() < 6, err  # lossy codec, right frame
            if len(got) > 1:  # and not the neighbouring one: alignment of the episode's segment in the file
                shifted = np.abs(got[1:] - ep.images[cam][:-1]).mean(axis=(1, 2, 3))
                assert (shifted > 2 * err[1:]).all()


def test_loader_trains_on_a_lerobot_dataset(video_ds, stats_dir):
    loader = RLDSLoader(_cfg(video_ds, stats_dir))
    stats = loader.statistics["pick_video"]
    assert stats.num_transitions == sum(LENGTHS) and stats.num_trajectories == len(LENGTHS)
    episodes = {str(e): ep for e, ep in enumerate(_episodes())}
    samples = _take(loader, 40)
    for s in samples:
        ep = episodes[s["episode_id"]]
        np.testing.assert_array_equal(s["action"], stats.action.normalize(ep.action[s["step"]]))
        np.testing.assert_array_equal(s["proprio"], stats.proprio.normalize(ep.state[s["step"]]))
        assert s["instruction"] == ep.instruction and s["dataset"] == "pick_video"
        assert s["images"]["primary"].shape == (H, H, 3) and s["images"]["primary"].dtype == np.uint8  # square, resized
        expected = resize_image(ep.images["wrist"][s["step"]], (H, H)).astype(float)
        assert np.abs(s["images"]["wrist"].astype(float) - expected).mean() < 6
    assert len({(s["episode_id"], s["step"]) for s in samples}) > 20  # of 30 steps: shuffled over episodes


def test_windows_mixture_with_rlds_and_exact_resume(video_ds, image_ds, tiny_rlds_dataset, stats_dir):
    entries = [DatasetEntry(path=str(video_ds)), DatasetEntry(path=str(tiny_rlds_dataset), weight=2.0),
               DatasetEntry(path=str(image_ds), name="pick_png")]
    cfg = _cfg(video_ds, stats_dir, datasets=entries, window=WindowConfig(history=2, action_chunk=3), num_workers=2)
    sources = resolve_sources(cfg)
    assert [(s.name, s.format) for s in sources] == [("pick_video", "lerobot"), ("tiny_sim", "rlds"), ("pick_png", "lerobot")]
    reference = _take(RLDSLoader(cfg), 30)
    assert {s["dataset"] for s in reference} == {"pick_video", "tiny_sim", "pick_png"}
    assert reference[0]["images"]["primary"].shape == (2, H, H, 3) and reference[0]["action"].shape == (3, 7)
    loader = RLDSLoader(cfg)
    it = iter(loader)
    first = [next(it) for _ in range(13)]
    state = loader.state_dict()
    del it
    resumed = RLDSLoader(cfg)
    resumed.load_state_dict(state)
    for a, b in zip(first + _take(resumed, 17), reference):
        assert (a["dataset"], a["episode_id"], a["step"]) == (b["dataset"], b["episode_id"], b["step"])
        np.testing.assert_array_equal(a["images"]["primary"], b["images"]["primary"])
        np.testing.assert_array_equal(a["action"], b["action"])


def test_split_slices_and_camera_override(image_ds, stats_dir):
    cfg = _cfg(image_ds, stats_dir, split="train[:50%]", cameras=["primary"],
               datasets=[DatasetEntry(path=str(image_ds), lerobot={"cameras": {"primary": "observation.images.wrist"}})])
    loader = RLDSLoader(cfg, train=False)
    samples = list(loader)
    assert len(samples) == LENGTHS[0] + LENGTHS[1]
    ep0 = _episodes()[0]
    np.testing.assert_array_equal(samples[0]["images"]["primary"], resize_image(ep0.images["wrist"][0], (H, H)))


# ------------------------------------------------------------------------------------------------- errors
def test_clear_errors_for_bad_datasets(image_ds, video_ds, tmp_path, stats_dir):
    with pytest.raises(LeRobotFormatError, match=r"meta/info.json does not exist.*hf download"):
        resolve_sources(_cfg(tmp_path, stats_dir, datasets=[DatasetEntry(path=str(tmp_path), format="lerobot")]))
    old = tmp_path / "old"
    shutil.copytree(image_ds, old)
    info = json.loads((old / "meta/info.json").read_text())
    (old / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(LeRobotFormatError, match=r"codebase_version 'v1.6'.*convert_dataset_v20_to_v21"):
        resolve_sources(_cfg(old, stats_dir))
    bad_cam = DatasetEntry(path=str(image_ds), lerobot={"cameras": {"wrist": "observation.images.gripper"}})
    with pytest.raises(LeRobotFormatError, match=r"no feature 'observation.images.gripper'.*lerobot.cameras.wrist"):
        resolve_sources(_cfg(image_ds, stats_dir, datasets=[bad_cam]))
    no_state = DatasetEntry(path=str(image_ds), lerobot={"state": "observation.joints"})
    with pytest.raises(LeRobotFormatError, match=r"no feature 'observation.joints'.*lerobot.state"):
        resolve_sources(_cfg(image_ds, stats_dir, datasets=[no_state]))
    broken = tmp_path / "broken"
    shutil.copytree(video_ds, broken)
    mp4 = broken / "videos/observation.images.wrist/chunk-000/file-001.mp4"
    mp4.write_bytes(b"\x00" * 64 + mp4.read_bytes()[2000:])
    with pytest.raises(LeRobotFormatError, match=r"cannot decode .*file-001.mp4.*re-encode"):
        LeRobotReader(broken).read_episode(3, cameras=["observation.images.wrist"])
    # v2.1: a video shorter than its episode, and a data file that disagrees with the episode index
    from vla.data.lerobot.video import VideoEncoder

    v21 = tmp_path / "v21"
    write_v21(v21, _episodes(), fps=FPS)
    short = v21 / "videos/chunk-000/observation.images.primary/episode_000001.mp4"
    enc = VideoEncoder(short, FPS, (H, W), codec="h264")
    enc.add(_episodes()[1].images["primary"][:5])
    enc.close()
    with pytest.raises(LeRobotFormatError, match=r"episode_000001.mp4: no frame at 4 of 9 timestamps \(first: t=0.5000 s\)"):
        LeRobotReader(v21).read_episode(1, cameras=["observation.images.primary"])
    lines = (v21 / "meta/episodes.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace('"length": 6', '"length": 7')
    (v21 / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(LeRobotFormatError, match=r"episode_000002.parquet: episode 2 has 6 frames, the episode index says 7"):
        LeRobotReader(v21).read_episode(2)


def _so101_like(root, tmp_path):
    """A copy of `root` whose action is 6 joint positions named like an SO-101's."""
    out = tmp_path / "so101"
    shutil.copytree(root, out)
    info = json.loads((out / "meta/info.json").read_text())
    names = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]
    info["features"]["action"]["names"] = names + ["extra.pos"]
    (out / "meta/info.json").write_text(json.dumps(info))
    return out


def test_joint_position_actions_are_refused_with_the_way_out(image_ds, tmp_path, stats_dir):
    so101 = _so101_like(image_ds, tmp_path)
    with pytest.raises(ActionSpaceError, match=r"joint positions.*action_transform=vla.data.lerobot.kinematics"):
        resolve_sources(_cfg(so101, stats_dir))
    # the documented hook: a two-joint planar arm in MJCF, the state as measured joints and the action as targets
    mjcf = tmp_path / "arm.xml"
    mjcf.write_text("""<mujoco><worldbody><body><joint name="a" type="hinge" axis="0 0 1"/><geom type="capsule" size=".02" fromto="0 0 0 .5 0 0"/>
      <body pos=".5 0 0"><joint name="b" type="hinge" axis="0 0 1"/><geom type="capsule" size=".02" fromto="0 0 0 .5 0 0"/>
      <site name="tip" pos=".5 0 0"/></body></body></worldbody></mujoco>""")
    from vla.data.lerobot.kinematics import joint_positions_to_eef_delta

    fn = joint_positions_to_eef_delta(str(mjcf), "tip", joints=["a", "b"], gripper_index=2, gripper_range=[0, 2])
    steps = fn({"observation": {"observation.state": np.array([[0.0, 0.0, 0.0]])}, "action": np.array([[np.pi / 2, 0.0, 1.0]])})
    np.testing.assert_allclose(steps["action"][0], [-1.0, 1.0, 0, 0, 0, np.pi / 2, 0.5], atol=1e-6)  # tip (1,0) -> (0,1)


def test_gripper_outside_the_contract_is_refused_and_rescaled_by_the_hook(tmp_path, stats_dir):
    root = tmp_path / "pm1"
    with LeRobotWriter(root, fps=FPS, cameras={"primary": (H, W)}, state_dim=8, video=False) as w:
        for ep in _episodes():
            w.write(Episode(images={"primary": ep.images["primary"]}, state=ep.state, action=ep.action,
                            instruction=ep.instruction, metadata=ep.metadata))
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in (root / "data").rglob("*.parquet"):  # the gripper as -1 open / +1 closed, as LIBERO's raw data has it
        t = pq.read_table(f)
        a = np.stack(t.column("action").to_pylist()).astype(np.float32)
        a[:, 6] = 1 - 2 * a[:, 6]
        pq.write_table(t.set_column(t.schema.get_field_index("action"), "action",
                                    pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), 7)), f)
    with pytest.raises(ActionSpaceError, match=r"gripper .* ranges -1..1.*rescale_gripper"):
        resolve_sources(_cfg(root, stats_dir, cameras=["primary"]))
    entry = DatasetEntry(path=str(root), lerobot={"action_transform": "vla.data.lerobot.spec:rescale_gripper",
                                                  "action_transform_args": {"closed": 1, "open": -1}})
    samples = list(RLDSLoader(_cfg(root, stats_dir, cameras=["primary"], datasets=[entry]), train=False))
    np.testing.assert_array_equal(np.stack([s["action"][6] for s in samples]),
                                  np.concatenate([ep.action[:, 6] for ep in _episodes()]))


def test_transform_hook_through_the_loader(tmp_path, stats_dir):
    """A 7-joint-target dataset (6 arm joints + gripper) trains through the kinematics hook."""
    rng = np.random.default_rng(1)
    root = tmp_path / "joints"
    with LeRobotWriter(root, fps=FPS, cameras={"primary": (H, W)}, state_dim=7, video=False) as w:
        for e, t in enumerate(LENGTHS[:2]):
            state = rng.uniform(-1, 1, (t, 7)).astype(np.float32)
            target = (state + rng.normal(0, 0.1, (t, 7))).astype(np.float32)
            target[:, 6] = state[:, 6] = rng.uniform(0, 1, t)
            w.write(Episode(images={"primary": smooth_frames(e, t, H, W)}, state=state, action=target,
                            instruction="wave", metadata=EpisodeMetadata(str(e))))
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["action"]["names"] = [f"joint_{i}.pos" for i in range(6)] + ["gripper.pos"]
    (root / "meta/info.json").write_text(json.dumps(info))
    mjcf = tmp_path / "arm6.xml"
    bodies = "".join(f'<body pos=".1 0 0"><joint name="j{i}" type="hinge" axis="0 {i % 2} {1 - i % 2}"/><geom size=".01"/>'
                     for i in range(6))
    mjcf.write_text(f"<mujoco><worldbody>{bodies}<site name='ee'/>{'</body>' * 6}</worldbody></mujoco>")
    args = {"mjcf": str(mjcf), "site": "ee", "gripper_index": 6, "gripper_range": [0, 1]}
    with pytest.raises(ActionSpaceError, match="joint positions"):
        resolve_sources(_cfg(root, stats_dir, cameras=["primary"]))
    entry = DatasetEntry(path=str(root), lerobot={
        "action_transform": "vla.data.lerobot.kinematics:joint_positions_to_eef_delta", "action_transform_args": args})
    loader = RLDSLoader(_cfg(root, stats_dir, cameras=["primary"], datasets=[entry]), train=False)
    from vla.data.lerobot.kinematics import joint_positions_to_eef_delta

    fn = joint_positions_to_eef_delta(**args)
    reader = LeRobotReader(root)
    expected = np.concatenate([fn(reader.read_episode(p)["steps"])["action"] for p in range(2)])
    got = np.stack([s["action"] for s in loader])
    np.testing.assert_array_equal(got, loader.statistics["joints"].action.normalize(expected))
    assert np.abs(expected[:, :3]).max() > 0.01  # real motion, not zeros


# -------------------------------------------------------------------------------------------- conversion
def test_convert_both_ways_round_trips(video_ds, tiny_rlds_dataset, tmp_path):
    from vla.data.lerobot.convert import lerobot_to_rlds, rlds_to_lerobot
    from vla.data.rlds_reader import RLDSReader

    out, n = lerobot_to_rlds(video_ds, tmp_path / "rlds", "pick", image_size=(H, W))
    assert n == len(LENGTHS) and out == tmp_path / "rlds/pick/1.0.0"
    back = list(RLDSReader(out).episodes("train", decode_images=True))
    for ep, raw in zip(_episodes(), back):
        np.testing.assert_array_equal(raw["steps"]["action"], ep.action)
        np.testing.assert_array_equal(raw["steps"]["observation"]["state"], ep.state)
        assert raw["steps"]["language_instruction"][0].decode() == ep.instruction
        assert np.abs(raw["steps"]["observation"]["wrist_image"].astype(float) - ep.images["wrist"]).mean() < 8

    root, n = rlds_to_lerobot(tiny_rlds_dataset, tmp_path / "tiny_lerobot", fps=5)
    reader = LeRobotReader(root)
    src = RLDSReader(tiny_rlds_dataset)
    assert reader.meta.info["splits"] == {"train": "0:6", "val": "6:8"} and n == 8
    for pos, raw in enumerate(list(src.episodes("train", decode_images=True)) + list(src.episodes("val", decode_images=True))):
        got = reader.read_episode(pos, cameras=["observation.images.primary"])["steps"]
        np.testing.assert_array_equal(got["action"], raw["steps"]["action"])
        np.testing.assert_array_equal(got["observation"]["observation.state"], raw["steps"]["observation"]["state"])
        assert got["language_instruction"][0] == raw["steps"]["language_instruction"][0].decode()
        img = np.stack(got["observation"]["observation.images.primary"]).astype(float)
        assert np.abs(img - raw["steps"]["observation"]["image"]).mean() < 12  # AV1 at crf 30 on 32-px noise-like frames


def test_vla_convert_dispatches_the_dataset_formats(tiny_rlds_dataset, tmp_path):
    import subprocess
    import sys

    run = [sys.executable, "-m", "robot_bridge.cli.convert", "hydra.run.dir=" + str(tmp_path / "hydra")]
    r = subprocess.run(run + ["input_format=rlds", "output_format=lerobot", f"input={tiny_rlds_dataset}",
                              f"output_dir={tmp_path}", "video=false", "rate_hz=5"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    reader = LeRobotReader(tmp_path / "tiny_sim")  # name defaults to the RLDS dataset's
    assert reader.meta.fps == 5 and reader.meta.features["observation.images.primary"]["dtype"] == "image"
    r = subprocess.run(run + ["input_format=lerobot", "output_format=lerobot", f"input={tmp_path / 'tiny_sim'}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "lerobot -> rlds, rlds -> lerobot; got input_format=lerobot" in r.stdout + r.stderr


def test_vla_train_fine_tunes_on_a_lerobot_directory(video_ds, tmp_path):
    """The tiny VLA trains a few steps on a LeRobot (AV1 video) dataset and saves a policy carrying its statistics."""
    from vla.core.types import Observation
    from vla.model.policy import VLAPolicy, statistics_keys
    from vla.train import run

    small = {"image_size": 28, "dino": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "mlp_dim": 64},
             "siglip": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "mlp_dim": 64},
             "llm": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 128}}
    final = run({"model": small, "output_dir": str(tmp_path / "run"),
                 "trainer": {"steps": 3, "batch_size": 4, "save_every": 3, "val_every": 3, "val_batches": 1,
                             "log_every": 1, "progress": False, "num_threads": 1},
                 "data": {"datasets": [{"path": str(video_ds)}], "num_workers": 0, "shuffle_buffer": 16, "chunk_size": 4,
                          "statistics_cache": str(tmp_path / "stats"), "image_augmentation": False}})
    assert statistics_keys(final) == ["pick_video"]  # the folder name is the unnorm_key
    saved = json.loads((final / "dataset_statistics.json").read_text())["pick_video"]
    actions = np.concatenate([ep.action for ep in _episodes()])
    np.testing.assert_allclose(saved["action"]["q99"], np.quantile(actions.astype(np.float64), 0.99, axis=0), rtol=1e-6)
    policy = VLAPolicy.from_pretrained(final, unnorm_key="pick_video")
    ep = _episodes()[0]
    action = policy.act(Observation(images={"primary": ep.images["primary"][0]}, proprio=ep.state[0],
                                    instruction=ep.instruction))
    assert action.shape == (7,) and np.isfinite(action).all()
