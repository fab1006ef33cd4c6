"""The vision backbones and the fused GELU MLP projector (OpenVLA layout).

`FusedVisionBackbone` is OpenVLA's (DINOv2-with-registers + SigLIP, `vision_backbone="dinosiglip"`, the default).
`ConvKeypointBackbone` (`vision_backbone="conv_keypoints"`) is for tiny models trained from scratch on a few
hundred demos, where ViT towers without pretraining do not learn to localize objects (docs/history.md, L2).

Each tower returns the output of its second-to-last block, before any final norm, with prefix tokens
(DINOv2: CLS + registers; SigLIP: none) dropped, as timm's `get_intermediate_layers(n={depth - 2})` does in
the reference. The patch features are concatenated on the feature axis, DINOv2 first. The last block of each
tower (and SigLIP's pooling head) is kept so released checkpoints load without loss, but it is never run.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Dinov2WithRegistersModel, SiglipVisionModel

from vla.model.film import modulate, modulate_maps


class FusedVisionBackbone(nn.Module):
    """pixel_values (B, 6, H, W) -> patch features (B, N, D_dino + D_siglip)."""

    def __init__(self, dino_config, siglip_config) -> None:
        super().__init__()
        self.dino = Dinov2WithRegistersModel(dino_config)
        self.siglip = SiglipVisionModel(siglip_config)
        self.num_dino_prefix_tokens = 1 + dino_config.num_register_tokens

    @property
    def film_widths(self) -> list[int]:
        """Channel widths of the blocks that run (and that instruction FiLM modulates): DINOv2's, then SigLIP's."""
        dino = [self.dino.config.hidden_size] * (len(self.dino.encoder.layer) - 1)
        return dino + [self.siglip.config.hidden_size] * (len(self.siglip.encoder.layers) - 1)

    def dino_features(self, pixel_values: torch.Tensor, film: list | None = None) -> torch.Tensor:
        hidden = self.dino.embeddings(pixel_values)  # (B, 1 + R + N, Dd)
        for i, layer in enumerate(self.dino.encoder.layer[:-1]):
            hidden = modulate(layer(hidden, None), film[i] if film else None)
        return hidden[:, self.num_dino_prefix_tokens :]  # (B, N, Dd)

    def siglip_features(self, pixel_values: torch.Tensor, film: list | None = None) -> torch.Tensor:
        hidden = self.siglip.embeddings(pixel_values)  # (B, N, Ds)
        for i, layer in enumerate(self.siglip.encoder.layers[:-1]):
            hidden = modulate(layer(hidden, None), film[i] if film else None)
        return hidden  # (B, N, Ds)

    def forward(self, pixel_values: torch.Tensor, film: list | None = None) -> torch.Tensor:
        """`film`: optional (gamma, beta) per running block, in `film_widths` order (vla.model.film)."""
        n_dino = len(self.dino.encoder.layer) - 1
        dino = self.dino_features(pixel_values[:, :3], film[:n_dino] if film else None)  # (B, N, Dd)
        siglip = self.siglip_features(pixel_values[:, 3:6], film[n_dino:] if film else None)  # (B, N, Ds)
        return torch.cat([dino, siglip], dim=-1)  # (B, N, Dd + Ds)


class ConvKeypointBackbone(nn.Module):
    """pixel_values (B, 6, H, W) -> one token per keypoint (B, K, D): a small CNN and a spatial softmax.

    The deep spatial autoencoder / visuomotor-policy design (Levine et al. 2016, Finn et al. 2016): each of the
    K channels of the last conv layer becomes a distribution over image positions, and its expected (x, y) is the
    token, with a learned embedding saying which keypoint it is. Coordinates are explicit, so where an object is
    needs no learning of position embeddings; measured on 1,000 scenes of LiftNamedCube (wrist camera, the
    cubes' centroid from the image), this CNN reached a held-out L1 of 0.02 (normalized) in 1,000 steps where the
    tiny ViT towers stayed at 0.25 against 0.28 for predicting the mean. Reads the first 3 channels (the
    DINOv2-normalized image; the processor stays OpenVLA's). With `vision_film`, the instruction modulates every
    conv block, so the keypoints can follow the object the words name.

    `last_keypoints_xy` (B, K [+ 1 detector], 2) keeps the last call's image coordinates (x right, y down, in
    [-1, 1]) with their graph, for auxiliary losses on where a keypoint is (`sim_envs.grounding`).
    """

    def __init__(self, channels: int, keypoints: int, dim: int, detector: bool = False) -> None:
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv2d(3, channels, 5, stride=2, padding=2),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.Conv2d(channels, channels, 3, padding=1),
        ])
        self.keypoint_conv = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(keypoints))
        self.coords = nn.Linear(2, dim)
        self.keypoint_embedding = nn.Parameter(torch.randn(keypoints, dim) * 0.02)
        # film_detector: one more keypoint, where the instruction's vector matches the last maps (its own embedding)
        self.detector_embedding = nn.Parameter(torch.randn(1, dim) * 0.02) if detector else None
        self.channels = channels
        self.last_keypoints_xy: torch.Tensor | None = None
        for layer in [*self.convs, self.keypoint_conv, self.coords]:
            layer.torch_init = True  # PyTorch's fan-in init (VLAPreTrainedModel._init_weights)

    @property
    def film_widths(self) -> list[int]:
        return [self.channels] * len(self.convs)

    def forward(self, pixel_values: torch.Tensor, film: list | None = None,
                detector: torch.Tensor | None = None) -> torch.Tensor:
        """`detector` (B, channels), with `film_detector`: the instruction's vector; its dot product with the last
        maps is one more keypoint's map (B, K + 1, D out)."""
        h = pixel_values[:, :3]
        for i, conv in enumerate(self.convs):
            h = modulate_maps(torch.relu(conv(h)), film[i] if film else None)
        maps = self.keypoint_conv(h)  # (B, K, H', W')
        xy = self._expected_xy(maps * self.log_temperature.exp()[None, :, None, None])  # (B, K, 2)
        self.last_keypoints_xy = xy
        tokens = self.coords(xy) + self.keypoint_embedding.to(xy.dtype)  # (B, K, D)
        if self.detector_embedding is None:
            return tokens
        if detector is None:
            raise ValueError("this backbone has film_detector=True: pass the instruction's detector vector")
        match = torch.einsum("bc,bchw->bhw", detector.to(h.dtype), h)[:, None] / self.channels**0.5  # (B, 1, H', W')
        found_xy = self._expected_xy(match)
        self.last_keypoints_xy = torch.cat([xy, found_xy], 1)
        found = self.coords(found_xy) + self.detector_embedding.to(tokens.dtype)
        return torch.cat([tokens, found], 1)

    @staticmethod
    def _expected_xy(maps: torch.Tensor) -> torch.Tensor:
        """Spatial softmax: maps (B, K, H, W) -> each map's expected (x, y) in [-1, 1] (B, K, 2)."""
        b, k, hh, ww = maps.shape
        attention = torch.softmax(maps.reshape(b, k, -1), -1).reshape(b, k, hh, ww)
        ys = torch.linspace(-1, 1, hh, device=maps.device, dtype=maps.dtype)
        xs = torch.linspace(-1, 1, ww, device=maps.device, dtype=maps.dtype)
        return torch.stack([(attention.sum(2) * xs).sum(-1), (attention.sum(3) * ys).sum(-1)], -1)


class FusedMLPProjector(nn.Module):
    """OpenVLA's `no-align+fused-gelu-mlp`: fc1 (4x vision dim) -> GELU -> fc2 -> GELU -> fc3."""

    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim, bias=True)
        self.act_fn1 = nn.GELU()
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim, bias=True)
        self.act_fn2 = nn.GELU()
        self.fc3 = nn.Linear(llm_dim, llm_dim, bias=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.act_fn2(self.fc2(self.act_fn1(self.fc1(features)))))  # (B, N, D_llm)
