"""How a policy sees LIBERO and how its actions reach LIBERO: the OpenVLA / OpenVLA-OFT conventions as options.

LIBERO renders both cameras bottom-up (robosuite's OpenGL frames), its gripper command is -1 open / +1 close,
and its state is an end-effector position, a quaternion (x, y, z, w) and two finger joints. Our contract is
upright images, a gripper in [0, 1] with 1 = open, and whatever proprio the policy was trained on. The options
below turn one into the other; `PRESETS` holds the published evals' values (openvla/openvla c8f03f48
`experiments/robot/libero/run_libero_eval.py` with `libero_utils.py`, `openvla_utils.py`, `robot_utils.py`;
moojink/openvla-oft 213c5ff8, same files):

    rotate_180   frames turned 180 degrees (`img[::-1, ::-1]`), because OpenVLA's regenerated `*_no_noops`
                 training data stores them upright
    resize       `reference`: JPEG round trip (quality 95) then Lanczos-3 with antialiasing to `image_size`,
                 as the RLDS builder wrote the training frames (TensorFlow, exactly the reference's ops);
                 `none`: frames as rendered (the policy's processor resizes)
    center_crop  OpenVLA's test-time crop for checkpoints trained with random crops: the central 0.9 of the
                 area, resized back to `image_size` bilinearly (`tf.image.crop_and_resize`, reimplemented)
    cameras      `primary` (agentview) and optionally `wrist` (robot0_eye_in_hand): OFT reads both
    state        `none` (OpenVLA reads no proprio) or `oft8`: position, quaternion -> axis-angle, the two
                 finger joints (OFT's 8-D state, as in the regenerated datasets' `state`)
    rotation     quaternion -> axis-angle of `oft8`: `raw` (robosuite's `quat2axisangle`, what the reference
                 and the training data use) or `antipodal` (q -> -q when w < 0 first; see docs/libero.md: with
                 this benchmark build it flips the sign of the axis-angle whenever w dips below 0)
    gripper      `binarize` (reference: 2g - 1, sign, then inverted: -1 open / +1 close) or `continuous`
                 (1 - 2g, no sign)
    unnorm_key   statistics key of a checkpoint: `auto` picks `<suite>` or else `<suite>_no_noops` (the
                 reference's rule; LIBERO-PRO suites use their base suite's key)
    execute_steps  actions of a chunk run open loop before the next query (None: the whole chunk, OFT's 8)

The benchmark worker builds the raw observation (`raw_observation`: `primary` and `wrist` images as rendered,
proprio = the 9 raw state numbers) and turns the policy's actions into env actions
(`env_actions`); `LiberoPolicyAdapter` wraps the policy on the server side and applies the image and state
options. numpy only at import (TensorFlow is imported for `resize=reference` when first used), so the worker
in the LIBERO venv imports this module too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional, Sequence

import numpy as np

from vla.core.types import GRIPPER_INDEX, Observation, Policy
from vla.policy.wrappers import PolicyWrapper

#: LIBERO observation keys of the two cameras, by our camera name.
CAMERA_KEYS = {"primary": "agentview_image", "wrist": "robot0_eye_in_hand_image"}
#: The raw proprio the worker sends: eef position (3), eef quaternion x, y, z, w (4), finger joints (2).
RAW_STATE_KEYS = (("robot0_eef_pos", 3), ("robot0_eef_quat", 4), ("robot0_gripper_qpos", 2))
RAW_STATE_DIM = 9
#: OpenVLA's center crop keeps this fraction of the image area (each side scaled by its square root).
CROP_AREA = 0.9
JPEG_QUALITY = 95  # tf.image.encode_jpeg's default, which the reference relies on

PRESET_NAMES = ("auto", "openvla", "openvla_oft", "native")
RESIZE = ("reference", "none")
STATES = ("none", "oft8")
ROTATIONS = ("raw", "antipodal")
GRIPPERS = ("binarize", "continuous")

PRESETS: dict[str, dict[str, Any]] = {
    # OpenVLA fine-tuned on LIBERO: one third-person image, no proprio, one action per query.
    "openvla": dict(rotate_180=True, resize="reference", center_crop=True, cameras=("primary",), state="none",
                    gripper="binarize"),
    # OpenVLA-OFT: both cameras, 8-D state, chunks of 8 executed open loop.
    "openvla_oft": dict(rotate_180=True, resize="reference", center_crop=True, cameras=("primary", "wrist"),
                        state="oft8", gripper="binarize"),
    # Any other policy: upright frames as rendered, the LIBERO state, a continuous gripper.
    "native": dict(rotate_180=True, resize="none", center_crop=False, cameras=("primary", "wrist"), state="oft8",
                   gripper="continuous"),
}


@dataclass
class LiberoConventions:
    """`libero.conventions.*` of `vla-eval`: a preset and per-field overrides (None: the preset's value).

    `preset=auto`: `openvla_oft` for a VLA checkpoint that reads the wrist camera and proprio, `openvla` for
    any other VLA checkpoint, `native` for every other policy kind (`resolve`).
    """

    preset: str = "auto"  # auto | openvla | openvla_oft | native
    rotate_180: Optional[bool] = None
    resize: Optional[str] = None  # reference | none
    image_size: int = 224  # output side of resize=reference and of the center crop
    center_crop: Optional[bool] = None
    cameras: Optional[list[str]] = None  # subset of [primary, wrist]
    state: Optional[str] = None  # none | oft8
    rotation: str = "raw"  # raw | antipodal (oft8's quaternion -> axis-angle)
    gripper: Optional[str] = None  # binarize | continuous
    unnorm_key: str = "auto"  # auto: <suite> or <suite>_no_noops, whichever the checkpoint carries
    execute_steps: Optional[int] = None  # actions of a chunk run open loop (None: all of it)

    def __post_init__(self) -> None:
        _check("preset", self.preset, PRESET_NAMES)
        _check("rotation", self.rotation, ROTATIONS)
        if self.resize is not None:
            _check("resize", self.resize, RESIZE)
        if self.state is not None:
            _check("state", self.state, STATES)
        if self.gripper is not None:
            _check("gripper", self.gripper, GRIPPERS)
        if self.cameras is not None:
            cams = list(self.cameras)
            if not cams or "primary" not in cams or any(c not in CAMERA_KEYS for c in cams):
                raise ValueError(f"libero.conventions.cameras={cams}: must contain primary and name only "
                                 f"{list(CAMERA_KEYS)}")
        if self.image_size < 8:
            raise ValueError(f"libero.conventions.image_size={self.image_size} must be >= 8 pixels")
        if self.execute_steps is not None and self.execute_steps < 1:
            raise ValueError(f"libero.conventions.execute_steps={self.execute_steps} must be >= 1 (or null: all)")


def _check(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"libero.conventions.{name}={value!r}; choose one of {list(allowed)}")


@dataclass(frozen=True)
class Conventions:
    """Every option with its value (what `resolve` returns and the results record)."""

    preset: str
    rotate_180: bool
    resize: str
    image_size: int
    center_crop: bool
    cameras: tuple[str, ...]
    state: str
    rotation: str
    gripper: str
    unnorm_key: str = "auto"
    execute_steps: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        return d


def preset_for(policy: Policy | None) -> str:
    """The preset `auto` means for this policy (see `LiberoConventions`)."""
    config = getattr(policy, "config", None)
    if config is None or not hasattr(config, "use_proprio"):  # not a VLA checkpoint
        return "native"
    reads_wrist = "wrist" in tuple(getattr(config, "cameras", ()) or ())
    return "openvla_oft" if reads_wrist and bool(config.use_proprio) else "openvla"


def resolve(options: LiberoConventions | None = None, policy: Policy | None = None) -> Conventions:
    """Fill every unset field from the preset (`auto`: from the policy, `preset_for`)."""
    options = options or LiberoConventions()
    name = preset_for(policy) if options.preset == "auto" else options.preset
    values = dict(PRESETS[name])
    for key in ("rotate_180", "resize", "center_crop", "cameras", "state", "gripper"):
        given = getattr(options, key)
        if given is not None:
            values[key] = tuple(given) if key == "cameras" else given
    return Conventions(preset=name, image_size=int(options.image_size), rotation=options.rotation,
                       unnorm_key=options.unnorm_key, execute_steps=options.execute_steps, **values)


# ------------------------------------------------------------------------------------------------ benchmark side
def raw_observation(obs: dict, instruction: str, timestamp: float = 0.0) -> Observation:
    """What the worker sends: both cameras as rendered and the 9 raw state numbers (`RAW_STATE_KEYS`)."""
    images = {name: np.ascontiguousarray(obs[key]) for name, key in CAMERA_KEYS.items()}
    proprio = np.concatenate([np.asarray(obs[key], np.float64).reshape(n) for key, n in RAW_STATE_KEYS])
    return Observation(images=images, proprio=proprio, instruction=instruction, timestamp=timestamp)


def env_actions(actions: np.ndarray, gripper: str) -> np.ndarray:
    """Contract actions (7,) or (K, 7), gripper in [0, 1] with 1 = open -> LIBERO's (-1 open / +1 close), float64.

    `binarize` is the reference's `normalize_gripper_action(binarize=True)` then `invert_gripper_action`:
    g -> -sign(2g - 1); `continuous` is 1 - 2g.
    """
    _check("gripper", gripper, GRIPPERS)
    a = np.array(actions, dtype=np.float64)
    g = 2.0 * a[..., GRIPPER_INDEX] - 1.0
    a[..., GRIPPER_INDEX] = -np.sign(g) if gripper == "binarize" else -g
    return a


# ------------------------------------------------------------------------------------------------ policy side
def quat_to_axis_angle(quat: np.ndarray, rotation: str = "raw") -> np.ndarray:
    """(x, y, z, w) -> axis * angle, float64: robosuite's `quat2axisangle` (`raw`), or with q -> -q for w < 0."""
    _check("rotation", rotation, ROTATIONS)
    q = np.array(quat, dtype=np.float64).reshape(4)
    if rotation == "antipodal" and q[3] < 0:
        q = -q
    w = min(1.0, max(-1.0, float(q[3])))
    den = math.sqrt(1.0 - w * w)
    if den == 0.0:  # a zero rotation (robosuite tests math.isclose(den, 0.0), i.e. exactly 0)
        return np.zeros(3)
    return q[:3] * 2.0 * math.acos(w) / den


def policy_state(raw: np.ndarray, state: str, rotation: str = "raw") -> np.ndarray:
    """The policy's proprio from the 9 raw numbers: `none` -> (0,), `oft8` -> pos, axis-angle, fingers (8,)."""
    _check("state", state, STATES)
    raw = np.asarray(raw, np.float64).reshape(-1)
    if raw.shape[0] != RAW_STATE_DIM:
        raise ValueError(f"raw LIBERO state has {raw.shape[0]} numbers, expected {RAW_STATE_DIM} "
                         "(eef pos 3, eef quat xyzw 4, finger joints 2)")
    if state == "none":
        return np.zeros(0)
    return np.concatenate([raw[:3], quat_to_axis_angle(raw[3:7], rotation), raw[7:9]])


def reference_resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (size, size, 3): JPEG round trip at quality 95, Lanczos-3 with antialiasing, rounded and clipped.

    The RLDS builder stored LIBERO frames as JPEG and the data pipeline resized them with `tf.image.resize`
    (lanczos3, antialias); the reference eval does the same to every frame. TensorFlow's codec and kernel are
    the reference, so this calls them (PIL's Lanczos and JPEG differ by a few levels per pixel).
    """
    import tensorflow as tf  # only here: a LIBERO eval with resize=none never loads it

    img = tf.io.decode_image(tf.image.encode_jpeg(np.ascontiguousarray(image), quality=JPEG_QUALITY),
                             expand_animations=False, dtype=tf.uint8)
    img = tf.image.resize(img, (size, size), method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8).numpy()


def center_crop(image: np.ndarray, size: int, area: float = CROP_AREA) -> np.ndarray:
    """OpenVLA's test-time crop: the central `area` of the image, bilinearly resized to (size, size), uint8.

    The reference converts to float in [0, 1], calls `tf.image.crop_and_resize` with the box
    [(1 - s) / 2, (1 - s) / 2, (1 + s) / 2, (1 + s) / 2], s = sqrt(area), and converts back with
    `convert_image_dtype(saturate=True)`: x * 255.5 truncated. This is that kernel in float32, sample for sample.
    """
    h, w = image.shape[:2]
    s = np.sqrt(np.float32(area), dtype=np.float32)
    lo = (np.float32(1) - s) / np.float32(2)
    hi = lo + s
    x = image.astype(np.float32) * np.float32(1.0 / 255.0)  # (H, W, 3) in [0, 1]

    def coords(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = (hi - lo) * np.float32(n_in - 1) / np.float32(size - 1)
        pos = lo * np.float32(n_in - 1) + np.arange(size, dtype=np.float32) * scale  # (size,)
        low = np.floor(pos)
        return low.astype(np.int64), np.ceil(pos).astype(np.int64), (pos - low).astype(np.float32)

    y0, y1, fy = coords(h)
    x0, x1, fx = coords(w)
    fx = fx[None, :, None]
    top = x[y0][:, x0] + (x[y0][:, x1] - x[y0][:, x0]) * fx
    bottom = x[y1][:, x0] + (x[y1][:, x1] - x[y1][:, x0]) * fx
    out = top + (bottom - top) * fy[:, None, None]
    out = np.clip(out, 0.0, 1.0) * np.float32(255.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def policy_image(image: np.ndarray, conventions: Conventions) -> np.ndarray:
    """One rendered frame -> what the policy gets (rotation, resize, crop, in the reference's order)."""
    img = np.ascontiguousarray(image[::-1, ::-1]) if conventions.rotate_180 else np.asarray(image)
    if conventions.resize == "reference":
        img = reference_resize(img, conventions.image_size)
    if conventions.center_crop:
        img = center_crop(img, conventions.image_size)
    return np.ascontiguousarray(img)


def policy_observation(raw: Observation, conventions: Conventions) -> Observation:
    """The worker's raw observation -> the observation the policy reads under `conventions`."""
    missing = [c for c in conventions.cameras if c not in raw.images]
    if missing:
        raise ValueError(f"the LIBERO observation lacks cameras {missing}; it has {sorted(raw.images)}")
    images = {c: policy_image(raw.images[c], conventions) for c in conventions.cameras}
    proprio = policy_state(raw.proprio, conventions.state, conventions.rotation)
    return Observation(images=images, proprio=proprio, instruction=raw.instruction, timestamp=raw.timestamp)


class LiberoPolicyAdapter(PolicyWrapper):
    """Serves `base` to the LIBERO worker: raw LIBERO observations in, contract actions out.

    The image and state options apply here (the policy's process, where TensorFlow may be loaded: nothing
    renders in it); the gripper mapping and chunk execution apply in the worker (`env_actions`).
    """

    def __init__(self, base: Policy, conventions: Conventions) -> None:
        super().__init__(base)
        self.conventions = conventions

    def act_batch(self, observations):
        return self.base.act_batch([policy_observation(o, self.conventions) for o in observations])


__all__ = [
    "CAMERA_KEYS", "Conventions", "LiberoConventions", "LiberoPolicyAdapter", "PRESETS", "center_crop",
    "env_actions", "policy_image", "policy_observation", "policy_state", "preset_for", "quat_to_axis_angle",
    "raw_observation", "reference_resize", "resolve",
]
