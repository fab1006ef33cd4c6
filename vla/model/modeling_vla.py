"""`VLAForActionPrediction`: OpenVLA on current transformers modules, plus the OpenVLA-OFT options.

Sequence layout (as the reference): `[embed(BOS), image patches..., (proprio token), embed(text[1:])...]`.
With left padding (batched inference) the pads come first and the patches go right after each sample's
BOS; position ids follow the attention mask, so a padded sample computes what it computes alone.
Labels are -100 on patches; the autoregressive loss is transformers' shifted mean cross entropy, so it
equals the reference loss. Parallel decoding (OFT) marks K x 7 action slots with the pad id under an
attention mask of 1; their input embeddings are zeroed and attention is bidirectional (`is_causal=False`).
The `action_queries` option adds a learned embedding per slot to those zeroed inputs (for shallow backbones;
off by default). The `vision_film` option conditions the vision towers on the instruction (vla.model.film; off
by default); `vision_backbone="conv_keypoints"` swaps the ViT towers for a CNN with keypoint tokens (tiny models).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForImageTextToText, LlamaForCausalLM, PreTrainedModel
from transformers.utils import ModelOutput

from vla.core.statistics import select_statistics
from vla.model.action_tokenizer import ActionTokenizer
from vla.model.configuration_vla import VLAConfig
from vla.model.decoding import greedy_decode, supports_fast_decoding
from vla.model.film import FiLMGenerator, InstructionPooler
from vla.model.heads import L1RegressionActionHead, ProprioProjector
from vla.model.vision import ConvKeypointBackbone, FusedMLPProjector, FusedVisionBackbone

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass
class VLAOutput(ModelOutput):
    """Outputs of a full (multimodal) forward pass."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # (B, L, V) over the multimodal sequence
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attention_mask: torch.Tensor | None = None  # (B, L) multimodal mask
    labels: torch.Tensor | None = None  # (B, L) multimodal labels
    actions: torch.Tensor | None = None  # (B, K, 7) normalized, L1 head only


class VLAPreTrainedModel(PreTrainedModel):
    config: VLAConfig
    config_class = VLAConfig
    base_model_prefix = "vla"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer", "Dinov2WithRegistersLayer", "SiglipEncoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _skip_keys_device_placement = "past_key_values"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if getattr(module, "zero_init", False):  # layers that must start at zero (FiLM: identity modulation)
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
            return
        if getattr(module, "torch_init", False):  # PyTorch's own init (the conv backbone: N(0, 0.02) starves it)
            module.reset_parameters()
            return
        super()._init_weights(module)


class VLAForActionPrediction(VLAPreTrainedModel):
    """Fused DINOv2 + SigLIP -> projector -> Llama, predicting 7-D actions as tokens (or via an L1 head)."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__(config)
        if config.vision_backbone == "conv_keypoints":
            self.vision_backbone = ConvKeypointBackbone(config.conv_channels, config.num_keypoints, config.keypoint_dim,
                                                        detector=config.film_detector)
        else:
            self.vision_backbone = FusedVisionBackbone(config.dino_config, config.siglip_config)
        self.projector = FusedMLPProjector(config.vision_dim, config.text_config.hidden_size)
        self.language_model = LlamaForCausalLM(config.text_config)
        d = config.text_config.hidden_size
        self.proprio_projector = ProprioProjector(config.proprio_dim, d) if config.use_proprio else None
        self.action_head = (
            L1RegressionActionHead(d, config.action_dim, config.l1_head_blocks) if config.action_head == "l1" else None
        )
        # learned per-slot query inputs (option, off by default: OFT feeds zeros)
        n_slots = config.action_chunk * config.action_dim
        self.action_queries = nn.Embedding(n_slots, d) if config.action_queries else None
        # instruction-conditioned vision towers (option, off by default: OpenVLA fuses language in the Llama only)
        self.instruction_pooler = (InstructionPooler(d, context_layers=config.film_text_layers,
                                                   max_positions=config.llm_max_length, queries=config.film_queries)
                                   if config.vision_film else None)
        self.film = (FiLMGenerator(d, self.vision_backbone.film_widths,
                                   detector_width=config.conv_channels if config.film_detector else 0)
                     if config.vision_film else None)
        # several instruction-conditioned passes: a learned embedding tells their tokens apart
        self.film_pass_embedding = (nn.Parameter(torch.randn(config.film_queries, config.vision_dim) * 0.02)
                                    if config.film_queries > 1 else None)
        self.action_tokenizer = ActionTokenizer(config.action_token_end_id, config.n_action_bins)
        self.post_init()

    # ---- embeddings -------------------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def project_images(self, pixel_values: torch.Tensor, instruction: torch.Tensor | None = None) -> torch.Tensor:
        """pixel_values (B, 6 * n_img, H, W) -> projected patches (B, n_img * N, D), each image its own patches.
        `instruction` (B, Q, D): the pooled prompt vectors that modulate the towers when `vision_film` is on; with
        Q = `film_queries` > 1 every image is seen Q times, once per vector (N = Q x the tower's tokens)."""
        b, c, h, w = pixel_values.shape
        n_img = self.config.num_images
        if c != 6 * n_img:
            raise ValueError(
                f"pixel_values has {c} channels; this model reads {n_img} camera(s) {self.config.cameras}, "
                f"i.e. {6 * n_img} channels (6 per image: DINOv2 then SigLIP normalization). Use the VLAProcessor."
            )
        if (h, w) != (self.config.image_size, self.config.image_size):
            raise ValueError(f"pixel_values is {h}x{w}; the model expects {self.config.image_size}x"
                             f"{self.config.image_size} (the processor resizes images)")
        dtype = self.projector.fc1.weight.dtype
        px = pixel_values.to(dtype).reshape(b * n_img, 6, h, w)
        film, q, detector = None, 1, None
        if self.film is not None:
            if instruction is None:
                raise ValueError("this model conditions its vision towers on the instruction (vision_film=True); "
                                 "call it with input_ids")
            q = instruction.shape[1]  # (B, Q, D) -> one (gamma, beta) per image of each sample and each query
            film = [(g.reshape(b, q, -1).repeat_interleave(n_img, 0).reshape(b * n_img * q, -1),
                     bt.reshape(b, q, -1).repeat_interleave(n_img, 0).reshape(b * n_img * q, -1))
                    for g, bt in self.film(instruction.to(dtype).reshape(b * q, -1))]
            px = px.repeat_interleave(q, 0)  # (B * n_img * Q, 6, H, W), the order of the FiLM pairs
            if self.config.film_detector:
                detector = self.film.detector(instruction.to(dtype).reshape(b * q, -1))
                detector = detector.reshape(b, q, -1).repeat_interleave(n_img, 0).reshape(b * n_img * q, -1)
        patches = (self.vision_backbone(px, film, detector) if detector is not None
                   else self.vision_backbone(px, film))  # (B * n_img * Q, N, Dv)
        if self.film_pass_embedding is not None:
            patches = patches.reshape(b * n_img, q, *patches.shape[1:]) + self.film_pass_embedding[None, :, None].to(patches.dtype)
        patches = patches.reshape(b * n_img, -1, patches.shape[-1])  # a pass's tokens follow the previous pass's
        projected = self.projector(patches)  # (B * n_img, Q * N, D)
        return projected.reshape(b, n_img * projected.shape[1], projected.shape[2])

    def prefix_embeddings(self, pixel_values: torch.Tensor, proprio: torch.Tensor | None,
                          instruction: torch.Tensor | None = None) -> torch.Tensor:
        """Everything spliced after BOS: image patches, then the proprio token when enabled."""
        prefix = self.project_images(pixel_values, instruction)  # (B, P, D)
        if self.proprio_projector is not None:
            if proprio is None:
                raise ValueError(f"this model was configured with use_proprio=True (dim {self.config.proprio_dim}); "
                                 "pass normalized proprio (B, P)")
            tok = self.proprio_projector(proprio.to(prefix.dtype))  # (B, 1, D)
            prefix = torch.cat([prefix, tok], dim=1)
        return prefix

    def slot_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Action slots of parallel decoding: pad-id tokens that are attended to. (B, S) bool."""
        if self.config.decoding != "parallel":
            return torch.zeros_like(input_ids, dtype=torch.bool)
        return (input_ids == self.config.pad_token_id) & attention_mask.bool()

    def build_multimodal_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        pixel_values: torch.Tensor,
        proprio: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Splice the prefix after each sample's BOS. Returns embeds (B, L, D), mask (B, L), labels, slots (B, L)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        text = self.get_input_embeddings()(input_ids)  # (B, S, D)
        slots = self.slot_mask(input_ids, attention_mask)  # (B, S)
        text = text * (~slots)[..., None].to(text.dtype)  # zeroed placeholder embeddings (OFT)
        instruction = None
        if self.instruction_pooler is not None:  # the prompt's tokens, without pads and action slots
            instruction = self.instruction_pooler(text, attention_mask.bool() & ~slots)  # (B, Q, D)
        if self.action_queries is not None:  # slot i of each sample gets query i
            n_slots = self.action_queries.num_embeddings
            slot_idx = (slots.long().cumsum(-1) - 1).clamp(0, n_slots - 1)  # count checked in gather_slots
            text = text + self.action_queries(slot_idx).to(text.dtype) * slots[..., None].to(text.dtype)
        prefix = self.prefix_embeddings(pixel_values, proprio, instruction).to(text.dtype)  # (B, P, D)
        b, s, d = text.shape
        p = prefix.shape[1]
        n_left = (attention_mask.cumsum(-1) == 0).sum(-1)  # (B,) left pads; BOS sits at n_left
        ar = torch.arange(s, device=input_ids.device)
        text_pos = ar[None] + p * (ar[None] > n_left[:, None]).long()  # (B, S)
        prefix_pos = n_left[:, None] + 1 + torch.arange(p, device=input_ids.device)[None]  # (B, P)
        embeds = text.new_zeros(b, s + p, d)
        embeds = embeds.scatter(1, text_pos[..., None].expand(-1, -1, d), text)
        embeds = embeds.scatter(1, prefix_pos[..., None].expand(-1, -1, d), prefix)  # (B, L, D)
        mask = attention_mask.new_zeros(b, s + p).scatter(1, text_pos, attention_mask)
        mask = mask.scatter(1, prefix_pos, torch.ones_like(prefix_pos, dtype=mask.dtype))  # (B, L)
        slots_mm = torch.zeros(b, s + p, dtype=torch.bool, device=input_ids.device).scatter(1, text_pos, slots)
        labels_mm = None
        if labels is not None:
            labels_mm = labels.new_full((b, s + p), IGNORE_INDEX).scatter(1, text_pos, labels)
        return embeds, mask, labels_mm, slots_mm

    @staticmethod
    def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
        pos = mask.long().cumsum(-1) - 1
        return pos.masked_fill(mask == 0, 1)  # (B, L)

    # ---- full forward -----------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        proprio: torch.Tensor | None = None,
        actions: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> VLAOutput:
        """Multimodal forward. `labels` (B, S) on text positions; `actions` (B, K, 7) normalized for the L1 head."""
        embeds, mask, labels_mm, slots = self.build_multimodal_inputs(input_ids, attention_mask, pixel_values,
                                                                        proprio, labels)
        use_l1 = self.action_head is not None
        out = self.language_model(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=self.position_ids_from_mask(mask),
            labels=labels_mm if (labels_mm is not None and self.config.decoding == "autoregressive") else None,
            output_hidden_states=bool(output_hidden_states) or use_l1,
            use_cache=False,
            **kwargs,
        )
        loss, pred_actions = out.loss, None
        if self.config.decoding == "parallel":
            if use_l1:
                pred_actions = self.action_head(self.gather_slots(out.hidden_states[-1], slots))  # (B, K, 7)
                if actions is not None:
                    loss = F.l1_loss(pred_actions, actions.to(pred_actions.dtype).reshape(pred_actions.shape))
            elif labels_mm is not None:
                loss = F.cross_entropy(out.logits[slots].float(), labels_mm[slots])  # unshifted: slot i -> token i
        return VLAOutput(
            loss=loss,
            logits=out.logits,
            hidden_states=out.hidden_states if output_hidden_states else None,
            attention_mask=mask,
            labels=labels_mm,
            actions=pred_actions,
        )

    def gather_slots(self, hidden: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """(B, L, D) states at the K*7 slots of each sample -> (B, K*7, D) (every sample has the same count)."""
        b = hidden.shape[0]
        n = self.config.action_chunk * self.config.action_dim
        counts = slots.sum(-1)
        if not torch.all(counts == n):
            raise ValueError(f"parallel decoding needs {n} action slots per sample, found {counts.tolist()}")
        return hidden[slots].reshape(b, n, hidden.shape[-1])

    # ---- decoding ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_action_tokens(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        proprio: torch.Tensor | None = None,
        use_cache: bool = True,
        max_new_tokens: int | None = None,
        return_scores: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding (argmax over the whole vocabulary, as the reference) of K*7 tokens. Returns (B, T)."""
        if self.config.decoding != "autoregressive":
            raise ValueError("generate_action_tokens is the autoregressive path; this model uses parallel decoding")
        n_new = max_new_tokens or self.config.action_chunk * self.config.action_dim
        embeds, mask, _, _ = self.build_multimodal_inputs(input_ids, attention_mask, pixel_values, proprio)
        pos = self.position_ids_from_mask(mask)
        lm = self.language_model
        if supports_fast_decoding(lm):
            ids, step_logits = greedy_decode(lm, embeds, mask, pos, n_new, use_cache=use_cache)
            return (ids, step_logits) if return_scores else ids
        # other attention implementations (e.g. flash-attention): transformers' forward at every step
        tokens, scores = [], []
        cache = None
        for step in range(n_new):
            if step == 0 or not use_cache:
                out = lm(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=use_cache,
                         logits_to_keep=1)
            else:
                out = lm(input_ids=tokens[-1][:, None], attention_mask=mask, position_ids=pos[:, -1:],
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values if use_cache else None
            logits = out.logits[:, -1].float()  # (B, V)
            nxt = logits.argmax(-1)  # (B,)
            tokens.append(nxt)
            scores.append(logits)
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            pos = torch.cat([pos, pos[:, -1:] + 1], dim=1)
            if not use_cache:
                embeds = torch.cat([embeds, self.get_input_embeddings()(nxt)[:, None]], dim=1)
        ids = torch.stack(tokens, dim=1)  # (B, T)
        return (ids, torch.stack(scores, dim=1)) if return_scores else ids

    @torch.no_grad()
    def predict_parallel(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        proprio: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """One forward pass over prompt + K*7 slots. Returns (token ids (B, K*7) or None, normalized (B, K, 7))."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds, mask, _, slots = self.build_multimodal_inputs(input_ids, attention_mask, pixel_values, proprio)
        out = self.language_model.model(inputs_embeds=embeds, attention_mask=mask,
                                        position_ids=self.position_ids_from_mask(mask), use_cache=False)
        states = self.gather_slots(out.last_hidden_state, slots)  # (B, K*7, D)
        b, k = states.shape[0], self.config.action_chunk
        if self.action_head is not None:
            return None, self.action_head(states).float().clamp(-1, 1)  # (B, K, 7)
        lo, hi = self.config.action_token_begin_id, self.config.action_token_end_id
        w = self.language_model.lm_head.weight[lo:hi]  # restrict to the action bins
        ids = (states @ w.T).argmax(-1) + lo  # (B, K*7)
        normalized = self.action_tokenizer.decode(ids.cpu().numpy()).reshape(b, k, self.config.action_dim)
        return ids, torch.from_numpy(normalized)

    @torch.no_grad()
    def predict_normalized(self, input_ids, pixel_values, attention_mask=None, proprio=None, use_cache=True):
        """Normalized actions (B, K, 7) float64 numpy, whichever decoding the config selects."""
        k, dim = self.config.action_chunk, self.config.action_dim
        if self.config.decoding == "parallel":
            _, normalized = self.predict_parallel(input_ids, pixel_values, attention_mask, proprio)
            return normalized.double().cpu().numpy()  # the L1 head returns a tensor on the model's device
        input_ids, attention_mask = self.ensure_prompt_suffix(input_ids, attention_mask)
        ids = self.generate_action_tokens(input_ids, pixel_values, attention_mask, proprio, use_cache=use_cache)
        return self.action_tokenizer.decode(ids.cpu().numpy()).reshape(ids.shape[0], k, dim)

    def ensure_prompt_suffix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        """The reference's 29871 rule: append the suffix token when the prompt does not already end with it."""
        suffix = self.config.prompt_suffix_token_id
        if suffix is None:
            return input_ids, attention_mask
        last = input_ids[:, -1] == suffix
        if bool(last.all()):
            return input_ids, attention_mask
        if bool(last.any()):
            raise ValueError(f"some prompts end with the suffix token {suffix} and some do not; build the batch "
                             "with VLAProcessor, which adds it to every prompt")
        input_ids = torch.cat([input_ids, input_ids.new_full((input_ids.shape[0], 1), suffix)], dim=1)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1)
        return input_ids, attention_mask

    def unnormalize(self, normalized: np.ndarray, unnorm_key: str | None) -> np.ndarray:
        """OpenVLA's un-normalization (float64, q01/q99 on masked dims, identity elsewhere)."""
        return select_statistics(self.config.norm_stats, unnorm_key).action.unnormalize(normalized, dtype=np.float64)

    @torch.no_grad()
    def predict_action(self, input_ids, pixel_values, unnorm_key=None, attention_mask=None, proprio=None,
                       use_cache=True) -> np.ndarray:
        """Un-normalized actions (B, K, 7) float64, as the reference `predict_action` (which returns (7,))."""
        select_statistics(self.config.norm_stats, unnorm_key)  # fail before any compute when the key is wrong
        normalized = self.predict_normalized(input_ids, pixel_values, attention_mask, proprio, use_cache)
        return self.unnormalize(normalized, unnorm_key)


AutoModelForImageTextToText.register(VLAConfig, VLAForActionPrediction, exist_ok=True)

__all__ = ["VLAForActionPrediction", "VLAPreTrainedModel", "VLAOutput", "IGNORE_INDEX"]
