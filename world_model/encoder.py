"""Frame autoencoder: camera image <-> compact latent map (the world model's visual state).

A small strided-conv encoder maps a (3, S, S) frame to a (C, S/2^k, S/2^k) latent. Two decoders:
  - `shuffle` (default): convolutions at the latent's resolution, then one 1x1 convolution to the pixels of
    each latent cell and a pixel shuffle (sub-pixel convolution). Every imagined step decodes every camera,
    so the decoder's speed bounds imagination speed: measured ~6x faster than `conv` for two frames on one
    CPU thread, at a higher reconstruction PSNR (docs/world_model.md).
  - `conv`: mirrored nearest-upsampling + conv blocks (the first version; kept so its checkpoints load).
With `proprio_dim` > 0 the decoder is also conditioned on the robot's proprio (normalized): a small MLP
maps it to a latent-sized map per camera that is added to the latent before decoding, trained with noise on
the latents (`trainer.ae_latent_noise`) so the decoder can draw the robot from the proprio when the latent
blurs. Measured on SquareWorld it gave no gain, so it is off by default (docs/world_model.md).
One network serves all cameras (a learned camera embedding is added to the latent). It is trained first,
on frames only; the dynamics is then trained on its frozen latents, which stay fixed and cannot collapse
(the reason DINO-WM uses a frozen encoder). The comparison with the VLA vision tower's features is in
docs/world_model.md.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(min(8, cout), cout), nn.SiLU())


def _conv_decoder(enc_channels: list[int], latent_channels: int) -> nn.Sequential:
    up, cin = [nn.Conv2d(latent_channels, enc_channels[-1], 3, padding=1), nn.SiLU(), _block(enc_channels[-1], enc_channels[-1])], enc_channels[-1]
    for c in reversed(enc_channels):
        up += [nn.Upsample(scale_factor=2, mode="nearest"), _block(cin, c)]
        cin = c
    up.append(nn.Conv2d(cin, 3, 3, padding=1))
    return nn.Sequential(*up)


class _Residual(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(x + self.conv(x))


def _shuffle_decoder(latent_channels: int, channels: int, blocks: int, factor: int) -> nn.Sequential:
    """Latent (C, g, g) -> (3, g*factor, g*factor): residual convs at g x g, then a sub-pixel convolution."""
    layers: list[nn.Module] = [nn.Conv2d(latent_channels, channels, 3, padding=1), nn.SiLU()]
    layers += [_Residual(channels) for _ in range(blocks)]
    layers += [nn.Conv2d(channels, 3 * factor * factor, 1), nn.PixelShuffle(factor)]
    return nn.Sequential(*layers)


class ProprioField(nn.Module):
    """Decoder features of the robot drawn from its proprio: an MLP of (Fourier features of the normalized
    proprio, the cell's image coordinates, the camera) evaluated at every cell of the latent grid.

    Where the robot appears is a smooth function of the proprio and the position in the image (the camera's
    projection), which a per-cell MLP learns far more easily than one global map of every cell at once.
    Its output is added to the decoder's features after the first convolution.
    """

    def __init__(self, proprio_dim: int, num_cameras: int, grid: int, channels: int, hidden: int = 128,
                 freqs: tuple[float, ...] = (1.0, 2.0, 4.0)):
        super().__init__()
        self.register_buffer("freqs", torch.tensor(freqs) * torch.pi)
        lin = torch.linspace(-1, 1, grid)
        self.register_buffer("coords", torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2))  # (g*g, 2)
        self.grid = grid
        self.inp = nn.Linear(proprio_dim * (1 + 2 * len(freqs)) + 2, hidden)
        self.camera = nn.Embedding(num_cameras, hidden)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, channels))

    def forward(self, proprio: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        """(B, P) normalized proprio, (B,) camera indices -> (B, channels, g, g)."""
        ang = proprio[:, :, None] * self.freqs  # (B, P, F)
        feat = torch.cat([proprio, ang.sin().flatten(1), ang.cos().flatten(1)], 1)  # (B, P * (1 + 2F))
        b, n = feat.shape[0], self.coords.shape[0]
        x = torch.cat([feat[:, None].expand(b, n, feat.shape[1]), self.coords[None].expand(b, n, 2)], 2)
        h = self.mlp(self.inp(x) + self.camera(camera)[:, None])  # (B, g*g, channels)
        return h.transpose(1, 2).reshape(b, -1, self.grid, self.grid)


class FrameAutoencoder(nn.Module):
    """Encode frames (B, 3, S, S) in [0, 1] to latents (B, C, g, g) and decode them back."""

    def __init__(self, enc_channels: list[int], latent_channels: int, num_cameras: int, *, decoder: str = "shuffle",
                 dec_channels: int = 128, dec_blocks: int = 1, proprio_dim: int = 0, grid: int = 0,
                 proprio_conditioning: str = "map"):
        super().__init__()
        down, cin = [], 3
        for c in enc_channels:
            down += [nn.Conv2d(cin, c, 4, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.SiLU()]
            cin = c
        down += [_block(cin, cin), nn.Conv2d(cin, latent_channels, 1)]
        self.encoder = nn.Sequential(*down)
        self.camera_embed = nn.Parameter(torch.zeros(num_cameras, latent_channels, 1, 1))
        if decoder == "conv":
            self.decoder = _conv_decoder(enc_channels, latent_channels)
        elif decoder == "shuffle":
            self.decoder = _shuffle_decoder(latent_channels, dec_channels, dec_blocks, 2 ** len(enc_channels))
        else:
            raise ValueError(f"world_model.decoder={decoder!r}: choose 'shuffle' or 'conv'")
        self.proprio_map = self.proprio_field = None
        if proprio_dim > 0 and proprio_conditioning == "field":
            if decoder != "shuffle":
                raise ValueError("world_model.proprio_conditioning=field needs decoder=shuffle")
            self.proprio_field = ProprioField(proprio_dim, num_cameras, grid, dec_channels)
        elif proprio_dim > 0:
            self.map_shape = (num_cameras, latent_channels, grid, grid)
            self.proprio_map = nn.Sequential(nn.Linear(proprio_dim, 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(),
                                             nn.Linear(256, num_cameras * latent_channels * grid * grid))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, C, g, g)."""
        return self.encoder(frames * 2 - 1)

    def decode(self, latents: torch.Tensor, camera: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, g, g) latents, (B,) camera indices[, (B, P) normalized proprio] -> (B, 3, S, S) in [0, 1]
        (unclamped). A proprio-conditioned decoder needs the proprio."""
        x = latents + self.camera_embed[camera]
        if (self.proprio_map is not None or self.proprio_field is not None) and proprio is None:
            raise ValueError("this decoder is conditioned on proprio: pass the (normalized) proprio of each frame")
        if self.proprio_field is not None:
            h = self.decoder[:2](x) + self.proprio_field(proprio, camera)  # first conv + SiLU, then the robot
            return self.decoder[2:](h) * 0.5 + 0.5
        if self.proprio_map is not None:
            maps = self.proprio_map(proprio).view(-1, *self.map_shape)  # (B, cams, C, g, g)
            x = x + maps[torch.arange(len(camera)), camera]
        return self.decoder(x) * 0.5 + 0.5

    def forward(self, frames: torch.Tensor, camera: torch.Tensor, proprio: torch.Tensor | None = None,
                latent_noise: float = 0.0) -> torch.Tensor:
        z = self.encode(frames)
        if latent_noise > 0:
            z = z + latent_noise * z.detach().std((1, 2, 3), keepdim=True) * torch.randn_like(z)
        return self.decode(z, camera, proprio)
