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


def save_results(results: dict, path: str | Path) -> Path:
    """Write results as JSON (NaN/inf -> null); `closed_loop.videos` go to `<stem>_videos.npz`."""
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
            index.append({k: v[k] for k in ("policy", "seed", "sim_success", "model_success")} | {"cameras": sorted(v["sim"])})
        np.savez_compressed(path.with_name(path.stem + "_videos.npz"), **arrays)
        res["closed_loop"] = dict(cl, videos=index, videos_file=path.stem + "_videos.npz")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_clean(res), indent=1))
    tmp.replace(path)
    return path


def load_results(path: str | Path) -> dict:
    """Inverse of `save_results` (videos re-attached as arrays when the .npz exists)."""
    path = Path(path)
    res = json.loads(path.read_text())
    cl = res.get("closed_loop")
    if cl and cl.get("videos_file") and (path.parent / cl["videos_file"]).is_file():
        data = np.load(path.parent / cl["videos_file"])
        vids = []
        for i, v in enumerate(cl["videos"]):
            vids.append(dict(v, sim={c: data[f"v{i}_sim_{c}"] for c in v["cameras"]},
                             model={c: data[f"v{i}_model_{c}"] for c in v["cameras"]}))
        res["closed_loop"] = dict(cl, videos=vids)
    return res
