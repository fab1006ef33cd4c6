"""Synthetic episodes with the real schema, for tests, benchmarks and docs (no simulator needed).

Frames are a smooth colour gradient with a moving square and mild noise, so JPEG sizes are close to
camera frames (~15-20 KB at 224x224); actions are smooth 7-D end-effector deltas with an absolute gripper
that closes half way; proprio follows the integrated actions. Everything is a function of the seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from vla.core.episode import Episode, EpisodeMetadata

INSTRUCTIONS = ("pick up the red cube", "push the block to the left", "open the drawer", "stack the blue cube")


def make_episode(
    index: int,
    *,
    num_steps: int = 10,
    image_size: tuple[int, int] = (32, 32),
    cameras: Sequence[str] = ("primary", "wrist"),
    state_dim: int = 8,
    seed: int = 0,
) -> Episode:
    """Episode number `index` of a synthetic dataset (deterministic in (index, seed))."""
    rng = np.random.default_rng([seed, index])
    h, w = image_size
    t = np.arange(num_steps, dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    images = {}
    for ci, cam in enumerate(cameras):
        base = np.stack([xx / w * 200, yy / h * 200, np.full_like(xx, 60 + 40 * ci)], -1).astype(np.float32)
        frames = np.empty((num_steps, h, w, 3), np.uint8)
        cx0, cy0 = rng.uniform(0.2, 0.8, 2)
        for k in range(num_steps):
            img = base + rng.standard_normal(base.shape, dtype=np.float32) * np.float32(6.0)
            cx = int((cx0 + 0.02 * k) % 1.0 * w)
            cy = int((cy0 + 0.01 * k) % 1.0 * h)
            s = max(2, h // 8)
            img[max(0, cy - s):cy + s, max(0, cx - s):cx + s] = (220, 40, 40)
            frames[k] = np.clip(img, 0, 255).astype(np.uint8)
        images[cam] = frames
    phase = rng.uniform(0, 2 * np.pi, 6)
    delta = 0.01 * np.sin(t[:, None] * 0.3 + phase[None]).astype(np.float32)
    gripper = (t < num_steps / 2).astype(np.float32)[:, None]
    action = np.concatenate([delta, gripper], 1)
    state = np.zeros((num_steps, state_dim), np.float32)
    k = min(6, state_dim)
    state[:, :k] = np.cumsum(delta, 0)[:, :k] + rng.normal(0, 0.1, k)
    if state_dim > 6:
        state[:, 6:] = gripper * 0.04
    success = bool(rng.random() < 0.7)
    meta = EpisodeMetadata(
        episode_id=f"synthetic-{seed}-{index:06d}",
        success=success,
        seed=int(seed * 1_000_003 + index),
        randomization={"light": float(rng.uniform(0.5, 1.5)), "table_rgb": rng.uniform(0, 1, 3).round(3).tolist()},
        task="synthetic/Pick-v0",
    )
    return Episode(images=images, state=state, action=action, instruction=INSTRUCTIONS[index % len(INSTRUCTIONS)],
                   metadata=meta)


def write_synthetic_dataset(
    root_dir: str | os.PathLike,
    name: str = "synthetic",
    *,
    num_episodes: int = 6,
    num_steps: int = 10,
    image_size: tuple[int, int] = (32, 32),
    cameras: Sequence[str] = ("primary", "wrist"),
    state_dim: int = 8,
    episodes_per_shard: int = 2,
    seed: int = 0,
    splits: dict[str, int] | None = None,
    progress: bool = False,
) -> Path:
    """Write a synthetic RLDS dataset with `RLDSWriter`; return `<root_dir>/<name>/1.0.0`.

    `splits` maps split name -> episode count (default: all `num_episodes` in "train").
    Episode lengths vary around `num_steps` (+-30%) so windows and padding are exercised.
    """
    from vla.data.rlds_writer import RLDSWriter

    splits = splits or {"train": num_episodes}
    total = sum(splits.values())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"writing {name}", unit="ep")
    index = 0
    with RLDSWriter(root_dir, name, cameras=cameras, image_size=image_size, state_dim=state_dim,
                    episodes_per_shard=episodes_per_shard, overwrite=True) as writer:
        for split, count in splits.items():
            for _ in range(count):
                length = max(2, int(round(num_steps * (0.7 + 0.6 * ((index * 7919) % 101) / 100))))
                writer.write(make_episode(index, num_steps=length, image_size=image_size, cameras=cameras,
                                          state_dim=state_dim, seed=seed), split=split)
                index += 1
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    return writer.dataset_dir
