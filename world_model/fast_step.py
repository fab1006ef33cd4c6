"""One imagined step as a single frozen TorchScript graph: dynamics + decoding of every camera + resize.

At batch 1 on a CPU an imagined step is a few million multiply-adds spread over ~100 small PyTorch
operations, so per-operation overhead and the generic kernels (bilinear resize, tensor layout changes)
cost as much as the arithmetic. `FastStep` traces the whole step once (latent dynamics, latent -> pixel
decoding of all cameras in one batch, resize to the data's image size as two small matrix products, the
uint8 conversion in HWC layout) and freezes it (`torch.jit.freeze` folds parameters into constants;
`optimize_for_inference` fuses what it can). The result equals `WorldModel.step` + `WorldModel.decode`
up to float rounding (tests/test_world_model_units.py checks it); `imagine` uses it when `fast=True`.

Example:
    fast = FastStep(wm, size=wm.source_image_size)
    state, out, frames = fast(state, action)       # frames: {camera: uint8 (1, H, W, 3)}
"""

from __future__ import annotations

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


class _StepGraph(nn.Module):
    """(latents (B,H,N,D), proprio (B,H,P), action (B,H,7)) normalized -> next latent, next proprio (normalized),
    success logit, reward and uint8 frames (B, K, H', W', 3)."""

    def __init__(self, model: WorldModel, size: tuple[int, int] | None):
        super().__init__()
        self.model = model
        s = model.config.image_size
        self.resize = size is not None and tuple(size) != (s, s)
        out_h, out_w = (s, s) if size is None else (int(size[0]), int(size[1]))
        self.register_buffer("rows", resize_matrix(s, out_h))  # (H', S)
        self.register_buffer("cols_t", resize_matrix(s, out_w).t().contiguous())  # (S, W')
        self.register_buffer("cams", torch.arange(len(model.cameras)))

    def forward(self, latents: torch.Tensor, proprio: torch.Tensor, action: torch.Tensor):
        m = self.model
        out = m.dynamics(latents, proprio, action)
        z = out["latents"][:, -1]
        p = out["proprio"][:, -1]
        maps = m._to_maps(z)  # (B, K, C, g, g)
        b, k = maps.shape[0], maps.shape[1]
        cam = self.cams.repeat(b)
        conditioned = m.autoencoder.proprio_map is not None or m.autoencoder.proprio_field is not None
        prop = p.repeat_interleave(k, 0) if conditioned else None
        img = m.autoencoder.decode(maps.flatten(0, 1), cam, prop)  # (B*K, 3, S, S)
        if self.resize:
            img = self.rows @ img @ self.cols_t  # separable bilinear resize, (B*K, 3, H', W')
        img = (img.permute(0, 2, 3, 1) * 255.0 + 0.5).clamp(0.0, 255.0).to(torch.uint8)
        return z, p, out["success_logit"][:, -1], out["reward"][:, -1], img.reshape(b, k, img.shape[1], img.shape[2], 3)


class FastStep:
    """`WorldModel.step` + `WorldModel.decode(..., size)` in one traced, frozen graph (see the module docstring).

    Args:
        model: the world model (put in eval mode; its weights are frozen into the graph: rebuild after training).
        size: the (H, W) frames are decoded to (default: the training data's image size, what the sim renders).
        batch: the batch size the graph is traced for (other batch sizes fall back to the eager path).
    """

    def __init__(self, model: WorldModel, size: tuple[int, int] | None = None, batch: int = 1, compile: bool = True):
        self.model = model.eval()
        self.size = tuple(model.source_image_size) if size is None else tuple(size)
        self.batch = int(batch)
        self.graph = _StepGraph(model, self.size).eval()
        self.compiled = False
        h, n, d = model.config.history, model.dynamics.num_tokens, model.config.token_dim
        example = (torch.zeros(batch, h, n, d), torch.zeros(batch, h, model.proprio_dim), torch.zeros(batch, h, 7))
        if compile:
            try:
                with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                    # Shape checks in the eager code become constants: right for the one traced shape.
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)
                    traced = torch.jit.trace(self.graph, example, check_trace=False)
                    self.graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
                    self.graph(*example)  # the first calls run the optimization passes
                    self.graph(*example)
                self.compiled = True
            except Exception as e:  # noqa: BLE001 - the eager graph computes the same thing, only slower
                logger.warning("could not trace the imagined step (%s: %s); using the eager path", type(e).__name__, e)

    def __call__(self, state: RolloutState, action: np.ndarray) -> tuple[RolloutState, StepOutput, dict[str, np.ndarray]]:
        """Like `model.step(state, action)` followed by `model.decode(out.latents, size, out.norm_proprio)`."""
        m = self.model
        with torch.no_grad():
            a = torch.from_numpy(m.norm_action(np.asarray(action, np.float32).reshape(-1, 7)))
            act = state.action.clone()
            act[:, -1] = a
            if state.pad and state.pad == act.shape[1] - 1:
                act[:, : state.pad] = a[:, None]  # the context is step 0 repeated (see WorldModel.step)
            if act.shape[0] == self.batch or not self.compiled:
                z, p, logit, reward, img = self.graph(state.latents, state.proprio, act)
            else:
                z, p, logit, reward, img = self.graph_eager(state.latents, state.proprio, act)
            new_state = RolloutState(
                latents=torch.cat([state.latents[:, 1:], z[:, None]], 1),
                proprio=torch.cat([state.proprio[:, 1:], p[:, None]], 1),
                action=torch.cat([act[:, 1:], act[:, -1:]], 1),
                pad=max(state.pad - 1, 0),
            )
            out = StepOutput(latents=z, proprio=m.unnorm_proprio(p.numpy()), norm_proprio=p,
                             success_prob=torch.sigmoid(logit).numpy(), reward=reward.numpy())
            arr = img.numpy()
        return new_state, out, {c: arr[:, i] for i, c in enumerate(m.cameras)}

    @property
    def graph_eager(self) -> _StepGraph:
        if not hasattr(self, "_eager"):
            self._eager = _StepGraph(self.model, self.size).eval()
        return self._eager
