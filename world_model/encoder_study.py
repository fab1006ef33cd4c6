"""Which visual state? A small learned autoencoder vs the VLA vision tower's patch features + a fixed projection.

Both candidates get the same latent budget (an 8x8 grid of 8 values per frame) and the same pixel decoder,
trained for the same number of steps; we measure on held-out frames
  - reconstruction PSNR / SSIM (what the report shows and what a policy sees in imagination),
  - a linear probe (ridge) from latent to proprio, R^2 (is the robot state readable from it?),
  - encoding time per frame on this CPU (imagination encodes the start frame; training encodes every frame).
The VLA path runs `vla.model`'s fused DINOv2 + SigLIP tower (a given checkpoint, else the tiny preset's
random initialization) on the processor's pixel values, then a PCA fitted on training features (fixed,
linearly invertible) down to 8 dims per patch, resampled to the 8x8 grid.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from vla.train.optim import schedule_factor
from world_model.encoder import FrameAutoencoder
from world_model.metrics import psnr, ssim
from world_model.losses import reconstruction_loss

logger = logging.getLogger(__name__)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0


def _train_decoder(ae: FrameAutoencoder, latents: torch.Tensor | None, frames: torch.Tensor, steps: int, lr: float,
                   seed: int) -> None:
    """Train the whole autoencoder (latents None) or only its decoder on fixed latents."""
    g = torch.Generator().manual_seed(seed)
    params = ae.parameters() if latents is None else ae.decoder.parameters()
    opt = torch.optim.AdamW(params, lr=lr)
    cam = torch.zeros(32, dtype=torch.long)
    for step in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lr * schedule_factor(step, steps)
        idx = torch.randint(0, len(frames), (32,), generator=g)
        x = frames[idx]
        pred = ae(x, cam) if latents is None else ae.decode(latents[idx], cam)
        loss = reconstruction_loss(pred, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _probe_r2(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray) -> float:
    """Ridge regression latent -> proprio; mean R^2 over proprio dims with variance."""
    zt = z_train.reshape(len(z_train), -1)
    mu, sd = zt.mean(0), zt.std(0) + 1e-6
    a = np.c_[(zt - mu) / sd, np.ones(len(zt))]
    w = np.linalg.solve(a.T @ a + 0.1 * len(a) * np.eye(a.shape[1]), a.T @ y_train)
    b = np.c_[(z_test.reshape(len(z_test), -1) - mu) / sd, np.ones(len(z_test))]
    pred = b @ w
    keep = y_test.std(0) > 1e-6
    r2 = 1 - ((pred - y_test) ** 2).mean(0)[keep] / y_test.var(0)[keep]
    return float(np.mean(r2))


def _scores(ae: FrameAutoencoder, latents: torch.Tensor, frames: np.ndarray) -> dict:
    with torch.no_grad():
        rec = (ae.decode(latents, torch.zeros(len(latents), dtype=torch.long)).clamp(0, 1) * 255).round().byte()
    rec = rec.permute(0, 2, 3, 1).numpy()
    return {"psnr": float(np.mean([psnr(r, f) for r, f in zip(rec, frames)])),
            "ssim": float(np.mean([ssim(r, f) for r, f in zip(rec, frames)]))}


def compare_encoders(train_frames: np.ndarray, train_proprio: np.ndarray, test_frames: np.ndarray,
                     test_proprio: np.ndarray, *, steps: int = 400, vla_checkpoint: str | None = None,
                     seed: int = 0) -> dict:
    """Measure both candidates (see the module docstring). Frames: uint8 (N, 64, 64, 3)."""
    torch.manual_seed(seed)
    xs, xt = _to_tensor(train_frames), _to_tensor(test_frames)
    out: dict = {"steps": steps, "latent_shape": [8, 8, 8], "num_train": len(xs), "num_test": len(xt)}

    # 1. learned autoencoder (what the world model uses)
    ae = FrameAutoencoder([16, 32, 64], 8, 1)
    t0 = time.perf_counter()
    _train_decoder(ae, None, xs, steps, 2e-3, seed)
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        t0 = time.perf_counter()
        zt = ae.encode(xt)
        enc_ms = (time.perf_counter() - t0) / len(xt) * 1000
        zs = ae.encode(xs)
    out["learned_autoencoder"] = _scores(ae, zt, test_frames) | {
        "encode_ms_per_frame": enc_ms, "train_s": train_s,
        "proprio_probe_r2": _probe_r2(zs.numpy(), train_proprio, zt.numpy(), test_proprio),
        "params": sum(p.numel() for p in ae.parameters())}

    # 2. VLA vision tower features + fixed PCA projection, decoder trained on them
    from vla.model.policy import load_checkpoint
    from vla.model.presets import build_model

    if vla_checkpoint:
        vla, processor = load_checkpoint(vla_checkpoint)
        source = vla_checkpoint
    else:
        vla, processor = build_model("tiny", seed=seed)
        source = "tiny preset, random init (no trained checkpoint given)"
    tower = vla.vision_backbone.eval()
    ip = processor.image_processor

    @torch.no_grad()
    def feats(frames: np.ndarray) -> torch.Tensor:
        chunks = []
        for i in range(0, len(frames), 64):
            px = torch.stack([ip(f) for f in frames[i : i + 64]]).to(next(tower.parameters()).dtype)
            chunks.append(tower(px).float())
        return torch.cat(chunks)  # (N, P, D)

    t0 = time.perf_counter()
    ft = feats(test_frames)
    vla_ms = (time.perf_counter() - t0) / len(test_frames) * 1000
    fs = feats(train_frames)
    n, p, d = fs.shape
    grid = int(round(p**0.5))
    flat = fs.reshape(-1, d)
    mean = flat.mean(0)
    _, _, v = torch.pca_lowrank(flat - mean, q=8, center=False)  # (D, 8): the fixed projection

    def project(f: torch.Tensor) -> torch.Tensor:
        z = ((f - mean) @ v).reshape(len(f), grid, grid, 8).permute(0, 3, 1, 2)  # (N, 8, g, g)
        return F.interpolate(z, size=(8, 8), mode="bilinear", align_corners=False) if grid != 8 else z

    zs_v, zt_v = project(fs), project(ft)
    sd = zs_v.std((0, 2, 3), keepdim=True) + 1e-6
    zs_v, zt_v = zs_v / sd, zt_v / sd
    explained = float(((flat - mean) @ v).var(0).sum() / (flat - mean).var(0).sum())
    dec = FrameAutoencoder([16, 32, 64], 8, 1)
    t0 = time.perf_counter()
    _train_decoder(dec, zs_v, xs, steps, 2e-3, seed)
    train_s = time.perf_counter() - t0
    out["vla_tower_pca"] = _scores(dec, zt_v, test_frames) | {
        "encode_ms_per_frame": vla_ms, "train_s": train_s, "pca_explained_variance": explained,
        "feature_grid": [grid, grid, d], "tower": source, "tower_image_size": ip.image_size,
        "proprio_probe_r2": _probe_r2(zs_v.numpy(), train_proprio, zt_v.numpy(), test_proprio)}
    a, b = out["learned_autoencoder"], out["vla_tower_pca"]
    out["psnr_winner"] = "learned_autoencoder" if a["psnr"] >= b["psnr"] else "vla_tower_pca"
    logger.info("encoder study: learned AE PSNR %.2f (R2 %.2f, %.2f ms), VLA tower+PCA PSNR %.2f (R2 %.2f, %.2f ms)",
                a["psnr"], a["proprio_probe_r2"], a["encode_ms_per_frame"], b["psnr"], b["proprio_probe_r2"],
                b["encode_ms_per_frame"])
    return out
