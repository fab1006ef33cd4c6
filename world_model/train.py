"""Training of the world model in two phases, resumable from atomic checkpoints.

Phase 1 (`trainer.ae_steps`): the frame autoencoder on single frames of every camera (pixel MSE).
Phase 2 (`trainer.dyn_steps`): frames are encoded once with the frozen encoder; the dynamics trains on
windows of latents with
  - a teacher-forced loss (true history -> every next step),
  - a multi-step rollout loss (`trainer.rollout_steps` autoregressive steps on its own predictions; with
    `trainer.rollout_heads` it also scores the proprio and success predicted there),
  - Gaussian context noise on history latents (`trainer.context_noise`),
  - proprio regression, success BCE (positives up-weighted) and reward regression (`world_model.losses`).
`train_world_model` runs a `WorldModelTrainer` on `TrainingData` (the checked, split episodes). Both phases log to TensorBoard (`<output_dir>/tb`) and show tqdm bars. Checkpoints are written to a
temporary directory, renamed into `<output_dir>/checkpoints/step_<n>`, and `<output_dir>/latest` (a
symlink) is swapped atomically, so an interrupted run resumes from the last complete checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vla.train.optim import schedule_factor
from world_model.config import WMTrainConfig
from world_model.data import WMEpisode, compute_statistics, load_episodes, sample_windows, split_episodes
from world_model.losses import dynamics_loss, reconstruction_loss
from world_model.model import WorldModel

logger = logging.getLogger(__name__)

STATE = "trainer_state.pt"
SPLIT = "split.json"


def _atomic_checkpoint(model: WorldModel, out: Path, step: int, extra: dict, split: dict, keep: int = 2) -> Path:
    ckpts = out / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp_step_", dir=ckpts))
    model.save(tmp)
    torch.save(extra, tmp / STATE)
    (tmp / SPLIT).write_text(json.dumps(split, indent=1))
    final = ckpts / f"step_{step:07d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    link_tmp = out / ".latest.tmp"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    link_tmp.symlink_to(Path("checkpoints") / final.name)
    os.replace(link_tmp, out / "latest")
    for old in sorted(p for p in ckpts.glob("step_*") if p != final)[:-max(keep - 1, 0) or None]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_split(checkpoint_dir: str | os.PathLike) -> dict:
    """The train/val split a checkpoint was trained with (episode ids and dataset dirs)."""
    d = Path(checkpoint_dir)
    for cand in (d / SPLIT, d / "latest" / SPLIT):
        if cand.is_file():
            return json.loads(cand.read_text())
    raise FileNotFoundError(f"no {SPLIT} in {d}; pass explicit dataset_dirs")


def validation_episodes(checkpoint_dir: str | os.PathLike, cameras: list[str], image_size: int,
                        state_features=()) -> list[WMEpisode]:
    """The episodes a checkpoint held out for validation, read from the datasets it was trained on."""
    split = load_split(checkpoint_dir)
    if not split["dataset_dirs"]:
        raise ValueError(f"{checkpoint_dir} was trained on in-memory episodes; pass dataset_dirs=[...]")
    wanted = set(split["val_episode_ids"])
    return [e for e in load_episodes(split["dataset_dirs"], cameras, image_size, state_features=state_features)
            if e.metadata.episode_id in wanted]


def _frames_batch(episodes: list[WMEpisode], cameras: list[str], n: int, rng: np.random.Generator, norm_proprio=None,
                  swap_prob: float = 0.0):
    """n random (frame, camera index[, normalized proprio of that step[, input frame]]) samples.

    With `swap_prob` > 0 (and `norm_proprio`), a fourth tensor holds the frames the encoder sees: with that
    probability the same camera at another, random step of the same episode, otherwise the frame itself.
    """
    imgs, cams, props, inputs = [], [], [], []
    for _ in range(n):
        e = episodes[rng.integers(len(episodes))]
        ci = int(rng.integers(len(cameras)))
        t = rng.integers(len(e))
        imgs.append(e.frames[cameras[ci]][t])
        cams.append(ci)
        if norm_proprio is not None:
            props.append(norm_proprio(e.proprio[t]))
        if swap_prob > 0:
            inputs.append(e.frames[cameras[ci]][rng.integers(len(e)) if rng.random() < swap_prob else t])
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0
    if norm_proprio is None:
        return x, torch.tensor(cams)
    prop = torch.from_numpy(np.stack(props)).float()
    if swap_prob > 0:
        return x, torch.tensor(cams), prop, torch.from_numpy(np.stack(inputs)).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.tensor(cams), prop


def _restore_rng(state: dict) -> tuple[np.random.Generator, torch.Generator]:
    rng = np.random.default_rng()
    rng.bit_generator.state = state["np_rng"]
    gen = torch.Generator()
    gen.set_state(state["torch_rng"])
    return rng, gen


@torch.no_grad()
def validate(model: WorldModel, episodes: list[WMEpisode], *, history: int, horizon: int, n: int = 64,
             seed: int = 123) -> dict:
    """Mean latent MSE of open-loop rollouts to `horizon` steps (and the copy-last baseline) on fixed windows."""
    if not episodes:
        return {}
    rng = np.random.default_rng(seed)
    batch = sample_windows(episodes, n, history, horizon, rng)
    z = torch.from_numpy(batch["latents"]).float()
    p = torch.from_numpy(batch["proprio"]).float()
    a = torch.from_numpy(batch["action"]).float()
    valid = torch.from_numpy(batch["valid"])
    zs, ps = list(z[:, :history].unbind(1)), list(p[:, :history].unbind(1))
    errs, base = [], []
    for r in range(horizon):
        o = model.dynamics(torch.stack(zs[-history:], 1), torch.stack(ps[-history:], 1), a[:, r : r + history],
                           last_only=True)
        zs.append(o["latents"][:, -1])
        ps.append(o["proprio"][:, -1])
        m = valid[:, r + history].float()
        d = m.sum().clamp(min=1)
        errs.append(float((((zs[-1] - z[:, r + history]) ** 2).mean((-1, -2)) * m).sum() / d))
        base.append(float((((z[:, history - 1] - z[:, r + history]) ** 2).mean((-1, -2)) * m).sum() / d))
    return {"val/latent_mse_h1": errs[0], f"val/latent_mse_h{horizon}": errs[-1],
            f"val/copy_last_mse_h{horizon}": base[-1], f"val/ratio_h{horizon}": errs[-1] / max(base[-1], 1e-12)}


@dataclasses.dataclass
class TrainingData:
    """The episodes of one run, checked (transitions, one image size, one robot) and split by episode."""

    episodes: list[WMEpisode]
    train: list[WMEpisode]
    val: list[WMEpisode]
    split: dict  # what `load_split` reads back: dataset dirs and the episode ids of each side
    source_size: tuple[int, int]
    proprio_dim: int

    @classmethod
    def load(cls, cfg: WMTrainConfig, episodes: list | None = None) -> "TrainingData":
        """Episodes from `episodes` (in memory) or `cfg.data.dataset_dirs`, split as `cfg.data` says."""
        mc = cfg.world_model
        sources = episodes if episodes is not None else list(cfg.data.dataset_dirs)
        if not sources:
            raise ValueError("no training data: set data.dataset_dirs=[<root>/<name>/<version>] (e.g. from vla-collect)")
        eps = load_episodes(sources, mc.cameras, mc.image_size, split=cfg.data.split, max_episodes=cfg.data.max_episodes,
                            state_features=mc.state_features)
        short = [e.metadata.episode_id for e in eps if len(e) < 2]
        if short:
            raise ValueError(f"episodes {short[:5]} have fewer than 2 steps; a world model needs transitions")
        sizes = {tuple(e.source_size) for e in eps}
        if len(sizes) > 1:
            raise ValueError(f"episodes have different image sizes {sorted(sizes)}; train one world model per image size")
        pdims = {e.proprio.shape[1] for e in eps}
        if len(pdims) > 1:
            raise ValueError(f"episodes have different proprio sizes {sorted(pdims)}; train one world model per robot")
        d = cfg.data
        train_idx, val_idx = split_episodes(eps, val_fraction=d.val_fraction, holdout_seeds=d.holdout_seeds,
                                            holdout_seed_fraction=d.holdout_seed_fraction, seed=d.seed)
        train, val = [eps[i] for i in train_idx], [eps[i] for i in val_idx]
        split = {
            "dataset_dirs": [str(s) for s in sources if isinstance(s, (str, os.PathLike))],
            "train_episode_ids": [e.metadata.episode_id for e in train],
            "val_episode_ids": [e.metadata.episode_id for e in val],
            "holdout_seeds": sorted({e.metadata.seed for e in val} - {e.metadata.seed for e in train}),
        }
        logger.info("episodes: %d train, %d val (%d steps); cameras %s", len(train), len(val),
                    sum(len(e) for e in eps), mc.cameras)
        return cls(eps, train, val, split, next(iter(sizes)), int(next(iter(pdims))))


def train_world_model(cfg: WMTrainConfig, episodes: list | None = None, *, progress: bool = True) -> dict:
    """Train (or resume) a world model; returns a summary dict. `episodes` overrides cfg.data.dataset_dirs."""
    return WorldModelTrainer(cfg, episodes, progress=progress).fit()


class WorldModelTrainer:
    """One run of `train_world_model`: the model, its two optimizers and RNGs, resumed from `<output_dir>/latest`.

    `fit` runs phase 1 (`train_autoencoder`, then `normalize_latents`) and phase 2 (`train_dynamics`), each
    step drawing its batch from the one numpy generator in the same order, so a resumed run continues the
    stream of the interrupted one.
    """

    def __init__(self, cfg: WMTrainConfig, episodes: list | None = None, *, progress: bool = True) -> None:
        self.cfg, self.progress = cfg, progress
        tc, mc = cfg.trainer, cfg.world_model
        if tc.threads:
            torch.set_num_threads(tc.threads)
        self.out = Path(cfg.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.t_start = time.perf_counter()
        self.data = TrainingData.load(cfg, episodes)
        train = self.data.train
        self.model = WorldModel(mc, proprio_dim=self.data.proprio_dim, statistics=compute_statistics(train),
                                source_image_size=self.data.source_size, train_rollout_steps=tc.rollout_steps,
                                max_episode_length=max(len(e) for e in train), feature_dims=train[0].feature_dims)
        self.ae_opt = torch.optim.AdamW(self.model.autoencoder.parameters(), lr=tc.ae_lr, weight_decay=tc.weight_decay)
        self.dyn_opt = torch.optim.AdamW(self.model.dynamics.parameters(), lr=tc.dyn_lr, weight_decay=tc.weight_decay)
        self.rng, self.gen = np.random.default_rng(tc.seed), torch.Generator().manual_seed(tc.seed)
        self.ae_step = self.dyn_step = 0
        if cfg.resume and (self.out / "latest").exists():
            self._restore(self.out / "latest")
        logger.info("parameters: autoencoder %.2fM, dynamics %.2fM",
                    sum(p.numel() for p in self.model.autoencoder.parameters()) / 1e6,
                    sum(p.numel() for p in self.model.dynamics.parameters()) / 1e6)
        from vla.tensorboard import summary_writer

        self.tb = summary_writer(self.out / "tb")
        (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
        self.summary: dict = {}

    def _restore(self, latest: Path) -> None:
        state = torch.load(latest / STATE, weights_only=False)
        old_split = json.loads((latest / SPLIT).read_text())
        if old_split["train_episode_ids"] != self.data.split["train_episode_ids"]:
            raise ValueError(
                f"{self.out} holds a run trained on other episodes; use a new output_dir or resume=false to start over"
            )
        loaded = WorldModel.load(latest)
        self.model.load_state_dict(loaded.state_dict())
        self.model.statistics = loaded.statistics
        self.ae_opt.load_state_dict(state["ae_opt"])
        self.dyn_opt.load_state_dict(state["dyn_opt"])
        self.ae_step, self.dyn_step = state["ae_step"], state["dyn_step"]
        self.rng, self.gen = _restore_rng(state)
        logger.info("resumed from %s (autoencoder step %d, dynamics step %d)", os.path.realpath(latest), self.ae_step,
                    self.dyn_step)

    def checkpoint(self) -> None:
        extra = {"ae_opt": self.ae_opt.state_dict(), "dyn_opt": self.dyn_opt.state_dict(), "ae_step": self.ae_step,
                 "dyn_step": self.dyn_step, "np_rng": self.rng.bit_generator.state, "torch_rng": self.gen.get_state()}
        _atomic_checkpoint(self.model, self.out, self.ae_step + self.dyn_step, extra, self.data.split)

    def fit(self) -> dict:
        """Both phases (what is left of them), the final checkpoint and validation; returns the summary."""
        self.model.train()
        if self.ae_step < self.cfg.trainer.ae_steps:
            self.train_autoencoder()
            self.normalize_latents()
            self.checkpoint()
        self.train_dynamics()
        return self.finish()

    # ---- phase 1: autoencoder ----
    def train_autoencoder(self) -> None:
        from tqdm.auto import tqdm

        tc = self.cfg.trainer
        bar = tqdm(total=tc.ae_steps, initial=self.ae_step, desc="wm autoencoder", disable=not self.progress)
        while self.ae_step < tc.ae_steps:
            loss = self.autoencoder_step()
            self.ae_step += 1
            bar.update(1)
            if self.ae_step % tc.log_every == 0 or self.ae_step == tc.ae_steps:
                self.tb.add_scalar("ae/loss", loss, self.ae_step)
                bar.set_postfix(mse=f"{loss:.4f}")
            if self.ae_step % tc.ckpt_every == 0 and self.ae_step < tc.ae_steps:
                self.checkpoint()
        bar.close()
        self.summary["ae_final_mse"] = loss

    def autoencoder_step(self) -> float:
        """One optimizer step of the autoencoder on a random frame batch; returns its loss."""
        tc, mc, model = self.cfg.trainer, self.cfg.world_model, self.model
        for g in self.ae_opt.param_groups:
            g["lr"] = tc.ae_lr * schedule_factor(self.ae_step, tc.ae_steps)
        swap = tc.ae_latent_swap if mc.proprio_decoder else 0.0
        x, cam, prop, *src = _frames_batch(self.data.train, mc.cameras, tc.ae_batch_size, self.rng, model.norm_proprio,
                                           swap_prob=swap)
        loss = reconstruction_loss(model.autoencoder(src[0] if src else x, cam, prop if mc.proprio_decoder else None,
                                                     latent_noise=tc.ae_latent_noise), x)
        self.ae_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.ae_opt.step()
        return loss.item()

    @torch.no_grad()
    def normalize_latents(self) -> None:
        """Latent normalization: per-channel mean/std over training frames (fixed from here on)."""
        model = self.model
        model.eval()
        x, _ = _frames_batch(self.data.train, self.cfg.world_model.cameras, 512,
                             np.random.default_rng(self.cfg.trainer.seed + 1))
        lat = torch.cat([model.autoencoder.encode(x[i : i + 128]) for i in range(0, len(x), 128)])
        model.latent_mean.copy_(lat.mean((0, 2, 3)))
        model.latent_std.copy_(lat.std((0, 2, 3)).clamp(min=1e-3))
        model.train()

    # ---- phase 2: dynamics on frozen latents ----
    def train_dynamics(self) -> None:
        from tqdm.auto import tqdm

        tc, model = self.cfg.trainer, self.model
        model.eval()
        t_enc = time.perf_counter()
        model.prepare(self.data.episodes)
        self.summary["encode_s"] = time.perf_counter() - t_enc
        pos = float(np.mean(np.concatenate([e.success for e in self.data.train])))
        # saved with the model: its success probability is corrected for it
        model.success_pos_weight = float(np.clip((1 - pos) / max(pos, 1e-3), 1.0, 50.0))
        model.dynamics.train()
        if self.dyn_step >= tc.dyn_steps:
            return
        bar = tqdm(total=tc.dyn_steps, initial=self.dyn_step, desc="wm dynamics", disable=not self.progress)
        while self.dyn_step < tc.dyn_steps:
            loss, parts = self.dynamics_step()
            self.dyn_step += 1
            bar.update(1)
            if self.dyn_step % tc.log_every == 0 or self.dyn_step == tc.dyn_steps:
                for k, v in parts.items():
                    self.tb.add_scalar(f"dyn/{k}", v, self.dyn_step)
                self.tb.add_scalar("dyn/loss", loss, self.dyn_step)
                bar.set_postfix(tf=f"{parts['tf']:.3f}", roll=f"{parts['rollout']:.3f}")
            if self.dyn_step % tc.val_every == 0 and self.data.val:
                model.dynamics.eval()
                for k, v in validate(model, self.data.val, history=self.cfg.world_model.history, horizon=8).items():
                    self.tb.add_scalar(k, v, self.dyn_step)
                model.dynamics.train()
            if self.dyn_step % tc.ckpt_every == 0 and self.dyn_step < tc.dyn_steps:
                model.eval()
                self.checkpoint()
                model.dynamics.train()
        bar.close()
        self.summary.update({f"dyn_final_{k}": v for k, v in parts.items()})

    def dynamics_step(self) -> tuple[float, dict]:
        """One optimizer step of the dynamics on a random window batch; returns its loss and the loss's parts."""
        tc, model = self.cfg.trainer, self.model
        # A 100-step warmup ramp *times* the cosine over all steps (not warmup then cosine over the rest).
        warmup = min(1.0, (self.dyn_step + 1) / 100)
        for g in self.dyn_opt.param_groups:
            g["lr"] = tc.dyn_lr * warmup * schedule_factor(self.dyn_step, tc.dyn_steps)
        batch = sample_windows(self.data.train, tc.dyn_batch_size, self.cfg.world_model.history, tc.rollout_steps,
                               self.rng)
        loss, parts = dynamics_loss(model, batch, rollout_steps=tc.rollout_steps, context_noise=tc.context_noise,
                                    rollout_weight=tc.rollout_weight, proprio_weight=tc.proprio_weight,
                                    success_weight=tc.success_weight, pos_weight=model.success_pos_weight,
                                    rollout_heads=tc.rollout_heads, generator=self.gen)
        self.dyn_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.dynamics.parameters(), 1.0)
        self.dyn_opt.step()
        return loss.item(), parts

    def finish(self) -> dict:
        """Final checkpoint and validation; writes `train_summary.json`."""
        model, out, summary = self.model, self.out, self.summary
        model.eval()
        self.checkpoint()
        summary.update(validate(model, self.data.val or self.data.train, history=self.cfg.world_model.history, horizon=8))
        summary.update({"train_episodes": len(self.data.train), "val_episodes": len(self.data.val),
                        "ae_steps": self.ae_step, "dyn_steps": self.dyn_step,
                        "wall_s": time.perf_counter() - self.t_start, "checkpoint": str(out / "latest")})
        self.tb.flush()
        self.tb.close()
        (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
        logger.info("world model trained: %s", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()})
        return summary
