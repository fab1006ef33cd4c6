"""Greedy decoding over the Llama backbone's own decoder layers, without transformers' per-call set-up.

Why: on small models (the tiny presets, CPU) one `LlamaForCausalLM.forward` of a single token spends more
time building the causal mask, the rotary table, the output records and the cache bookkeeping than in its
layers, so the KV cache saved little. This loop does that set-up once per generation:
- the 4-D mask for the final length comes from transformers' `create_causal_mask` (so eager/sdpa get the
  mask form they expect, left padding included) and each forward uses its `[queries, :keys]` slice;
- rotary cos/sin are computed once for every position and sliced the same way;
- keys/values go into buffers preallocated for the whole generation (`KVBuffers`), written in place.
Then it calls the same `LlamaDecoderLayer`s, final norm and `lm_head` (last position only). Without the cache
it runs the full forward over the growing sequence at every step (the reference with `use_cache=False`),
through the same code, so the two differ only in caching. Logits equal `LlamaForCausalLM`'s bit for bit
(tests/test_model_tiny.py compares them).
"""

from __future__ import annotations

import torch
from transformers.masking_utils import create_causal_mask

SUPPORTED_ATTENTION = ("eager", "sdpa")


class KVBuffers:
    """Per-layer key/value buffers for `total` positions; the `update` protocol the attention layers call.

    `start` is the position of the first query of the current forward (the loop sets it); `update` writes
    the new keys/values there and returns views of everything up to the end of this forward.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.start = 0
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        end = self.start + key.shape[2]
        if layer_idx not in self.keys:
            b, h, _, d = key.shape
            self.keys[layer_idx] = key.new_empty(b, h, self.total, d)
            self.values[layer_idx] = value.new_empty(b, value.shape[1], self.total, value.shape[3])
        k, v = self.keys[layer_idx], self.values[layer_idx]
        k[:, :, self.start : end] = key
        v[:, :, self.start : end] = value
        return k[:, :, :end], v[:, :, :end]


def supports_fast_decoding(language_model) -> bool:
    """A Llama-layout causal LM (embed/layers/norm/rotary + lm_head) with eager or sdpa attention."""
    core = getattr(language_model, "model", None)
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    return (core is not None and all(hasattr(core, n) for n in needed) and hasattr(language_model, "lm_head")
            and getattr(core.config, "_attn_implementation", None) in SUPPORTED_ATTENTION
            and getattr(core.config, "is_causal", True))


def greedy_decode(language_model, embeds: torch.Tensor, mask: torch.Tensor, position_ids: torch.Tensor,
                  n_new: int, use_cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy `n_new` tokens after `embeds` (B, L, D) under `mask`/`position_ids` (B, L).

    Returns token ids (B, n_new) and the float32 logits of every step (B, n_new, V).
    """
    core = language_model.model
    b, length, _ = embeds.shape
    total = length + n_new - 1  # the last token is not fed back
    grow = torch.arange(1, n_new, device=position_ids.device)
    full_pos = torch.cat([position_ids, position_ids[:, -1:] + grow[None]], dim=1)  # (B, total)
    full_mask = torch.cat([mask, mask.new_ones(b, n_new - 1)], dim=1)  # (B, total)
    mask4d = create_causal_mask(config=core.config, inputs_embeds=embeds.new_empty(b, total, 0),
                                attention_mask=full_mask, past_key_values=None, position_ids=full_pos)
    cos, sin = core.rotary_emb(embeds, position_ids=full_pos)  # (B, total, head_dim)
    layers = core.layers[: core.config.num_hidden_layers]
    cache = KVBuffers(total) if use_cache else None
    hidden_in = embeds
    tokens, scores = [], []
    for step in range(n_new):
        end = length + step
        if use_cache and step > 0:
            start, hidden = end - 1, core.embed_tokens(tokens[-1])[:, None]  # (B, 1, D)
            cache.start = start
        else:
            start, hidden = 0, hidden_in  # prefill, or the full sequence without a cache
        step_mask = None if mask4d is None else mask4d[:, :, start:end, :end]
        rotary = (cos[:, start:end], sin[:, start:end])
        for layer in layers:
            hidden = layer(hidden, attention_mask=step_mask, position_embeddings=rotary,
                           position_ids=full_pos[:, start:end], past_key_values=cache, use_cache=use_cache)
        logits = language_model.lm_head(core.norm(hidden[:, -1:]))[:, -1].float()  # (B, V)
        nxt = logits.argmax(-1)
        tokens.append(nxt)
        scores.append(logits)
        if not use_cache and step + 1 < n_new:
            hidden_in = torch.cat([hidden_in, core.embed_tokens(nxt)[:, None].to(hidden_in.dtype)], dim=1)
    return torch.stack(tokens, dim=1), torch.stack(scores, dim=1)
