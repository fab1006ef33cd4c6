"""Observation, action and policy: the types that cross package boundaries.

Conventions (the Open X-Embodiment ones, see shared/design.md):
- Images are uint8 HxWx3 arrays keyed by camera name (`primary`, optional `secondary` and `wrist`: OpenVLA's
  names; `secondary` is a second third-person view such as DROID's other exterior camera).
- An action is 7-D: dx, dy, dz (m), droll, dpitch, dyaw (rad) in the robot base frame, then the gripper
  *absolute* in [0, 1] with 1 = open. A chunk is K such actions, shape (K, 7).
- A `Policy` returns un-normalized actions: it carries its own statistics, callers never un-normalize.

Validation happens at the boundaries (env step, policy output, bridge input) and raises `ContractError`
naming the field, what was expected and what was received.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from vla.core.statistics import DatasetStatistics

ACTION_DIM = 7
GRIPPER_INDEX = 6
#: Every camera name a dataset, a model or an observation may use (the one list; others import it).
CAMERA_NAMES = ("primary", "secondary", "wrist")


class ContractError(ValueError):
    """A value crossing a package boundary does not match the contract."""


@dataclass
class Observation:
    """What a policy sees at one control step.

    Attributes:
        images: camera name -> uint8 array (H, W, 3). `primary` is required.
        proprio: float32 (P,) robot state (P may be 0 when a robot exposes none).
        instruction: natural-language task instruction.
        timestamp: seconds (sim time or the sensor stamp), used by watchdogs and recorders.
    """

    images: dict[str, np.ndarray]
    proprio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    instruction: str = ""
    timestamp: float = 0.0

    def __post_init__(self) -> None:
        self.proprio = np.asarray(self.proprio, dtype=np.float32).reshape(-1)
        self.validate()

    def validate(
        self,
        *,
        cameras: tuple[str, ...] | list[str] = ("primary",),
        image_size: tuple[int, int] | None = None,
        proprio_dim: int | None = None,
    ) -> "Observation":
        """Check shapes, dtypes and finiteness; return self so calls can be chained."""
        if not isinstance(self.images, Mapping):
            raise ContractError(f"Observation.images must be a dict name -> uint8 HxWx3, got {type(self.images).__name__}")
        for name in cameras:
            if name not in self.images:
                raise ContractError(
                    f"Observation.images is missing camera {name!r}; it has {sorted(self.images)}. "
                    f"Check the camera names in your env / bridge config."
                )
        for name, img in self.images.items():
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
                got = f"{type(img).__name__}" if not isinstance(img, np.ndarray) else f"{img.dtype} {img.shape}"
                raise ContractError(f"Observation.images[{name!r}] must be uint8 (H, W, 3), got {got}")
            if image_size is not None and tuple(img.shape[:2]) != tuple(image_size):
                raise ContractError(
                    f"Observation.images[{name!r}] has size {img.shape[:2]}, expected {tuple(image_size)}"
                )
        if not np.all(np.isfinite(self.proprio)):
            bad = np.flatnonzero(~np.isfinite(self.proprio)).tolist()
            raise ContractError(f"Observation.proprio has non-finite values at indices {bad}")
        if proprio_dim is not None and self.proprio.shape[0] != proprio_dim:
            raise ContractError(f"Observation.proprio has {self.proprio.shape[0]} dims, expected {proprio_dim}")
        if not isinstance(self.instruction, str):
            raise ContractError(f"Observation.instruction must be str, got {type(self.instruction).__name__}")
        if not math.isfinite(float(self.timestamp)):
            raise ContractError(f"Observation.timestamp must be finite, got {self.timestamp}")
        return self


def validate_action(action, *, allow_chunk: bool = True, name: str = "action") -> np.ndarray:
    """Return `action` as float32 (7,) or (K, 7), or raise `ContractError` saying what is wrong.

    Rejects wrong shapes, NaN/inf anywhere, and a gripper outside [0, 1] (the absolute convention).
    """
    try:
        arr = np.asarray(action, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ContractError(f"{name} must be numeric with shape (7,) or (K, 7): {e}") from None
    ok_shape = arr.shape == (ACTION_DIM,) or (allow_chunk and arr.ndim == 2 and arr.shape[1] == ACTION_DIM and arr.shape[0] > 0)
    if not ok_shape:
        expected = "(7,) or (K, 7)" if allow_chunk else "(7,)"
        raise ContractError(f"{name} has shape {arr.shape}, expected {expected} (dxyz, drpy, gripper)")
    if not np.all(np.isfinite(arr)):
        idx = np.argwhere(~np.isfinite(arr)).tolist()
        raise ContractError(f"{name} has non-finite values (NaN/inf) at {idx}; refusing to execute it")
    grip = arr[..., GRIPPER_INDEX]
    if np.any(grip < -1e-6) or np.any(grip > 1 + 1e-6):
        raise ContractError(
            f"{name} gripper must be absolute in [0, 1] (1 = open), got {grip.tolist()}; "
            "convert relative or -1/+1 grippers with the dataset's standardization function"
        )
    return arr


@dataclass(frozen=True)
class Action:
    """One 7-D end-effector delta action with named parts (a thin view over the array)."""

    vector: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector", validate_action(self.vector, allow_chunk=False))

    @property
    def delta_position(self) -> np.ndarray:
        return self.vector[0:3]

    @property
    def delta_rotation(self) -> np.ndarray:
        return self.vector[3:6]

    @property
    def gripper(self) -> float:
        return float(self.vector[GRIPPER_INDEX])


class Policy(abc.ABC):
    """Anything that maps observations to un-normalized 7-D actions.

    Implementations: the VLA (`vla.policy`), sim baselines (random, no-vision, scripted expert), a remote
    policy client in `robot_bridge`. `act` returns (7,) or a chunk (K, 7); `chunk_size` says which.
    """

    #: Number of actions `act` returns per call (1 -> shape (7,), K > 1 -> shape (K, 7)).
    chunk_size: int = 1
    #: Cameras the policy reads; callers validate observations against it.
    cameras: tuple[str, ...] = ("primary",)

    @property
    def statistics(self) -> "DatasetStatistics | None":
        """The action/proprio statistics the policy un-normalizes with (None for policies that need none)."""
        return None

    def reset(self, instruction: str) -> None:
        """Start a new episode with this instruction (clears history, caches, pending chunks)."""

    @abc.abstractmethod
    def act(self, observation: Observation) -> np.ndarray:
        """Return the next action (7,) or chunk (K, 7), un-normalized, gripper absolute in [0, 1]."""

    def act_batch(self, observations: list[Observation]) -> list[np.ndarray]:
        """Act on several observations at once; the default loops, batched policies override it."""
        return [self.act(o) for o in observations]

    def close(self) -> None:
        """Release resources (processes, sockets, GPU memory)."""
