"""Save / load evaluation results: JSON for the numbers, an .npz beside it for the sim/imagined videos."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def _clean(x):
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


_VIDEO_FIELDS = ("policy", "seed", "sim_success", "model_success", "member_success", "sim_steps")


def save_results(results: dict, path: str | Path) -> Path:
    """Write results as JSON (NaN/inf -> null); `closed_loop.videos` go to `<stem>_videos.npz` (every camera of
    the sim, of "model" and of each further ensemble member: keys `v<i>_sim_<cam>`, `v<i>_model_<cam>`,
    `v<i>_m<k>_<cam>`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    res = dict(results)
    cl = res.get("closed_loop")
    if cl and cl.get("videos"):
        arrays, index = {}, []
        for i, v in enumerate(cl["videos"]):
            for side in ("sim", "model"):
                for cam, frames in v[side].items():
                    arrays[f"v{i}_{side}_{cam}"] = frames
            # Member 0 is "model"; the others go under their index, so a single model's file is unchanged.
            for k, member in enumerate(v.get("members", [])[1:], 1):
                for cam, frames in member.items():
                    arrays[f"v{i}_m{k}_{cam}"] = frames
            index.append({k: v[k] for k in _VIDEO_FIELDS if k in v}
                         | {"cameras": sorted(v["sim"]), "num_members": max(len(v.get("members", [])), 1)})
        np.savez_compressed(path.with_name(path.stem + "_videos.npz"), **arrays)
        res["closed_loop"] = dict(cl, videos=index, videos_file=path.stem + "_videos.npz")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_clean(res), indent=1))
    tmp.replace(path)
    return path


def _frames(data, video: int, key: str, cameras: list[str]) -> dict[str, np.ndarray]:
    return {c: data[f"v{video}_{key}_{c}"] for c in cameras}


def load_results(path: str | Path) -> dict:
    """Inverse of `save_results` (videos re-attached as arrays when the .npz exists, "members" included)."""
    path = Path(path)
    res = json.loads(path.read_text())
    cl = res.get("closed_loop")
    if cl and cl.get("videos_file") and (path.parent / cl["videos_file"]).is_file():
        data = np.load(path.parent / cl["videos_file"])
        vids = []
        for i, v in enumerate(cl["videos"]):
            model = _frames(data, i, "model", v["cameras"])
            vids.append(dict(v, sim=_frames(data, i, "sim", v["cameras"]), model=model,
                             members=[model] + [_frames(data, i, f"m{k}", v["cameras"])
                                                for k in range(1, v.get("num_members", 1))]))
        res["closed_loop"] = dict(cl, videos=vids)
    return res
