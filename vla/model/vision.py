"""The fused DINOv2-with-registers + SigLIP featurizer and the fused GELU MLP projector (OpenVLA layout).

Each tower returns the output of its second-to-last block, before any final norm, with prefix tokens
(DINOv2: CLS + registers; SigLIP: none) dropped, as timm's `get_intermediate_layers(n={depth - 2})` does in
the reference. The patch features are concatenated on the feature axis, DINOv2 first. The last block of each
tower (and SigLIP's pooling head) is kept so released checkpoints load without loss, but it is never run.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Dinov2WithRegistersModel, SiglipVisionModel

from vla.model.film import modulate


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
