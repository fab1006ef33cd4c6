"""NumPy building blocks for the per-dataset standardization functions in `vla.data.oxe.transforms`.

Each helper is a NumPy port of the function of the same purpose in OpenVLA's TF pipeline
(`prismatic/vla/datasets/rlds/utils/data_utils.py`, `oxe/transforms.py`), with the same edge-case
behaviour, so standardized actions match the reference value for value. Inputs are arrays stacked over
time (T, ...), as `vla.data.rlds_reader.RLDSReader` and `tfds.as_numpy` (steps stacked) give them.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping

import numpy as np


def as_f32(x: Any) -> np.ndarray:
    """Cast a numeric column to float32 (DROID stores float64; the reference casts every action to float32)."""
    return np.asarray(x, dtype=np.float32)


def as_2d(x: np.ndarray) -> np.ndarray:
    """(T,) -> (T, 1); (T, a, b, ...) -> (T, a*b*...). Works for T = 0 (episodes emptied by truncation)."""
    x = np.asarray(x)
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:])) if x.ndim > 1 else 1)


def invert_gripper(actions: np.ndarray) -> np.ndarray:
    """1 - x: turns a "1 = closed" gripper into the common "1 = open".

    Computed in the input's float precision (float64 for DROID) and cast to float32 afterwards, as the
    reference does (its final `tf.cast(action, tf.float32)`), so results match it bit for bit.
    """
    a = np.asarray(actions)
    a = a if a.dtype in (np.float32, np.float64) else a.astype(np.float32)
    return 1.0 - a


def rel2abs_gripper(actions: np.ndarray) -> np.ndarray:
    """Relative gripper commands (+1 close, -1 open, ~0 no change) to absolute (1 = open, 0 = closed).

    Values with |x| <= 0.1 are "no event". The episode starts in the state opposite to its first event
    (its first command is assumed not redundant); an episode without any event is open throughout.
    Same scan as the reference's `rel2abs_gripper_actions`.

    Args:
        actions: (T,) relative gripper commands.
    Returns:
        (T,) float32 in {0, 1}.
    """
    a = as_f32(actions).reshape(-1)
    # -1 / +1 internal encoding as in the reference: opening (a < -0.1) -> +1 (open), closing (a > 0.1) -> -1.
    thresholded = np.where(a < -0.1, 1, np.where(a > 0.1, -1, 0)).astype(np.int64)
    nonzero = np.flatnonzero(thresholded)
    start = -thresholded[nonzero[0]] if nonzero.size else 1
    out = np.empty(a.shape[0], np.float32)
    carry = start
    for i, t in enumerate(thresholded):
        if t != 0:
            carry = t
        out[i] = carry
    return out / 2.0 + 0.5


def binarize_gripper(actions: np.ndarray) -> np.ndarray:
    """Continuous gripper (1 = open) to binary: > 0.95 open, < 0.05 closed, values in between take the
    state reached after them (a reverse scan); trailing in-between values keep the raw last value.

    Same logic as the reference's `binarize_gripper_actions` (used for bridge_orig).
    """
    a = as_f32(actions).reshape(-1)
    if a.size == 0:
        return a.copy()
    open_mask, closed_mask = a > 0.95, a < 0.05
    in_between = ~(open_mask | closed_mask)
    out = np.empty_like(a)
    carry = a[-1]
    for i in range(a.shape[0] - 1, -1, -1):
        if not in_between[i]:
            carry = np.float32(open_mask[i])
        out[i] = carry
    return out


def decode_zlib_float32(column: np.ndarray, dim: int) -> np.ndarray:
    """A zlib-compressed float32 tensor feature (kuka) to (T, dim) float32.

    Readers that skip decoding (the reference's dlimp, TFDS `SkipDecoding`) return the raw compressed bytes
    per step; readers that decode return the float array already. Both are accepted.
    """
    col = np.asarray(column)
    if col.dtype == object or col.dtype.kind in ("S", "O"):
        if col.size == 0:
            return np.zeros((0, dim), np.float32)
        rows = [np.frombuffer(zlib.decompress(bytes(b)), dtype=np.float32) for b in col.reshape(-1)]
        return np.stack(rows).reshape(-1, dim)
    return as_f32(col).reshape(-1, dim)


def quat_to_euler_xyz(quat: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) in [x, y, z, w] order to extrinsic-xyz Euler angles (roll, pitch, yaw).

    Same convention and gimbal-lock handling as `tensorflow_graphics.geometry.transformation.euler.
    from_quaternion`, which the reference uses for furniture_bench and iamlab_cmu_pickup_insert.
    """
    q = np.asarray(quat, dtype=np.float64)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    tx, ty, tz = np.clip(2.0 * x, -2, 2), np.clip(2.0 * y, -2, 2), np.clip(2.0 * z, -2, 2)
    twx, twy, twz = tx * w, ty * w, tz * w
    txx, txy, txz = tx * x, ty * x, tz * x
    tyy, tyz, tzz = ty * y, tz * y, tz * z
    r00 = np.clip(1.0 - (tyy + tzz), -1, 1)
    r10 = np.clip(txy + twz, -1, 1)
    r21 = np.clip(tyz + twx, -1, 1)
    r22 = np.clip(1.0 - (txx + tyy), -1, 1)
    r20 = np.clip(txz - twy, -1, 1)
    r01 = np.clip(txy - twz, -1, 1)
    r02 = np.clip(txz + twy, -1, 1)

    def nonzero_sign(v):
        return np.where(v >= 0, 1.0, -1.0)

    # tfg adds 2 * machine epsilon of the input dtype to avoid atan2(0, 0) (`select_eps_for_addition`).
    eps = 2.0 * (np.finfo(np.float32).eps if np.asarray(quat).dtype == np.float32 else np.finfo(np.float64).eps)
    theta_y = -np.arcsin(r20)
    s = nonzero_sign(np.cos(theta_y))
    r00e = nonzero_sign(r00) * eps + r00
    r22e = nonzero_sign(r22) * eps + r22
    general = np.stack((np.arctan2(r21 * s, r22e * s), theta_y, np.arctan2(r10 * s, r00e * s)), axis=-1)
    sign_r20 = nonzero_sign(r20)
    r02e = nonzero_sign(r02) * eps + r02
    gimbal_x = np.arctan2(-sign_r20 * r01, -sign_r20 * r02e)
    gimbal = np.stack((gimbal_x, -sign_r20 * np.pi / 2.0, np.zeros_like(gimbal_x)), axis=-1)
    is_gimbal = (np.abs(r20) == 1)[..., None]
    return np.where(is_gimbal, gimbal, general).astype(np.float32)


def copy_tree(tree: Mapping) -> dict:
    """Copy nested dicts (not the arrays), so a standardization never changes the reader's episode."""
    return {k: copy_tree(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


def slice_tree(tree: Mapping, index: slice) -> dict:
    """Apply `index` along the time axis to every array of a nested dict of (T, ...) arrays."""
    return {k: slice_tree(v, index) if isinstance(v, Mapping) else np.asarray(v)[index] for k, v in tree.items()}


def to_str(value: Any) -> str:
    """bytes / np.bytes_ / str to str (TFDS returns text features as bytes)."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    return str(value)
