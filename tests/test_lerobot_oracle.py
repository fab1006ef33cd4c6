"""LeRobot itself as the oracle: datasets `LeRobotDataset` writes are read by us value for value, and datasets we
write load in `LeRobotDataset` with the values we wrote. LeRobot 0.4.4 runs in .venv-lerobot (tests/lerobot_env.py)."""

from __future__ import annotations

import numpy as np
import pytest

from lerobot_env import run_lerobot, smooth_frames, unavailable_reason
from vla.core.episode import Episode, EpisodeMetadata
from vla.data.config import DataConfig, DatasetEntry
from vla.data.lerobot.reader import LeRobotReader
from vla.data.lerobot.writer import LeRobotWriter
from vla.data.loader import RLDSLoader

pytestmark = pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "LeRobot available")

H, W, FPS, LENGTHS = 24, 32, 15, (6, 9, 5)

#: LeRobotDataset.create + add_frame/save_episode/finalize, then LeRobotDataset(root) reads every frame back.
WRITE_AND_READ = r'''
import sys, numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
sys.path.insert(0, sys.argv[4])
from lerobot_env import smooth_frames
root, kind, out = sys.argv[1], sys.argv[2], sys.argv[3]
H, W, FPS, LENGTHS = %(H)d, %(W)d, %(FPS)d, %(LENGTHS)r
cam = {"dtype": kind, "shape": (H, W, 3), "names": ["height", "width", "channels"]}
features = {"observation.images.front": cam, "observation.images.wrist": cam,
            "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
            "action": {"dtype": "float32", "shape": (7,), "names": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]}}
ds = LeRobotDataset.create("local/oracle", fps=FPS, features=features, root=root, robot_type="panda",
                           use_videos=kind == "video", image_writer_threads=0)
rng = np.random.default_rng(7)
src = {"state": [], "action": [], "front": [], "wrist": [], "task": []}
for e, t in enumerate(LENGTHS):
    front, wrist = smooth_frames(e, t, H, W), smooth_frames(e, t, H, W, 1)
    for i in range(t):
        state, action = rng.normal(size=6).astype(np.float32), np.r_[rng.normal(0, .05, 6), rng.uniform()].astype(np.float32)
        task = ["stack the cups", "open the drawer"][e %% 2]
        ds.add_frame({"observation.images.front": front[i], "observation.images.wrist": wrist[i],
                      "observation.state": state, "action": action, "task": task})
        for k, v in (("state", state), ("action", action), ("front", front[i]), ("wrist", wrist[i]), ("task", task)):
            src[k].append(v)
    ds.save_episode()
ds.finalize()
back = LeRobotDataset("local/oracle", root=root, video_backend="pyav")
got = {"state": [], "action": [], "front": [], "wrist": [], "task": [], "episode_index": [], "frame_index": []}
for j in range(len(back)):
    s = back[j]
    got["state"].append(s["observation.state"].numpy()); got["action"].append(s["action"].numpy())
    got["front"].append((s["observation.images.front"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    got["wrist"].append((s["observation.images.wrist"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    got["task"].append(s["task"]); got["episode_index"].append(int(s["episode_index"])); got["frame_index"].append(int(s["frame_index"]))
np.savez(out, **{"src_" + k: np.asarray(v) for k, v in src.items()}, **{"lerobot_" + k: np.asarray(v) for k, v in got.items()})
print(back.meta.info["codebase_version"], back.meta.video_keys and back.meta.info["features"]["observation.images.front"]["info"]["video.codec"])
''' % {"H": H, "W": W, "FPS": FPS, "LENGTHS": LENGTHS}

#: LeRobotDataset(root) reads a dataset we wrote: every frame, its values, plus what its metadata says.
READ = r'''
import sys, json, numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset
root, out = sys.argv[1], sys.argv[2]
ds = LeRobotDataset("local/ours", root=root, video_backend="pyav")
cams = ds.meta.camera_keys
got = {k: [] for k in ["state", "action", "task", "episode_index", "frame_index", "timestamp"] + cams}
for j in range(len(ds)):
    s = ds[j]
    got["state"].append(s["observation.state"].numpy()); got["action"].append(s["action"].numpy()); got["task"].append(s["task"])
    for k in ("episode_index", "frame_index", "timestamp"):
        got[k].append(float(s[k]))
    for c in cams:
        got[c].append((s[c].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
np.savez(out, **{k: np.asarray(v) for k, v in got.items()})
print(json.dumps({"episodes": ds.num_episodes, "frames": ds.num_frames, "fps": ds.fps, "cameras": cams,
                  "video": ds.meta.video_keys, "stats": sorted(ds.meta.stats)}))
'''


def _read_all(root, cameras):
    reader = LeRobotReader(root)
    out = {"state": [], "action": [], "task": []} | {c: [] for c in cameras}
    for p in range(len(reader)):
        steps = reader.read_episode(p, cameras=cameras)["steps"]
        out["state"].append(steps["observation"]["observation.state"])
        out["action"].append(steps["action"])
        out["task"] += list(steps["language_instruction"])
        for c in cameras:
            frames = steps["observation"][c]
            out[c].append(np.stack([f if isinstance(f, np.ndarray) else f.to_array() for f in frames]))
    return {k: (np.concatenate(v) if k != "task" else np.asarray(v)) for k, v in out.items()}


@pytest.mark.parametrize("kind", ["image", "video"])
def test_we_read_what_lerobot_writes(kind, tmp_path):
    from lerobot_env import REPO_ROOT

    root, npz = tmp_path / "lerobot_ds", tmp_path / "values.npz"
    printed = run_lerobot(WRITE_AND_READ, str(root), kind, str(npz), str(REPO_ROOT / "tests"), tmp=tmp_path)
    v = np.load(npz)
    if kind == "video":
        assert printed.split() == ["v3.0", "av1"]  # LeRobot's default encoding, decoded here by PyAV
    cams = ["observation.images.front", "observation.images.wrist"]
    ours = _read_all(root, cams)
    np.testing.assert_array_equal(ours["state"], v["src_state"])
    np.testing.assert_array_equal(ours["action"], v["src_action"])
    assert list(ours["task"]) == list(v["src_task"]) == list(v["lerobot_task"])
    for cam, key in zip(("front", "wrist"), cams):
        np.testing.assert_array_equal(v["lerobot_" + cam], ours[key])  # what LeRobotDataset returns, frame for frame
        if kind == "image":
            np.testing.assert_array_equal(ours[key], v["src_" + cam])
        else:
            assert np.abs(ours[key].astype(float) - v["src_" + cam]).mean() < 4
    # and it trains: the loader's ordered pass over it is the recorded actions, normalized
    cfg = DataConfig(datasets=[DatasetEntry(path=str(root))], image_size=H, num_workers=0, image_augmentation=False,
                     statistics_cache=str(tmp_path / "stats"), cameras=["primary", "wrist"])
    loader = RLDSLoader(cfg, train=False)
    samples = list(loader)
    stats = loader.statistics["lerobot_ds"]
    np.testing.assert_array_equal(np.stack([s["action"] for s in samples]), stats.action.normalize(v["src_action"]))


def _episodes() -> list[Episode]:
    rng = np.random.default_rng(3)
    return [Episode(images={"primary": smooth_frames(e, t, H, W), "wrist": smooth_frames(e, t, H, W, 1)},
                    state=rng.normal(size=(t, 8)).astype(np.float32),
                    action=np.c_[rng.normal(0, .02, (t, 6)), rng.uniform(size=(t, 1))].astype(np.float32),
                    instruction=["pick the red block", "place it in the bin"][e % 2], metadata=EpisodeMetadata(str(e)))
            for e, t in enumerate(LENGTHS)]


@pytest.mark.parametrize("video", [False, True])
def test_lerobot_loads_what_we_write(video, tmp_path):
    import json

    root, npz = tmp_path / "ours", tmp_path / "values.npz"
    episodes = _episodes()
    with LeRobotWriter(root, fps=FPS, cameras={"primary": (H, W), "wrist": (H, W)}, state_dim=8, video=video,
                       episodes_per_file=2) as w:
        for ep in episodes:
            w.write(ep)
    meta = json.loads(run_lerobot(READ, str(root), str(npz), tmp=tmp_path).strip().splitlines()[-1])
    cams = ["observation.images.primary", "observation.images.wrist"]
    assert meta == {"episodes": 3, "frames": sum(LENGTHS), "fps": FPS, "cameras": cams, "video": cams if video else [],
                    "stats": sorted(cams + ["action", "observation.state"])}
    v = np.load(npz)
    np.testing.assert_array_equal(v["action"], np.concatenate([e.action for e in episodes]))
    np.testing.assert_array_equal(v["state"], np.concatenate([e.state for e in episodes]))
    assert list(v["task"]) == [e.instruction for e in episodes for _ in range(len(e.action))]
    np.testing.assert_array_equal(v["episode_index"], np.repeat(np.arange(3), LENGTHS))
    np.testing.assert_allclose(v["timestamp"], np.concatenate([np.arange(t) / FPS for t in LENGTHS]), atol=1e-6)
    ours = _read_all(root, cams)
    for cam, key in zip(("primary", "wrist"), cams):
        source = np.concatenate([e.images[cam] for e in episodes])
        np.testing.assert_array_equal(v[key], ours[key])  # LeRobot decodes the same frames we do
        if not video:
            np.testing.assert_array_equal(v[key], source)
        else:
            assert np.abs(v[key].astype(float) - source).mean() < 4


def test_lerobot_loads_a_converted_rlds_dataset(tiny_rlds_dataset, tmp_path):
    """vla-convert's RLDS -> LeRobot path: our sim episodes as LeRobot sees them."""
    import json

    from vla.data.lerobot.convert import rlds_to_lerobot
    from vla.data.rlds_reader import RLDSReader

    root, _ = rlds_to_lerobot(tiny_rlds_dataset, tmp_path / "tiny", fps=5, video=False)
    meta = json.loads(run_lerobot(READ, str(root), str(tmp_path / "v.npz"), tmp=tmp_path).strip().splitlines()[-1])
    v = np.load(tmp_path / "v.npz")
    src = RLDSReader(tiny_rlds_dataset)
    raws = [r for split in ("train", "val") for r in src.episodes(split, decode_images=True)]
    assert meta["episodes"] == len(raws) == 8
    np.testing.assert_array_equal(v["action"], np.concatenate([r["steps"]["action"] for r in raws]))
    np.testing.assert_array_equal(v["observation.images.primary"],
                                  np.concatenate([r["steps"]["observation"]["image"] for r in raws]))


#: LeRobot's own v2.1 -> v3.0 conversion of a local dataset, then LeRobotDataset reads the result (READ's dump).
CONVERT_V21 = r'''
import sys
from pathlib import Path
from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset
convert_dataset(Path(sys.argv[1]).name, root=str(Path(sys.argv[1]).parent), push_to_hub=False, force_conversion=True)
'''


def test_v21_reads_as_lerobots_own_conversion_does(tmp_path):
    """Our v2.1 reading agrees with LeRobot's: its converter turns the v2.1 dataset into v3.0 (the v2.1 copy kept as
    <name>_old), LeRobotDataset reads that, and both match what we read from the v2.1 original."""
    import json

    from lerobot_env import write_v21

    episodes = _episodes()
    root = tmp_path / "ds" / "pick_v21"
    write_v21(root, episodes, fps=FPS)
    cams = ["observation.images.primary", "observation.images.wrist"]
    ours_v21 = _read_all(root, cams)  # before LeRobot moves it
    npz = tmp_path / "v.npz"
    meta = json.loads(run_lerobot(CONVERT_V21 + READ, str(root), str(npz), tmp=tmp_path).strip().splitlines()[-1])
    assert meta["episodes"] == 3 and meta["video"] == cams
    assert LeRobotReader(root).meta.version == "v3.0" and LeRobotReader(root.parent / "pick_v21_old").meta.version == "v2.1"
    v = np.load(npz)
    ours_v30 = _read_all(root, cams)
    for got in (ours_v21, ours_v30):
        np.testing.assert_array_equal(got["action"], v["action"])
        np.testing.assert_array_equal(got["state"], v["state"])
        assert list(got["task"]) == list(v["task"])
        for key in cams:
            np.testing.assert_array_equal(got[key], v[key])  # same frames (LeRobot remuxes, it does not re-encode)
