"""A `vla.data.oxe.DatasetSpec` for a LeRobot dataset: cameras by name, state -> proprio, and the action check.

Our models predict 7-D end-effector deltas (dx, dy, dz, droll, dpitch, dyaw, gripper absolute with 1 = open;
`vla.core.types`). Most LeRobot recordings (SO-100/101, Koch, ALOHA) store joint-position targets instead: those
are refused with an error that says so, unless `lerobot.action_transform` names a function that makes the deltas
(`vla.data.lerobot.kinematics:joint_positions_to_eef_delta` does it through the arm's MJCF).
"""

from __future__ import annotations

import importlib
import logging
import re
from typing import Any, Callable

import numpy as np

from vla.data.lerobot.meta import INFO, LeRobotFormatError, LeRobotMeta
from vla.data.lerobot.options import LeRobotOptions

logger = logging.getLogger(__name__)

_WRIST = re.compile(r"wrist|hand|gripper|eye_in|ego", re.I)
_JOINTS = re.compile(r"\.pos$|joint|shoulder|elbow|waist|forearm|\.vel$|motor", re.I)
_EEF = re.compile(r"^(d|delta_?)?(x|y|z|roll|pitch|yaw|rx|ry|rz|gripper|grip)$|eef|ee_|delta", re.I)


class ActionSpaceError(LeRobotFormatError):
    """The dataset's actions are not 7-D end-effector deltas and no transform makes them so."""


def match_cameras(meta: LeRobotMeta, wanted: dict[str, str]) -> dict[str, str]:
    """Our camera -> LeRobot feature: the configured ones (checked), the rest by name."""
    cams = meta.camera_features()
    for cam, key in wanted.items():
        meta.require(key, f"camera {cam!r}", f"lerobot.cameras.{cam}")
        if key not in cams:
            raise LeRobotFormatError(f"{meta.root / INFO}: {key!r} (camera {cam!r}) is not an image or video feature; "
                                     f"its cameras: {cams}. Set lerobot.cameras.{cam} to one of them.")
    out = dict(wanted)
    free = [k for k in cams if k not in out.values()]
    if "wrist" not in out:
        wrist = [k for k in free if _WRIST.search(k.rsplit(".", 1)[-1])]
        if wrist:
            out["wrist"] = wrist[0]
            free.remove(wrist[0])
    for cam in ("primary", "secondary"):
        views = [k for k in free if not _WRIST.search(k.rsplit(".", 1)[-1])]
        if cam not in out and views:
            out[cam] = views[0]
            free.remove(views[0])
    return out


def check_gripper(low: float, high: float, root: Any) -> None:
    """The standardized gripper must be absolute in [0, 1] (1 = open): say how to map another range."""
    if low < -1e-6 or high > 1 + 1e-6:
        raise ActionSpaceError(
            f"{root}: the gripper (last action dim) ranges {low:.3g}..{high:.3g}; our contract is absolute in [0, 1] "
            "with 1 = open. Map it with lerobot.action_transform=vla.data.lerobot.spec:rescale_gripper and "
            "lerobot.action_transform_args={closed: <value when closed>, open: <value when open>} (e.g. {closed: 1, "
            "open: -1} for +1 close / -1 open), or with your own transform")


def rescale_gripper(closed: float, open: float) -> Callable[[dict], dict]:  # noqa: A002 - the YAML key
    """A transform hook for 7-D deltas whose gripper has another range: `closed`..`open` -> 0..1 (clipped)."""
    if closed == open:
        raise ValueError("rescale_gripper needs closed != open")

    def transform(steps: dict) -> dict:
        action = np.array(steps["action"], np.float32)
        action[:, -1] = np.clip((action[:, -1] - closed) / (open - closed), 0.0, 1.0)
        steps["action"] = action
        return steps

    return transform


def load_transform(options: LeRobotOptions) -> Callable[[dict], dict] | None:
    """The configured `action_transform` ("module:function", or a factory called with `action_transform_args`)."""
    if not options.action_transform:
        return None
    module, _, name = options.action_transform.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"lerobot.action_transform={options.action_transform!r} cannot be imported ({e}); give "
                         "'package.module:function' importable from the training process") from e
    return fn(**options.action_transform_args) if options.action_transform_args else fn


def check_action_space(meta: LeRobotMeta, options: LeRobotOptions) -> None:
    """Refuse actions that are not 7-D end-effector deltas (when no transform is configured), saying what they are."""
    feat = meta.require(options.action, "the action", "lerobot.action")
    shape = [int(s) for s in feat.get("shape", [])]
    names = feat.get("names")
    if isinstance(names, dict):  # LeRobot < 0.3: {"motors": [...]}
        names = next(iter(names.values()), None)
    names = [str(n) for n in names] if isinstance(names, (list, tuple)) else []
    jointy = [n for n in names if _JOINTS.search(n)]
    what = (f"{meta.root}: the action feature {options.action!r} is {shape}-shaped"
            + (f" with names {names}" if names else "") + f" (robot_type {meta.info.get('robot_type')!r})")
    fix = ("Either give lerobot.action_transform=<module:function> that returns steps with a (T, 7) end-effector delta "
           "action (see docs/data.md, 'LeRobot datasets'), e.g. through the arm's kinematics: "
           "lerobot.action_transform=vla.data.lerobot.kinematics:joint_positions_to_eef_delta with "
           "lerobot.action_transform_args={mjcf: <robot.xml>, site: <end-effector site>}; or, if these really are "
           "deltas in that layout, set lerobot.action_space=eef_delta.")
    if shape != [7]:
        kind = "joint positions" if jointy else "not the 7-D action"
        raise ActionSpaceError(f"{what}: {kind}, not the 7-D end-effector delta + gripper our models predict. {fix}")
    if options.action_space == "auto" and jointy:
        raise ActionSpaceError(f"{what}: its names say joint positions ({jointy}), not end-effector deltas. {fix}")
    if options.action_space == "auto" and names and not all(_EEF.search(n) for n in names):
        logger.warning("%s: names do not look like end-effector deltas; read as dx, dy, dz, droll, dpitch, dyaw, "
                       "gripper (set lerobot.action_space=eef_delta to silence this)", what)


def lerobot_spec(meta: LeRobotMeta, options: LeRobotOptions, name: str) -> Any:
    """The `DatasetSpec` that standardizes this dataset's raw episodes (`LeRobotReader.read_episode`)."""
    from vla.data.oxe.registry import DatasetSpec

    cameras = match_cameras(meta, dict(options.cameras))
    if "primary" not in cameras:
        raise LeRobotFormatError(f"{meta.root}: no camera feature to use as 'primary' (features: {sorted(meta.features)}); "
                                 "our models need one image stream")
    transform = load_transform(options)
    if transform is None:
        check_action_space(meta, options)
    else:
        meta.require(options.action, "the action", "lerobot.action")
    state = options.state or None
    if state is not None:
        meta.require(state, "the proprio", "lerobot.state (or lerobot.state=null for none)")
    action_key = options.action

    def lerobot_transform(steps: dict) -> dict:
        """Our action from the configured feature (and the user's transform, when set)."""
        steps["action"] = steps["observation"][action_key] if action_key != "action" else steps["action"]
        if transform is not None:
            steps = transform(steps)
        steps["action"] = np.asarray(steps["action"], np.float32)
        return steps

    lerobot_transform.user_transform = transform  # fingerprinted by the statistics cache
    return DatasetSpec(name=name, image_keys=cameras, control_hz=meta.fps, state_obs_keys=(state,) if state else (),
                       proprio_dim=None, transform=lerobot_transform,
                       notes=f"LeRobot {meta.version} dataset at {meta.root}")
