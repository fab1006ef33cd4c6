"""OpenVLA-OFT add-ons: the proprio projector (one extra input token) and the L1 regression action head."""

from __future__ import annotations

import torch
from torch import nn


class ProprioProjector(nn.Module):
    """Normalized proprio (B, P) -> one LLM token (B, 1, D), as OFT's `ProprioProjector`."""

    def __init__(self, proprio_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(proprio_dim, llm_dim, bias=True)
        self.act_fn1 = nn.GELU()
        self.fc2 = nn.Linear(llm_dim, llm_dim, bias=True)

    def forward(self, proprio: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act_fn1(self.fc1(proprio)))[:, None, :]  # (B, 1, D)


class MLPResNetBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class L1RegressionActionHead(nn.Module):
    """Continuous actions from the hidden states of the action slots (OFT's MLP-ResNet head).

    The 7 slot states of one chunk step are concatenated: (B, K*7, D) -> (B, K, 7*D) -> MLP-ResNet -> (B, K, 7).
    Trained with an L1 loss on normalized actions.
    """

    def __init__(self, llm_dim: int, action_dim: int = 7, num_blocks: int = 2) -> None:
        super().__init__()
        self.action_dim = action_dim
        in_dim = llm_dim * action_dim
        self.layer_norm1 = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, llm_dim)
        self.relu = nn.ReLU()
        self.blocks = nn.ModuleList([MLPResNetBlock(llm_dim) for _ in range(num_blocks)])
        self.layer_norm2 = nn.LayerNorm(llm_dim)
        self.fc2 = nn.Linear(llm_dim, action_dim)

    def forward(self, slot_states: torch.Tensor) -> torch.Tensor:
        b, n, d = slot_states.shape
        x = slot_states.reshape(b, n // self.action_dim, self.action_dim * d)  # (B, K, 7*D)
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))  # (B, K, 7)
