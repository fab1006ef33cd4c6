"""Instruction-conditioned vision (FiLM, Perez et al. 2018; as RT-1 conditions its EfficientNet): an option of
the tiny VLA, off by default so OpenVLA / OFT checkpoints load unchanged.

Why: in OpenVLA the instruction meets the image only inside the Llama. With the 2-layer tiny Llama trained from
scratch on a few hundred demos, that path did not learn which of several objects the instruction names
(docs/history.md, L1-L2): the policy went to the mean start position and lifted whatever was there. FiLM lets
the words scale and shift every channel of the vision towers, so "red" can highlight red patches before the
Llama sees them and the multi-object scene becomes the single-object one the model already servoes to.

The instruction vector is an attention pool (one learned query, several heads) over the prompt's token
embeddings, so the informative words can dominate the fixed prompt template. By default it is a bag of words:
"the orange cube on the green plate" and "the green cube on the orange plate" pool to the same vector, and the
towers cannot tell which colour names the cube (docs/history.md, L4). `film_text_layers > 0` first runs that
many bidirectional transformer layers with learned positions over the prompt, so each colour word carries
the noun it qualifies into the pool. `film_queries > 1` pools several instruction vectors (one learned query each)
and the model runs its towers once per vector: one sentence can name two things ("the orange cube on the green
plate"), and one channel-wise modulation has to find both at once, which the keypoint CNN did not learn (the
named cube stayed at chance, docs/history.md L4); one pass per query lets each pass look for one thing. Each modulated block's output (a ViT block's tokens, or a conv block's maps) becomes `h * (1 + gamma) + beta`; gamma and beta start at zero,
so a fresh model computes exactly what it computes without FiLM.
"""

from __future__ import annotations

import torch
from torch import nn


class InstructionPooler(nn.Module):
    """Prompt token embeddings (B, S, D) and a mask of the tokens to read (B, S) -> `queries` vectors (B, Q, D)."""

    def __init__(self, dim: int, num_heads: int = 4, context_layers: int = 0, max_positions: int = 1024,
                 queries: int = 1) -> None:
        super().__init__()
        heads = num_heads if dim % num_heads == 0 else 1
        # one query starts at zero (uniform attention); several start apart, or they would pool the same vector
        self.query = nn.Parameter(torch.zeros(1, 1, dim) if queries == 1 else torch.randn(1, queries, dim) * 0.5)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.positions = nn.Embedding(max_positions, dim) if context_layers else None
        self.context = None
        if context_layers:
            layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.context = nn.TransformerEncoder(layer, context_layers, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not bool(mask.any(-1).all()):
            raise ValueError("vision_film: a prompt has no instruction tokens to condition the vision towers on")
        if self.context is not None:  # word order: position = index among the read tokens (left pads skipped)
            pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
            if int(pos.max()) >= self.positions.num_embeddings:
                raise ValueError(f"vision_film: the prompt has {int(pos.max()) + 1} tokens; the instruction encoder "
                                 f"reads at most {self.positions.num_embeddings} (llm_max_length)")
            tokens = self.context(tokens + self.positions(pos).to(tokens.dtype), src_key_padding_mask=~mask.bool())
        query = self.query.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        pooled, _ = self.attention(query, tokens, tokens, key_padding_mask=~mask.bool(), need_weights=False)
        return self.norm(pooled)  # (B, Q, D)


class FiLMGenerator(nn.Module):
    """Instruction vector (B, D) -> a (gamma, beta) pair (B, width) for each modulated block, in order; with
    `detector_width`, also a vector (B, detector_width) to match against the last feature maps (`detector`)."""

    def __init__(self, dim: int, widths: list[int], detector_width: int = 0) -> None:
        super().__init__()
        self.widths = list(widths)
        self.hidden = nn.Sequential(nn.Linear(dim, dim), nn.GELU())
        self.out = nn.Linear(dim, 2 * sum(self.widths))
        self.out.zero_init = True  # identity modulation at initialization (VLAPreTrainedModel._init_weights)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.detect = nn.Linear(dim, detector_width) if detector_width else None

    def detector(self, instruction: torch.Tensor) -> torch.Tensor:
        """What the words look like in the last feature maps' channels (B, detector_width)."""
        return self.detect(self.hidden(instruction))

    def forward(self, instruction: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        params = self.out(self.hidden(instruction))  # (B, 2 * sum(widths))
        pairs, start = [], 0
        for w in self.widths:
            gamma, beta = params[:, start : start + w], params[:, start + w : start + 2 * w]
            pairs.append((gamma, beta))
            start += 2 * w
        return pairs


def modulate(hidden: torch.Tensor, film: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """hidden (B, N, C) -> hidden * (1 + gamma) + beta, per sample and channel; unchanged when film is None."""
    if film is None:
        return hidden
    gamma, beta = film
    return hidden * (1 + gamma[:, None].to(hidden.dtype)) + beta[:, None].to(hidden.dtype)


def modulate_maps(maps: torch.Tensor, film: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """Conv feature maps (B, C, H, W) -> maps * (1 + gamma) + beta per sample and channel."""
    if film is None:
        return maps
    gamma, beta = film
    return maps * (1 + gamma[:, :, None, None].to(maps.dtype)) + beta[:, :, None, None].to(maps.dtype)
