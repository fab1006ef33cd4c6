"""Training of the world model in two phases, resumable from atomic checkpoints.

Phase 1 (`trainer.ae_steps`): the frame autoencoder on single frames of every camera (pixel MSE).
Phase 2 (`trainer.dyn_steps`): frames are encoded once with the frozen encoder; the dynamics trains on
windows of latents with
  - a teacher-forced loss (true history -> every next step),
  - a multi-step rollout loss (`trainer.rollout_steps` autoregressive steps on its own predictions; with
    `trainer.rollout_heads` it also scores the proprio and success predicted there),
  - Gaussian context noise on history latents (`trainer.context_noise`),
  - proprio regression, success BCE (positives up-weighted) and reward regression.
Both phases log to TensorBoard (`<output_dir>/tb`) and show tqdm bars. Checkpoints are written to a
temporary directory, renamed into `<output_dir>/checkpoints/step_<n>`, and `<output_dir>/latest` (a
symlink) is swapped atomically, so an interrupted run resumes from the last complete checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from world_model.config import WMTrainConfig
from world_model.data import WMEpisode, compute_statistics, load_episodes, sample_windows, split_episodes
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


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, foreground_weight: float = 4.0) -> torch.Tensor:
    """Pixel MSE with pixels that differ from the frame's median colour (robot, objects) weighted up.

    Small moving objects cover a few percent of a frame; with plain MSE the decoder learns the background
    first and blurs them away, yet they are what a policy acting on imagined frames must see.
    """
    median = target.flatten(2).median(-1).values[..., None, None]  # (B, 3, 1, 1)
    fg = ((target - median).abs().amax(1, keepdim=True) > 0.08).float()  # (B, 1, H, W)
    w = 1.0 + foreground_weight * fg
    return (w * (pred - target) ** 2).mean() / w.mean()


def dynamics_loss(model: WorldModel, batch: dict[str, np.ndarray], *, rollout_steps: int, context_noise: float,
                  rollout_weight: float = 1.0, proprio_weight: float = 1.0, success_weight: float = 0.5,
                  pos_weight: float = 10.0, rollout_heads: bool = False,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """Teacher-forced + autoregressive-rollout loss on a window batch from `sample_windows`.

    With `rollout_heads`, the rollout steps also score the predicted proprio and the success logit (not only
    the latents): in imagination both are read from the model's own, drifting predictions, so they are
    trained there too."""
    h = model.config.history
    z = torch.from_numpy(batch["latents"]).float()  # (B, L+1, N, D)
    p = torch.from_numpy(batch["proprio"]).float()  # (B, L+1, P)
    a = torch.from_numpy(batch["action"]).float()  # (B, L+1, 7)
    s = torch.from_numpy(batch["success"]).float()  # (B, L+1)
    valid = torch.from_numpy(batch["valid"])  # (B, L+1)
    ctx_z = z[:, :h]
    if context_noise > 0:
        ctx_z = ctx_z + context_noise * torch.randn(ctx_z.shape, generator=generator)
    out = model.dynamics(ctx_z, p[:, :h], a[:, :h])
    tgt_valid = valid[:, 1 : h + 1].float()  # target of position i is i+1
    cur_valid = valid[:, :h].float()
    denom = tgt_valid.sum().clamp(min=1)
    tf = (((out["latents"] - z[:, 1 : h + 1]) ** 2).mean((-1, -2)) * tgt_valid).sum() / denom
    pp = (((out["proprio"] - p[:, 1 : h + 1]) ** 2).mean(-1) * tgt_valid).sum() / denom if p.shape[-1] else z.new_zeros(())
    bce = F.binary_cross_entropy_with_logits(out["success_logit"], s[:, :h], pos_weight=torch.tensor(pos_weight),
                                             reduction="none")
    sl = (bce * cur_valid).sum() / cur_valid.sum().clamp(min=1)
    rl = (((out["reward"] - s[:, :h]) ** 2) * cur_valid).sum() / cur_valid.sum().clamp(min=1)
    # Rollout: feed predictions back, `rollout_steps` times, and score each new step.
    roll = roll_p = roll_s = z.new_zeros(())
    zs = list(ctx_z.unbind(1)) + [out["latents"][:, -1]]  # steps 0..h, the last one predicted
    ps = list(p[:, :h].unbind(1)) + [out["proprio"][:, -1]]
    for r in range(1, rollout_steps + 1):
        o = model.dynamics(torch.stack(zs[-h:], 1), torch.stack(ps[-h:], 1), a[:, r : r + h], last_only=True)
        m = valid[:, r + h].float()
        d = m.sum().clamp(min=1)
        roll = roll + (((o["latents"][:, -1] - z[:, r + h]) ** 2).mean((-1, -2)) * m).sum() / d
        if rollout_heads:
            if p.shape[-1]:
                roll_p = roll_p + (((o["proprio"][:, -1] - p[:, r + h]) ** 2).mean(-1) * m).sum() / d
            # The logit of step r+h-1's action: solved after it (as `sl` above, on a predicted state).
            mc = valid[:, r + h - 1].float()
            b = F.binary_cross_entropy_with_logits(o["success_logit"][:, -1], s[:, r + h - 1],
                                                   pos_weight=torch.tensor(pos_weight), reduction="none")
            roll_s = roll_s + (b * mc).sum() / mc.sum().clamp(min=1)
        zs.append(o["latents"][:, -1])
        ps.append(o["proprio"][:, -1])
    n = max(rollout_steps, 1)
    roll, roll_p, roll_s = roll / n, roll_p / n, roll_s / n
    loss = (tf + rollout_weight * (roll + proprio_weight * roll_p + success_weight * roll_s) + proprio_weight * pp
            + success_weight * (sl + rl))
    return loss, {"tf": tf.item(), "rollout": roll.item(), "proprio": pp.item(), "success": sl.item(), "reward": rl.item(),
                  "rollout_proprio": roll_p.item(), "rollout_success": roll_s.item()}


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


def train_world_model(cfg: WMTrainConfig, episodes: list | None = None, *, progress: bool = True) -> dict:
    """Train (or resume) a world model; returns a summary dict. `episodes` overrides cfg.data.dataset_dirs."""
    from tqdm.auto import tqdm

    from vla.tensorboard import summary_writer

    tc, mc = cfg.trainer, cfg.world_model
    if tc.threads:
        torch.set_num_threads(tc.threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    sources = episodes if episodes is not None else list(cfg.data.dataset_dirs)
    if not sources:
        raise ValueError("no training data: set data.dataset_dirs=[<root>/<name>/<version>] (e.g. from vla-collect)")
    eps = load_episodes(sources, mc.cameras, mc.image_size, split=cfg.data.split, max_episodes=cfg.data.max_episodes)
    short = [e.metadata.episode_id for e in eps if len(e) < 2]
    if short:
        raise ValueError(f"episodes {short[:5]} have fewer than 2 steps; a world model needs transitions")
    sizes = {tuple(e.source_size) for e in eps}
    if len(sizes) > 1:
        raise ValueError(f"episodes have different image sizes {sorted(sizes)}; train one world model per image size")
    pdims = {e.proprio.shape[1] for e in eps}
    if len(pdims) > 1:
        raise ValueError(f"episodes have different proprio sizes {sorted(pdims)}; train one world model per robot")
    train_idx, val_idx = split_episodes(eps, val_fraction=cfg.data.val_fraction, holdout_seeds=cfg.data.holdout_seeds,
                                        holdout_seed_fraction=cfg.data.holdout_seed_fraction, seed=cfg.data.seed)
    train_eps, val_eps = [eps[i] for i in train_idx], [eps[i] for i in val_idx]
    split = {
        "dataset_dirs": [str(s) for s in sources if isinstance(s, (str, os.PathLike))],
        "train_episode_ids": [e.metadata.episode_id for e in train_eps],
        "val_episode_ids": [e.metadata.episode_id for e in val_eps],
        "holdout_seeds": sorted({e.metadata.seed for e in val_eps} - {e.metadata.seed for e in train_eps}),
    }
    logger.info("episodes: %d train, %d val (%d steps); cameras %s", len(train_eps), len(val_eps),
                sum(len(e) for e in eps), mc.cameras)

    stats = compute_statistics(train_eps)
    model = WorldModel(mc, proprio_dim=int(next(iter(pdims))), statistics=stats,
                       source_image_size=next(iter(sizes)), train_rollout_steps=tc.rollout_steps,
                       max_episode_length=max(len(e) for e in train_eps))
    ae_opt = torch.optim.AdamW(model.autoencoder.parameters(), lr=tc.ae_lr, weight_decay=tc.weight_decay)
    dyn_opt = torch.optim.AdamW(model.dynamics.parameters(), lr=tc.dyn_lr, weight_decay=tc.weight_decay)
    rng, gen = np.random.default_rng(tc.seed), torch.Generator().manual_seed(tc.seed)
    ae_step = dyn_step = 0
    latest = out / "latest"
    if cfg.resume and latest.exists():
        state = torch.load(latest / STATE, weights_only=False)
        old_split = json.loads((latest / SPLIT).read_text())
        if old_split["train_episode_ids"] != split["train_episode_ids"]:
            raise ValueError(
                f"{out} holds a run trained on other episodes; use a new output_dir or resume=false to start over"
            )
        loaded = WorldModel.load(latest)
        model.load_state_dict(loaded.state_dict())
        model.statistics = loaded.statistics
        ae_opt.load_state_dict(state["ae_opt"])
        dyn_opt.load_state_dict(state["dyn_opt"])
        ae_step, dyn_step = state["ae_step"], state["dyn_step"]
        rng, gen = _restore_rng(state)
        logger.info("resumed from %s (autoencoder step %d, dynamics step %d)", os.path.realpath(latest), ae_step, dyn_step)
    logger.info("parameters: autoencoder %.2fM, dynamics %.2fM",
                sum(p.numel() for p in model.autoencoder.parameters()) / 1e6,
                sum(p.numel() for p in model.dynamics.parameters()) / 1e6)
    tb = summary_writer(out / "tb")
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))

    def checkpoint() -> None:
        extra = {"ae_opt": ae_opt.state_dict(), "dyn_opt": dyn_opt.state_dict(), "ae_step": ae_step,
                 "dyn_step": dyn_step, "np_rng": rng.bit_generator.state, "torch_rng": gen.get_state()}
        _atomic_checkpoint(model, out, ae_step + dyn_step, extra, split)

    summary: dict = {}
    # ---- phase 1: autoencoder ----
    model.train()
    if ae_step < tc.ae_steps:
        bar = tqdm(total=tc.ae_steps, initial=ae_step, desc="wm autoencoder", disable=not progress)
        while ae_step < tc.ae_steps:
            lr = tc.ae_lr * 0.5 * (1 + math.cos(math.pi * ae_step / tc.ae_steps))
            for g in ae_opt.param_groups:
                g["lr"] = lr
            swap = tc.ae_latent_swap if mc.proprio_decoder else 0.0
            x, cam, prop, *src = _frames_batch(train_eps, mc.cameras, tc.ae_batch_size, rng, model.norm_proprio,
                                               swap_prob=swap)
            loss = reconstruction_loss(model.autoencoder(src[0] if src else x, cam, prop if mc.proprio_decoder else None,
                                                         latent_noise=tc.ae_latent_noise), x)
            ae_opt.zero_grad(set_to_none=True)
            loss.backward()
            ae_opt.step()
            ae_step += 1
            bar.update(1)
            if ae_step % tc.log_every == 0 or ae_step == tc.ae_steps:
                tb.add_scalar("ae/loss", loss.item(), ae_step)
                bar.set_postfix(mse=f"{loss.item():.4f}")
            if ae_step % tc.ckpt_every == 0 and ae_step < tc.ae_steps:
                checkpoint()
        bar.close()
        summary["ae_final_mse"] = loss.item()
        # Latent normalization: per-channel mean/std over training frames (fixed from here on).
        with torch.no_grad():
            model.eval()
            x, _ = _frames_batch(train_eps, mc.cameras, 512, np.random.default_rng(tc.seed + 1))
            lat = torch.cat([model.autoencoder.encode(x[i : i + 128]) for i in range(0, len(x), 128)])
            model.latent_mean.copy_(lat.mean((0, 2, 3)))
            model.latent_std.copy_(lat.std((0, 2, 3)).clamp(min=1e-3))
            model.train()
        checkpoint()

    # ---- phase 2: dynamics on frozen latents ----
    model.eval()
    t_enc = time.perf_counter()
    model.prepare(eps)
    summary["encode_s"] = time.perf_counter() - t_enc
    pos = float(np.mean(np.concatenate([e.success for e in train_eps])))
    pos_weight = float(np.clip((1 - pos) / max(pos, 1e-3), 1.0, 50.0))
    model.success_pos_weight = pos_weight  # saved with the model: its success probability is corrected for it
    model.dynamics.train()
    if dyn_step < tc.dyn_steps:
        bar = tqdm(total=tc.dyn_steps, initial=dyn_step, desc="wm dynamics", disable=not progress)
        while dyn_step < tc.dyn_steps:
            lr = tc.dyn_lr * min(1.0, (dyn_step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * dyn_step / tc.dyn_steps))
            for g in dyn_opt.param_groups:
                g["lr"] = lr
            batch = sample_windows(train_eps, tc.dyn_batch_size, mc.history, tc.rollout_steps, rng)
            loss, parts = dynamics_loss(model, batch, rollout_steps=tc.rollout_steps, context_noise=tc.context_noise,
                                        rollout_weight=tc.rollout_weight, proprio_weight=tc.proprio_weight,
                                        success_weight=tc.success_weight, pos_weight=pos_weight,
                                        rollout_heads=tc.rollout_heads, generator=gen)
            dyn_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.dynamics.parameters(), 1.0)
            dyn_opt.step()
            dyn_step += 1
            bar.update(1)
            if dyn_step % tc.log_every == 0 or dyn_step == tc.dyn_steps:
                for k, v in parts.items():
                    tb.add_scalar(f"dyn/{k}", v, dyn_step)
                tb.add_scalar("dyn/loss", loss.item(), dyn_step)
                bar.set_postfix(tf=f"{parts['tf']:.3f}", roll=f"{parts['rollout']:.3f}")
            if dyn_step % tc.val_every == 0 and val_eps:
                model.dynamics.eval()
                for k, v in validate(model, val_eps, history=mc.history, horizon=8).items():
                    tb.add_scalar(k, v, dyn_step)
                model.dynamics.train()
            if dyn_step % tc.ckpt_every == 0 and dyn_step < tc.dyn_steps:
                model.eval()
                checkpoint()
                model.dynamics.train()
        bar.close()
        summary.update({f"dyn_final_{k}": v for k, v in parts.items()})
    model.eval()
    checkpoint()
    val = validate(model, val_eps or train_eps, history=mc.history, horizon=8)
    summary.update(val)
    summary.update({"train_episodes": len(train_eps), "val_episodes": len(val_eps), "ae_steps": ae_step,
                    "dyn_steps": dyn_step, "wall_s": time.perf_counter() - t_start,
                    "checkpoint": str(out / "latest")})
    tb.flush()
    tb.close()
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    logger.info("world model trained: %s", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()})
    return summary
