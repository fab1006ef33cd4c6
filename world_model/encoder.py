"""Frame autoencoder: camera image <-> compact latent map (the world model's visual state).

A small strided-conv encoder maps a (3, S, S) frame to a (C, S/2^k, S/2^k) latent; a mirrored decoder
(nearest upsampling + conv, no transposed-conv checkerboards) maps it back to pixels. One network serves
all cameras (a learned camera embedding is added to the latent), which halves its parameters. It is
trained first, on frames only; the dynamics is then trained on its frozen latents, which stay fixed and
cannot collapse (the reason DINO-WM uses a frozen encoder). The comparison with the VLA vision tower's
features is in docs/world_model.md.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(min(8, cout), cout), nn.SiLU())


class FrameAutoencoder(nn.Module):
    """Encode frames (B, 3, S, S) in [0, 1] to latents (B, C, g, g) and decode them back."""

    def __init__(self, enc_channels: list[int], latent_channels: int, num_cameras: int):
        super().__init__()
        down, cin = [], 3
        for c in enc_channels:
            down += [nn.Conv2d(cin, c, 4, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.SiLU()]
            cin = c
        down += [_block(cin, cin), nn.Conv2d(cin, latent_channels, 1)]
        self.encoder = nn.Sequential(*down)
        self.camera_embed = nn.Parameter(torch.zeros(num_cameras, latent_channels, 1, 1))
        up, cin = [nn.Conv2d(latent_channels, enc_channels[-1], 3, padding=1), nn.SiLU(), _block(enc_channels[-1], enc_channels[-1])], enc_channels[-1]
        for c in reversed(enc_channels):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), _block(cin, c)]
            cin = c
        up.append(nn.Conv2d(cin, 3, 3, padding=1))
        self.decoder = nn.Sequential(*up)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, C, g, g)."""
        return self.encoder(frames * 2 - 1)

    def decode(self, latents: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        """(B, C, g, g) latents, (B,) camera indices -> (B, 3, S, S) in [0, 1] (unclamped)."""
        return self.decoder(latents + self.camera_embed[camera]) * 0.5 + 0.5

    def forward(self, frames: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(frames), camera)
