"""Where an imagined rollout departs from the sim rollout it shadows (same policy, same initial state).

The rule (`divergence`), on frames of every camera the two rollouts share:

1. Per step t, the error e_t is the mean absolute pixel difference between the sim frame and the imagined
   frame (in [0, 1], averaged over pixels, channels and cameras). Step 0 is the shared start frame.
2. The baseline is e_1, the error of the first imagined step: both rollouts left the same state with the same
   action, so e_1 is what the model's rendering costs while it is still on track (decoder blur plus one step
   of prediction). A model that matches the sim keeps e_t near e_1, whatever fraction of the image moves.
3. The rollouts diverge at the first step t >= 1 from which e_t exceeds max(ratio * e_1, min_error) for
   `sustain` consecutive steps (or for every step left, when fewer remain): one noisy frame is not a
   departure, a lasting gap is. `min_error` keeps a near-perfect e_1 from turning noise into a divergence.
4. Otherwise, if one rollout ends before the other (one of them judged the task solved, or stopped), they
   diverge at the first step only the longer one has: an episode that ends earlier in one is a divergence.
5. Otherwise they do not diverge (step None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

Frames = Mapping[str, np.ndarray]  # camera -> uint8 (T + 1, H, W, 3)


@dataclass(frozen=True)
class Divergence:
    """The outcome of the rule: `step` (None: no divergence) and why, with the per-step errors behind it."""

    step: int | None
    reason: str
    errors: np.ndarray  # (min(T_sim, T_model) + 1,) mean abs pixel error per shared step, in [0, 1]
    threshold: float
    sim_steps: int  # steps after the start frame
    model_steps: int


def _length(frames: Frames, side: str) -> int:
    lengths = {c: len(v) for c, v in frames.items()}
    if not lengths or min(lengths.values()) < 1:
        raise ValueError(f"the {side} rollout has no frames ({lengths}); each camera needs at least the start frame")
    if len(set(lengths.values())) > 1:
        raise ValueError(f"the {side} rollout's cameras have different lengths {lengths}: record them together")
    return next(iter(lengths.values()))


def step_errors(sim: Frames, model: Frames) -> np.ndarray:
    """Mean absolute pixel error per shared step (over every camera both have), in [0, 1]."""
    cams = [c for c in sim if c in model]
    if not cams:
        raise ValueError(f"the sim rollout's cameras {sorted(sim)} and the imagined one's {sorted(model)} share none")
    n = min(_length(sim, "sim"), _length(model, "imagined"))
    per_camera = []
    for c in cams:
        a, b = np.asarray(sim[c][:n]), np.asarray(model[c][:n])
        if a.shape[1:] != b.shape[1:]:
            if a.shape[1] != a.shape[2] or b.shape[1] != b.shape[2]:
                raise ValueError(f"camera {c!r}: sim frames {a.shape[1:]} and imagined {b.shape[1:]} differ and are "
                                 "not square; decode the imagined frames at the sim's size")
            from world_model.data import resize_frames

            b = resize_frames(b, a.shape[1])
        per_camera.append(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=(1, 2, 3)) / 255.0)
    return np.mean(per_camera, axis=0)


def divergence(sim: Frames, model: Frames, *, ratio: float = 2.0, min_error: float = 0.01,
               sustain: int = 2) -> Divergence:
    """Apply the module's rule to one sim rollout and one imagined rollout (camera -> (T + 1, H, W, 3))."""
    if ratio < 1 or min_error < 0 or sustain < 1:
        raise ValueError(f"need ratio >= 1, min_error >= 0, sustain >= 1; got {ratio}, {min_error}, {sustain}")
    e = step_errors(sim, model)
    ts, tm = _length(sim, "sim") - 1, _length(model, "imagined") - 1
    n = len(e)
    threshold = max(ratio * float(e[1]) if n > 1 else 0.0, min_error)
    above = e > threshold
    for t in range(1, n):
        window = above[t : t + sustain]
        if window.all():
            return Divergence(t, f"pixel error {e[t]:.3f} > {threshold:.3f} from step {t} on ({ratio:g}x step 1's "
                              f"{e[1]:.3f}, at least {min_error:g})", e, threshold, ts, tm)
    if ts != tm:
        shorter = "imagined" if tm < ts else "sim"
        return Divergence(min(ts, tm) + 1, f"the {shorter} rollout ends after step {min(ts, tm)}, the other goes on "
                          f"to step {max(ts, tm)}", e, threshold, ts, tm)
    return Divergence(None, f"no divergence: pixel error stays within {threshold:.3f} over {ts} steps", e, threshold,
                      ts, tm)


def divergence_step(sim: Frames, model: Frames, **rule) -> int | None:
    """The step where the imagined rollout departs from the sim (None: it does not); see `divergence`."""
    return divergence(sim, model, **rule).step
