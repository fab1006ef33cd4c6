"""Where an imagined rollout departs from the sim rollout it shadows (same policy, same initial state).

The rule (`divergence`), on frames of every camera the two rollouts share:

1. Per step t, the error e_t is the mean absolute pixel difference between the sim frame and the imagined
   frame (in [0, 1], averaged over pixels, channels and cameras). Step 0 is the shared start frame.
2. Drift: the baseline is e_1, the error of the first imagined step. Both rollouts left the same state with
   the same action, so e_1 is what the model's rendering costs while it is still on track (decoder blur plus
   one step of prediction); a model that follows the sim keeps e_t near it. Step t is off when
   e_t > max(ratio * e_1, min_error) (`min_error` keeps a near-perfect e_1 from turning noise into a gap).
3. Lost: step t is also off when e_t exceeds the error of a flat frame of the sim frame's mean colour (per
   channel and camera): the imagined frame then shows less of the scene than a blank one. This catches a model
   that is off from step 1 on, which the relative test in 2 cannot.
4. The rollouts diverge at the first step t >= 1 from which every step is off for `sustain` consecutive
   steps (or for every step left, when fewer remain): one noisy frame is not a departure, a lasting gap is.
5. Otherwise, if one rollout ends before the other (one of them judged the task solved, or stopped), they
   diverge at the first step only the longer one has: an episode that ends earlier in one is a divergence.
6. Otherwise, if their verdicts differ (given `successes`), they diverge at the last step, where one of them
   judged the task solved and the other did not.
7. Otherwise they do not diverge (step None).
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


def _shared(sim: Frames, model: Frames):
    """The cameras both rollouts have, with the sim's and the imagined frames over their shared steps."""
    cams = [c for c in sim if c in model]
    if not cams:
        raise ValueError(f"the sim rollout's cameras {sorted(sim)} and the imagined one's {sorted(model)} share none")
    n = min(_length(sim, "sim"), _length(model, "imagined"))
    for c in cams:
        a, b = np.asarray(sim[c][:n]), np.asarray(model[c][:n])
        if a.shape[1:] != b.shape[1:]:
            if a.shape[1] != a.shape[2] or b.shape[1] != b.shape[2]:
                raise ValueError(f"camera {c!r}: sim frames {a.shape[1:]} and imagined {b.shape[1:]} differ and are "
                                 "not square; decode the imagined frames at the sim's size")
            from world_model.data import resize_frames

            b = resize_frames(b, a.shape[1])
        yield a.astype(np.float32), b.astype(np.float32)


def step_errors(sim: Frames, model: Frames) -> np.ndarray:
    """Mean absolute pixel error per shared step (over every camera both have), in [0, 1]."""
    return np.mean([np.abs(a - b).mean(axis=(1, 2, 3)) for a, b in _shared(sim, model)], axis=0) / 255.0


def flat_errors(sim: Frames, model: Frames) -> np.ndarray:
    """Per shared step, the error a flat frame of each sim frame's mean colour would have (as `step_errors`)."""
    flat = [np.abs(a - a.mean(axis=(1, 2), keepdims=True)).mean(axis=(1, 2, 3)) for a, _ in _shared(sim, model)]
    return np.mean(flat, axis=0) / 255.0


def divergence(sim: Frames, model: Frames, *, successes: tuple[bool, bool] | None = None, ratio: float = 2.0,
               min_error: float = 0.01, sustain: int = 2) -> Divergence:
    """Apply the module's rule to one sim rollout and one imagined rollout (camera -> (T + 1, H, W, 3));
    `successes`: (sim's verdict, the imagined rollout's), when known."""
    if ratio < 1 or min_error < 0 or sustain < 1:
        raise ValueError(f"need ratio >= 1, min_error >= 0, sustain >= 1; got {ratio}, {min_error}, {sustain}")
    e, flat = step_errors(sim, model), flat_errors(sim, model)
    ts, tm = _length(sim, "sim") - 1, _length(model, "imagined") - 1
    n = len(e)
    threshold = max(ratio * float(e[1]) if n > 1 else 0.0, min_error)
    off = (e > threshold) | (e > flat)
    for t in range(1, n):
        if off[t : t + sustain].all():
            why = (f"pixel error {e[t]:.3f} > {flat[t]:.3f}, a flat frame's, from step {t} on" if e[t] > flat[t] else
                   f"pixel error {e[t]:.3f} > {threshold:.3f} from step {t} on ({ratio:g}x step 1's {e[1]:.3f}, at "
                   f"least {min_error:g})")
            return Divergence(t, why, e, threshold, ts, tm)
    if ts != tm:
        shorter = "imagined" if tm < ts else "sim"
        return Divergence(min(ts, tm) + 1, f"the {shorter} rollout ends after step {min(ts, tm)}, the other goes on "
                          f"to step {max(ts, tm)}", e, threshold, ts, tm)
    if successes is not None and bool(successes[0]) != bool(successes[1]):
        solved, other = ("sim", "imagined rollout") if successes[0] else ("imagined rollout", "sim")
        return Divergence(ts, f"the {solved} judges the task solved at step {ts}, the {other} does not", e, threshold,
                          ts, tm)
    return Divergence(None, f"no divergence: pixel error stays within {threshold:.3f} over {ts} steps", e, threshold,
                      ts, tm)


def divergence_step(sim: Frames, model: Frames, **rule) -> int | None:
    """The step where the imagined rollout departs from the sim (None: it does not); see `divergence`."""
    return divergence(sim, model, **rule).step
