"""Grounding pretraining: teach a tiny VLA's vision backbone (and its instruction FiLM) where the named objects are,
from rendered scenes with the simulator's ground truth, before it learns actions.

Why: OpenVLA starts from pretrained DINOv2/SigLIP towers; offline there are none, and a tiny model trained from
scratch on a few hundred demonstrations never learned which of several objects the instruction names: the
action loss carries that only in the few approach steps of each episode and in two of seven action dimensions
(docs/history.md, L2). Rendered scenes come with free, dense labels: for the same image under each candidate's
instruction, where the named object is and where it must go. A readout trained on those labels makes the
keypoints follow the named object; `vla-train init_from=<this output>` then starts from that model.

Samples: each (scene, named candidate) is rolled out by the task's scripted expert (DART noise as in
collection) and frames are taken at a few random steps, so the wrist camera is seen from where a policy will
look. Label (4 numbers, in units of 10 cm): the named object's x/y and its goal's x/y (plate, push target, or
the object itself for a lift), relative to the gripper.

    checkpoint, report = pretrain_grounding(GroundingSettings(tasks=["LiftNamedCube"]), model_config, out_dir)
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sim_envs.config import SimConfig

logger = logging.getLogger(__name__)

LABEL_SCALE = 0.1  # m: labels in units of 10 cm
LABEL_DIM = 4  # object x/y, goal x/y
EVAL_SEED_START = 1_000_000  # held-out scenes (sim_envs.evaluation's seeds)


@dataclass
class GroundingSettings:
    """What grounding pretraining renders and how long it trains.

    Attributes:
        tasks: language tasks whose scenes are rendered (every candidate of each scene is named once).
        sim: env config (image size and cameras: those the model reads must be among them).
        dr: domain-randomization level of the scenes, or several: scene `i` takes level `i % len(dr)`, so a vision
            trained here (and frozen after, `trainer.mode=freeze_vision`) has seen what a policy meets at each.
        scenes: scenes per task; `frames_per_rollout` frames of each (scene, candidate) rollout become samples.
        heldout_scenes: scenes per task (evaluation seeds) measured after training.
        max_expert_steps: frames are taken at step 0 and at random steps up to this one.
        action_noise: DART noise (m) on the expert's executed translation, as in collection.
        steps, batch_size, lr: optimization of the whole model plus the readout.
        keypoint_weight: weight of an L1 loss that puts one keypoint of a `conv_keypoints` model (the detector's
            with `film_detector`, else the first) on the named object's position in the first camera's image.
            The 4-number label alone is a sparse signal for "where in the image": a model can settle on
            predicting its median (docs/history.md L9). 0: off.
        goal_keypoint_weight: the same for a second keypoint (the first one after the detector's with
            `film_detector`, else the second) and the named goal (plate, push target; the object itself for a lift):
            a frozen vision then also tracks where the named object must go (docs/history.md L11). 0: off.
        workers: rendering processes.
        seed: of the frame choice, the readout and the batches.
    """

    tasks: Sequence[str] = ("LiftNamedCube",)
    sim: SimConfig = field(default_factory=lambda: SimConfig(image_size=84, cameras=["primary", "wrist"]))
    dr: str | Sequence[str] = "low"
    scenes: int = 150
    heldout_scenes: int = 20
    frames_per_rollout: int = 4
    max_expert_steps: int = 15
    action_noise: float = 0.01
    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-4
    keypoint_weight: float = 0.0
    goal_keypoint_weight: float = 0.0
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        self.dr = self.dr if isinstance(self.dr, str) else tuple(self.dr)
        if not self.dr:
            raise ValueError("grounding: dr names no level; give one (vla-ground dr=low) or several (vla-ground levels=[low,high])")
        if self.scenes < 1 or self.heldout_scenes < 1 or self.frames_per_rollout < 1 or self.steps < 1:
            raise ValueError("grounding: scenes, heldout_scenes, frames_per_rollout and steps must be >= 1")


def scene_level(settings: GroundingSettings, seed: int) -> str:
    """The DR level of scene `seed` (`GroundingSettings.dr`)."""
    return settings.dr if isinstance(settings.dr, str) else settings.dr[seed % len(settings.dr)]


def goal_position(state: dict[str, Any]) -> np.ndarray:
    """(3,) where the named object must go: the plate (`place_pos`), a push's target, else the object itself."""
    if "place_pos" in state:
        return np.asarray(state["place_pos"])
    if state.get("verb") == "push" and "target_pos" in state:
        return np.asarray(state["target_pos"])
    return np.asarray(state["object_pos"])


def grounding_label(state: dict[str, Any]) -> np.ndarray:
    """(4,) float32: the named object's and its goal's x/y relative to the gripper, in units of `LABEL_SCALE`."""
    ee = np.asarray(state["ee_pos"])[:2]
    obj = np.asarray(state["object_pos"])[:2]
    goal = goal_position(state)[:2]
    return (np.concatenate([obj - ee, goal - ee]) / LABEL_SCALE).astype(np.float32)


def image_xy(physics, camera: str, pos: np.ndarray) -> np.ndarray:
    """(2,) float32: where world point `pos` appears in `camera`'s image, x right and y down in [-1, 1] (a
    square image; the spatial softmax's coordinates). Beyond [-1, 1] or behind the camera: out of view."""
    model, data = physics.model, physics.data
    cid = model.camera(camera).id
    rel = data.cam_xmat[cid].reshape(3, 3).T @ (np.asarray(pos, np.float64) - data.cam_xpos[cid])
    if rel[2] >= 0:  # MuJoCo cameras look along -z
        return np.full(2, np.inf, np.float32)
    f = 1.0 / np.tan(np.deg2rad(model.cam_fovy[cid]) / 2)
    return np.array([rel[0] / -rel[2] * f, rel[1] / rel[2] * f], np.float32)


# ------------------------------------------------------------------------------------------- rendering (workers)
_ENV_CACHE: dict[str, Any] = {}


def _rollout_frames(job: tuple[str, int, GroundingSettings]) -> list[tuple[dict, str, np.ndarray, int, dict, dict]]:
    """All candidates of one scene: [(images, instruction, label, candidate, {camera: the named object's
    `image_xy`}, {camera: its goal's `image_xy`})] at a few steps of each rollout."""
    from sim_envs.config import make_env
    from sim_envs.experts import make_expert
    from vla.core.gym import observation_from_gym

    task, seed, settings = job
    level = scene_level(settings, seed)
    if (task, level) not in _ENV_CACHE:
        env = make_env(task, sim=settings.sim, dr=level)
        _ENV_CACHE[task, level] = (env, make_expert(env))
    env, expert = _ENV_CACHE[task, level]
    rng = np.random.default_rng([seed, settings.seed, 0x6A0D])
    _, info = env.reset(seed=seed)
    out = []
    for target in range(int(info.get("num_targets", 1))):
        obs, info = env.reset(seed=seed, options={"target": target})
        expert.reset(info["instruction"])
        picks = {0, *rng.integers(1, settings.max_expert_steps + 1, settings.frames_per_rollout - 1).tolist()}
        for step in range(max(picks) + 1):
            if step in picks:
                images = {c: np.asarray(obs[c], np.uint8) for c in settings.sim.cameras}
                state = env.unwrapped.privileged_state()
                physics = env.unwrapped.physics
                pixels = {c: image_xy(physics, c, state["object_pos"]) for c in settings.sim.cameras}
                goal = {c: image_xy(physics, c, goal_position(state)) for c in settings.sim.cameras}
                out.append((images, info["instruction"], grounding_label(state), target, pixels, goal))
            action = np.asarray(expert.act(observation_from_gym(obs, info)), np.float32)
            action[:3] += rng.normal(0.0, settings.action_noise, 3).astype(np.float32)
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
    return out


def render_samples(settings: GroundingSettings, seeds: Sequence[int], progress: bool = True) -> list[tuple]:
    """Samples of every task x seed, rendered in `settings.workers` spawned processes (MuJoCo's software renderer
    must not share a process with TensorFlow, see sim_envs.collect)."""
    from tqdm.auto import tqdm

    jobs = [(t, int(s), settings) for t in settings.tasks for s in seeds]
    samples: list[tuple] = []
    with mp.get_context("spawn").Pool(max(1, min(settings.workers, len(jobs)))) as pool:
        for scene in tqdm(pool.imap(_rollout_frames, jobs, chunksize=4), total=len(jobs), desc="grounding scenes",
                          unit="scene", disable=not progress):
            samples.extend(scene)
    return samples


# ------------------------------------------------------------------------------------------------- training
def _readout(dim: int):
    """Attention pool over the vision tokens (query: a learned vector plus the mean instruction embedding) -> 4."""
    import torch
    from torch import nn

    class GroundingReadout(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.attention = nn.MultiheadAttention(dim, 4 if dim % 4 == 0 else 1, batch_first=True)
            self.head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, LABEL_DIM))

        def forward(self, tokens, text, mask):
            m = mask[..., None].to(text.dtype)
            query = self.query + (text * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
            pooled, _ = self.attention(query, tokens, tokens, need_weights=False)
            return self.head(pooled[:, 0])

    return GroundingReadout()


def _predict(model, readout, processor, samples: Sequence[tuple], cameras: Sequence[str]):
    images = [s[0][cameras[0]] if len(cameras) == 1 else {c: s[0][c] for c in cameras} for s in samples]
    proprio = np.zeros((len(samples), processor.proprio_dim), np.float32) if processor.use_proprio else None
    batch = processor(images, [s[1] for s in samples], proprio=proprio)  # the readout does not read proprio
    text = model.get_input_embeddings()(batch["input_ids"])
    mask = batch["attention_mask"].bool()
    instruction = model.instruction_pooler(text, mask) if model.instruction_pooler is not None else None
    tokens = model.project_images(batch["pixel_values"], instruction)
    return readout(tokens, text, mask)


def _named_keypoint(model, samples: Sequence[tuple], cameras: Sequence[str], goal: bool = False):
    """After `_predict`: ((n, 2) image xy of the keypoint `keypoint_weight` (`goal`: `goal_keypoint_weight`)
    supervises, (n, 2) the named object's (goal's) `image_xy` in the first camera, (n,) bool in view), or None for
    a backbone without keypoints."""
    import torch

    xy = getattr(model.vision_backbone, "last_keypoints_xy", None)
    if xy is None:
        return None
    xy = xy.reshape(len(samples), -1, *xy.shape[1:])[:, 0]  # the first camera (and FiLM query) of each sample
    detector = bool(model.config.film_detector)
    xy = xy[:, (0 if detector else 1) if goal else (-1 if detector else 0)]
    target = torch.tensor(np.stack([s[5 if goal else 4][cameras[0]] for s in samples]), dtype=xy.dtype)
    return xy, torch.nan_to_num(target, posinf=9.0, neginf=-9.0), (target.abs() <= 1).all(-1)


def _keypoint_distance(named):
    """`_named_keypoint`'s output -> the in-view samples' mean |x| + |y| error over 2."""
    return (named[0] - named[1]).abs().mean(-1)[named[2]]


def keypoint_error(model, processor, samples: Sequence[tuple], cameras: Sequence[str],
                   goal: bool = False) -> float | None:
    """How far the keypoint `keypoint_weight` supervises lies from the named object (`goal`: the one
    `goal_keypoint_weight` supervises, from the named goal) (in-view samples, image units of [-1, 1]); None
    without keypoints. Works on any checkpoint of the model, e.g. after VLA training, to see whether the action
    stage kept what grounding taught the vision."""
    import torch

    errors = []
    with torch.no_grad():
        for i in range(0, len(samples), 64):
            batch = samples[i : i + 64]
            images = [s[0][cameras[0]] if len(cameras) == 1 else {c: s[0][c] for c in cameras} for s in batch]
            proprio = np.zeros((len(batch), processor.proprio_dim), np.float32) if processor.use_proprio else None
            inputs = processor(images, [s[1] for s in batch], proprio=proprio)
            text = model.get_input_embeddings()(inputs["input_ids"])
            mask = inputs["attention_mask"].bool()
            model.project_images(inputs["pixel_values"],
                                 model.instruction_pooler(text, mask) if model.instruction_pooler is not None else None)
            named = _named_keypoint(model, batch, cameras, goal)
            if named is None:
                return None
            errors.append(_keypoint_distance(named))
    errors = torch.cat(errors)
    return float(errors.mean()) if len(errors) else None


def heldout_scenes(settings: GroundingSettings, progress: bool = True) -> dict[str, list[tuple]]:
    """task -> the held-out samples grounding reports on (its `heldout_scenes` evaluation seeds)."""
    seeds = range(EVAL_SEED_START, EVAL_SEED_START + settings.heldout_scenes)
    return {t: render_samples(replace(settings, tasks=(t,)), seeds, progress) for t in settings.tasks}


def heldout_l1(model, readout, processor, samples: Sequence[tuple], cameras: Sequence[str]) -> dict[str, float]:
    """Mean L1 of the readout on `samples` (batches of 64): overall, and for the named object's and the goal's
    x/y apart (a task can fail on one of the two: which cube, or which plate); with keypoints, how far the
    supervised keypoint lies from the named object in the image (in-view samples, image units of [-1, 1])."""
    import torch

    labels = torch.tensor(np.stack([s[2] for s in samples]))
    preds, kp_err, goal_err = [], [], []
    with torch.no_grad():
        for i in range(0, len(samples), 64):
            preds.append(_predict(model, readout, processor, samples[i : i + 64], cameras))
            named = _named_keypoint(model, samples[i : i + 64], cameras)
            if named is not None:
                kp_err.append(_keypoint_distance(named))
                goal_err.append(_keypoint_distance(_named_keypoint(model, samples[i : i + 64], cameras, goal=True)))
    err = (torch.cat(preds) - labels).abs()
    out = {"all": float(err.mean()), "object": float(err[:, :2].mean()), "goal": float(err[:, 2:].mean())}
    if kp_err and len(torch.cat(kp_err)):
        out["keypoint"] = float(torch.cat(kp_err).mean())
    if goal_err and len(torch.cat(goal_err)):
        out["goal_keypoint"] = float(torch.cat(goal_err).mean())
    return out


def pretrain_grounding(settings: GroundingSettings, model_config, out_dir: str | Path, progress: bool = True,
                       torch_threads: int = 1) -> tuple[Path, dict[str, Any]]:
    """Render, train the model (`model_config`: a preset name or `vla.model.schema.ModelConfig`, the one
    `vla-train` will continue from) with the grounding readout, save it under `out_dir` (a checkpoint directory
    for `vla-train init_from=`) with `grounding.json`. Returns (out_dir, report)."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from vla.model.presets import build_model

    t0 = time.perf_counter()
    model, processor = build_model(model_config, seed=settings.seed)
    cameras = list(model.config.cameras)
    missing = [c for c in cameras if c not in settings.sim.cameras]
    if missing:
        raise ValueError(f"the model reads cameras {cameras} but grounding renders {list(settings.sim.cameras)}; "
                         f"add {missing} to the sim cameras")
    if model.instruction_pooler is None:
        logger.warning("the model has vision_film=false: its vision cannot depend on the instruction, so grounding "
                       "can only teach it where the objects are, not which one is named")
    train = render_samples(settings, range(settings.scenes), progress)
    held_by_task = heldout_scenes(settings, progress)
    held = [s for samples in held_by_task.values() for s in samples]
    render_s = time.perf_counter() - t0
    torch.set_num_threads(torch_threads)
    torch.manual_seed(settings.seed)
    readout = _readout(model.config.text_config.hidden_size)
    model.train()
    params = [*model.parameters(), *readout.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    labels = torch.tensor(np.stack([s[2] for s in train]))
    mean_label = labels.mean(0)
    rng = np.random.default_rng(settings.seed)
    bar = tqdm(range(settings.steps), desc="grounding", unit="step", disable=not progress)
    losses, keypoint_errors, goal_errors = [], [], []
    for _ in bar:
        idx = rng.integers(0, len(train), settings.batch_size)
        batch = [train[i] for i in idx]
        pred = _predict(model, readout, processor, batch, cameras)
        l1 = loss = F.l1_loss(pred, labels[idx])
        named = _named_keypoint(model, batch, cameras)
        if named is not None and named[2].any():
            kp = F.l1_loss(named[0][named[2]], named[1][named[2]])
            keypoint_errors.append(kp.item())
            if settings.keypoint_weight > 0:
                loss = loss + settings.keypoint_weight * kp
        named = _named_keypoint(model, batch, cameras, goal=True)
        if named is not None and named[2].any():
            kp = F.l1_loss(named[0][named[2]], named[1][named[2]])
            goal_errors.append(kp.item())
            if settings.goal_keypoint_weight > 0:
                loss = loss + settings.goal_keypoint_weight * kp
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(l1.item())
        bar.set_postfix(l1=f"{np.mean(losses[-50:]):.3f}")
    model.eval()
    held_labels = np.stack([s[2] for s in held])
    held_l1 = heldout_l1(model, readout, processor, held, cameras)
    mean_err = np.abs(held_labels - mean_label.numpy())
    report = {
        "heldout_l1": held_l1["all"],
        "heldout_l1_object": held_l1["object"],
        "heldout_l1_goal": held_l1["goal"],
        "heldout_keypoint_error": held_l1.get("keypoint"),
        "heldout_goal_keypoint_error": held_l1.get("goal_keypoint"),
        "heldout_l1_mean_label_object": float(mean_err[:, :2].mean()),
        "heldout_l1_mean_label_goal": float(mean_err[:, 2:].mean()),
        "heldout_samples": len(held),
        "heldout_l1_per_task": {t: heldout_l1(model, readout, processor, samples, cameras)
                                for t, samples in held_by_task.items()},
        "heldout_l1_mean_label": float(mean_err.mean()),
        "train_l1_last50": float(np.mean(losses[-50:])),
        "train_keypoint_error_last50": float(np.mean(keypoint_errors[-50:])) if keypoint_errors else None,
        "train_goal_keypoint_error_last50": float(np.mean(goal_errors[-50:])) if goal_errors else None,
        "train_samples": len(train),
        "render_s": round(render_s, 1),
        "train_s": round(time.perf_counter() - t0 - render_s, 1),
        "settings": {**asdict(settings), "sim": asdict(settings.sim)},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    processor.save_pretrained(out)
    (out / "grounding.json").write_text(json.dumps(report, indent=2, default=str))
    logger.info("grounding: held-out L1 %.3f (mean label %.3f; object %.3f of %.3f, goal %.3f of %.3f), %d samples, "
                "%.0f s", report["heldout_l1"], report["heldout_l1_mean_label"], report["heldout_l1_object"],
                report["heldout_l1_mean_label_object"], report["heldout_l1_goal"], report["heldout_l1_mean_label_goal"],
                len(train), time.perf_counter() - t0)
    return out, report
