"""How a LeRobot dataset maps onto our contracts: `data.datasets[i].lerobot` (and `vla-convert`'s `lerobot`).

    data:
      datasets:
        - path: ~/.cache/huggingface/lerobot/me/so101_pick    # any local LeRobot dataset (v2.0, v2.1, v3.0)
          lerobot:
            cameras: {primary: observation.images.front, wrist: observation.images.wrist}
            action_transform: vla.data.lerobot.kinematics:joint_positions_to_eef_delta
            action_transform_args: {mjcf: so101.xml, site: gripper, gripper_range: [0, 100]}

Kept free of heavy imports: `vla.data.config` imports it for the hydra schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

#: `action_space` choices: `auto` checks the action feature (7-D and not named like joints), `eef_delta` trusts it.
ACTION_SPACES = ("auto", "eef_delta")


@dataclass
class LeRobotOptions:
    """Feature mapping of one LeRobot dataset.

    Attributes:
        cameras: our camera (`primary`, `secondary`, `wrist`) -> LeRobot feature (`observation.images.front`);
            unset cameras are matched by name (wrist/hand/gripper -> `wrist`, the first other view -> `primary`,
            the next -> `secondary`).
        state: the feature used as proprio (None or "": no proprio).
        action: the action feature.
        action_space: `auto` accepts a 7-D action (dx, dy, dz, droll, dpitch, dyaw, gripper absolute, 1 = open)
            unless its names say joints; `eef_delta` accepts any 7-D action as that.
        action_transform: "module:function" making 7-D end-effector deltas of another action space: called as
            function(steps) -> steps (steps: {"observation": {feature: (T, ...)}, "action": (T, D),
            "language_instruction": (T,)}), or, with `action_transform_args`, function(**args) returns that
            callable (e.g. `vla.data.lerobot.kinematics:joint_positions_to_eef_delta` for a robot with an MJCF).
        action_transform_args: keyword arguments of the transform factory.
        episodes: episode indices to read ([] = all; the split then slices these).
    """

    cameras: dict[str, str] = field(default_factory=dict)
    state: Optional[str] = "observation.state"
    action: str = "action"
    action_space: str = "auto"
    action_transform: Optional[str] = None
    action_transform_args: dict[str, Any] = field(default_factory=dict)
    episodes: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.action_space not in ACTION_SPACES:
            raise ValueError(f"lerobot.action_space={self.action_space!r}; choose one of {list(ACTION_SPACES)}")
        if self.action_transform_args and not self.action_transform:
            raise ValueError("lerobot.action_transform_args is set but lerobot.action_transform is not")


def to_options(value: Any) -> LeRobotOptions:
    """`LeRobotOptions` from itself, a dict, a hydra node or None."""
    if isinstance(value, LeRobotOptions):
        return value
    if value is None:
        return LeRobotOptions()
    if hasattr(value, "items"):
        try:
            from omegaconf import OmegaConf

            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True)
        except ImportError:  # pragma: no cover - omegaconf is a dependency
            pass
        return LeRobotOptions(**dict(value))
    raise TypeError(f"lerobot options must be a mapping, got {type(value).__name__}")
