"""A faster imagined step at batch 1: the same computation as `WorldModel.step` + `WorldModel.decode`.

At batch 1 on a CPU an imagined step is a few tens of millions of multiply-adds spread over ~100 small
PyTorch operations, so per-operation overhead and generic kernels cost as much as the arithmetic.
`FastStep` keeps the arithmetic and removes the rest:
  - the dynamics runs as a traced TorchScript graph, frozen (`torch.jit.freeze` folds the parameters in)
    and passed through `optimize_for_inference` (measured: about half the time of the eager module);
  - every camera is decoded in one batch, the resize to the data's image size is two small matrix products
    (separable bilinear, the same weights as `F.interpolate`) instead of the generic resize kernel, and the
    uint8 conversion runs in the contiguous layout;
  - optionally (`decoder_dtype=torch.bfloat16`) the decoder runs in bfloat16, which CPUs with AVX512-BF16
    execute ~3x faster for these convolutions; frames then differ from float32 decoding by at most a few
    levels out of 255 (measured in docs/world_model.md). Off by default;
  - optionally (`precision="bfloat16"`, what `WorldModel.set_imagination_precision` selects) a bfloat16 copy of
    the dynamics runs too (a copy, not autocast, which re-casts every weight on every call: a fifth of the
    step), its outputs cast back to float32 so the rollout state stays float32, and the resize runs in
    bfloat16 before the uint8 conversion; both copies are channels-last (oneDNN's bfloat16 convolutions skip a
    layout copy per layer). Measured on the judge's model, 2 cores with AVX512-BF16/AMX: 2.5x float32 at batch
    32 (bench/results/world_model_speed.json, "batched").
The float32 result equals `WorldModel.step` + `WorldModel.decode` up to float rounding (at most 1 level per
pixel; tests/test_world_model_units.py checks it). `imagine` uses it unless `fast=False`.

Example:
    fast = FastStep(wm, size=wm.source_image_size)
    state, out, frames = fast(state, action)       # frames: {camera: uint8 (1, H, W, 3)}
"""

from __future__ import annotations

import copy
import logging
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from world_model.model import RolloutState, StepOutput, WorldModel

logger = logging.getLogger(__name__)


def resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) matrix M with M @ x == 1-D linear interpolation of x (align_corners=False, as F.interpolate)."""
    eye = torch.eye(n_in)[:, None, :]  # n_in signals of length n_in
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[:, 0].t().contiguous()


#: What `FastStep(precision=...)` and `WorldModel.set_imagination_precision` accept.
PRECISIONS = ("float32", "bfloat16")


class _Dynamics(nn.Module):
    """Normalized (latents (B,H,N,D), proprio (B,H,P), action (B,H,7)) -> next latent, next proprio, success
    logit and reward of the last step (float32; computed by a bfloat16 copy of the dynamics with `bfloat16=True`)."""

    def __init__(self, model: WorldModel, bfloat16: bool = False):
        super().__init__()
        self.bfloat16 = bfloat16
        self.dtype = torch.bfloat16 if bfloat16 else torch.float32
        self.dynamics = model.dynamics
        if bfloat16:  # channels-last: oneDNN's bfloat16 convolutions then skip a layout copy per layer (measured)
            self.dynamics = copy.deepcopy(model.dynamics).to(self.dtype, memory_format=torch.channels_last)

    def forward(self, latents: torch.Tensor, proprio: torch.Tensor, action: torch.Tensor):
        out = self.dynamics(latents.to(self.dtype), proprio.to(self.dtype), action.to(self.dtype), last_only=True)
        return tuple(out[k][:, -1].float() for k in ("latents", "proprio", "success_logit", "reward"))


class _Decode(nn.Module):
    """Normalized tokens (B, N, D)[, normalized proprio (B, P)] -> uint8 frames (B, K, H', W', 3) of every camera,
    in one decoder batch; the resize is two small matrix products (separable bilinear, as F.interpolate)."""

    def __init__(self, model: WorldModel, size: tuple[int, int], dtype: torch.dtype):
        super().__init__()
        s = model.config.image_size
        self.k, self.c, self.g, self.p = len(model.cameras), model.config.latent_channels, model.config.latent_grid, model.config.patch
        self.autoencoder = model.autoencoder
        if dtype != torch.float32:  # a copy in `dtype`, channels-last as the dynamics' copy
            self.autoencoder = copy.deepcopy(model.autoencoder).to(dtype, memory_format=torch.channels_last)
        self.dtype = dtype
        self.conditioned = model.autoencoder.proprio_map is not None or model.autoencoder.proprio_field is not None
        self.resize = tuple(size) != (s, s)
        self.register_buffer("mean", model.latent_mean[:, None, None].clone())
        self.register_buffer("std", model.latent_std[:, None, None].clone())
        # 255 * rows: the resize also scales to pixel levels (one pass less over the frames)
        self.register_buffer("rows", (255.0 * resize_matrix(s, int(size[0]))).to(dtype))  # (H', S)
        self.register_buffer("cols_t", resize_matrix(s, int(size[1])).t().contiguous().to(dtype))  # (S, W')
        self.register_buffer("cams", torch.arange(self.k))

    def forward(self, tokens: torch.Tensor, proprio: torch.Tensor):
        b = tokens.shape[0]
        k, c, p, g = self.k, self.c, self.p, self.g
        x = tokens.reshape(b, k, g // p, g // p, c, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(b * k, c, g, g)
        x = x * self.std + self.mean  # = WorldModel._to_maps
        prop = proprio.repeat_interleave(k, 0).to(self.dtype) if self.conditioned else None
        img = self.autoencoder.decode(x.to(self.dtype), self.cams.repeat(b), prop)  # (B*K, 3, S, S)
        # to levels 0-255 (in the decoder's dtype: bfloat16 steps are 1 level at the top of the range)
        img = self.rows @ img @ self.cols_t if self.resize else img * 255.0  # (B*K, 3, H', W')
        # Round in the contiguous CHW layout, then move the (smaller) uint8 array to HWC.
        img = img.add_(0.5).clamp_(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return img.reshape(b, k, img.shape[1], img.shape[2], 3)


def _freeze(module: nn.Module, example: tuple) -> torch.jit.ScriptModule:
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # Shape checks in the eager code become constants: right for the one traced shape.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module.eval(), example, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        for _ in range(2):  # the first calls run the optimization passes
            frozen(*example)
    return frozen


class FastStep:
    """`WorldModel.step` + `WorldModel.decode(..., size)` with less overhead (see the module docstring).

    Args:
        model: the world model (eval mode; its weights are copied into the graphs: rebuild after training).
        size: the (H, W) frames are decoded to (default: the training data's image size, what the sim renders).
        trace: run the dynamics as a traced, frozen TorchScript graph (traced for batch 1; other batch sizes
            use the eager module). Default: for the transformer dynamics only.
        decoder_dtype: torch.bfloat16 decodes with a bfloat16 copy of the decoder (faster on CPUs with
            bfloat16 instructions; frames differ by a few levels, measured in docs/world_model.md).
        precision: "bfloat16" = decoder_dtype bfloat16 and the dynamics under bfloat16 autocast (not traced).
    """

    def __init__(self, model: WorldModel, size: tuple[int, int] | None = None, *, trace: bool | None = None,
                 decoder_dtype: torch.dtype = torch.float32, precision: str = "float32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        bf16 = precision == "bfloat16"
        self.model = model.eval()
        self.size = tuple(model.source_image_size) if size is None else tuple(size)
        self.dynamics_eager = _Dynamics(model, bfloat16=bf16).eval()
        self.decode = _Decode(model, self.size, torch.bfloat16 if bf16 else decoder_dtype).eval()
        self.dynamics = self.dynamics_eager
        self.traced = False
        if trace is None:  # measured: tracing halves the transformer's step; the conv dynamics gains nothing
            trace = model.config.dynamics == "transformer" and not bf16
        if trace:
            h, n, d = model.config.history, model.dynamics.num_tokens, model.config.token_dim
            example = (torch.zeros(1, h, n, d), torch.zeros(1, h, model.proprio_dim), torch.zeros(1, h, 7))
            try:
                self.dynamics = _freeze(self.dynamics_eager, example)
                self.traced = True
            except Exception as e:  # noqa: BLE001 - the eager module computes the same thing, only slower
                logger.warning("could not trace the dynamics (%s: %s); using the eager module", type(e).__name__, e)

    def __call__(self, state: RolloutState, action: np.ndarray) -> tuple[RolloutState, StepOutput, dict[str, np.ndarray]]:
        """Like `model.step(state, action)` followed by `model.decode(out.latents, size, out.norm_proprio)`."""
        with torch.no_grad():
            dyn = self.dynamics if state.latents.shape[0] == 1 else self.dynamics_eager
            new_state, out = self.model.step(state, action, dynamics=dyn)
            arr = self.decode(out.latents, out.norm_proprio).cpu().numpy()
        return new_state, out, {c: arr[:, i] for i, c in enumerate(self.model.cameras)}
